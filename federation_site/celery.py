"""The Celery app: sync and delivery jobs run in a worker next to the web process.

The embedded default needs no server: kombu's filesystem transport keeps the queue in
`.sudocode/celery/` (gitignored). The scale-out profile sets CELERY_BROKER_URL (redis://...). Either way the
database is the truth and a message is only a wake-up call: periodic tasks re-queue whatever is due.
"""

import os

from celery import Celery

from federation_site import broker

broker.install()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.settings")

app = Celery("federation_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
