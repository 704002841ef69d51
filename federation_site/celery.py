"""The Celery app: sync and delivery jobs run in a worker next to the web process.

The embedded default needs no server: kombu's filesystem transport keeps the queue in
`.sudocode/celery/` (gitignored). The scale-out profile sets CELERY_BROKER_URL (redis://...). Either way the
database is the truth and a message is only a wake-up call: periodic tasks re-queue whatever is due.
"""

import os

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_init

from federation_site import broker

broker.install()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.settings")

app = Celery("federation_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def _load_config(**kwargs) -> None:
    """Read federation.config.json once at start: a later edit that breaks it then leaves this process on its
    last good config (federation_site.node.config), as the web process is, instead of failing every task."""
    import django
    from django.apps import apps

    if not apps.ready:  # the worker's Django fixup sets Django up; beat's does not (and LOGGING comes with it)
        django.setup()
    from federation_site import node

    try:
        node.config()
    except node.RepoNotFound:
        pass


@setup_logging.connect
def _keep_django_logging(**kwargs) -> None:
    """Celery configures logging itself unless someone handles this signal: ours is Django's LOGGING (JSON lines
    under `serve`, federation_site/logs.py), applied by django.setup(), so the worker's lines look like daphne's."""
