"""Starting and stopping the Celery worker and beat next to the web process (`sudocode-fed serve`)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)
_folders_made = False


def queue(task, *args) -> bool:
    """Ask the worker to run `task` now: a wake-up call, never the only way the work gets done (the row it acts
    on is the truth, and a periodic task finds whatever is due). So a broker that is down is logged, not raised:
    it must not fail the request or write that asked. Returns whether the message was queued."""
    global _folders_made
    try:
        if not _folders_made:
            ensure_broker_folders()
            _folders_made = True
        task.delay(*args)
        return True
    except Exception as exc:
        logger.warning("could not queue %s%r (%s); the periodic task will pick it up", task.name, args, exc)
        return False


def ensure_broker_folders() -> None:
    """kombu's filesystem transport does not create its folders."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


def start(repo: Path) -> list[subprocess.Popen]:
    """A worker and a beat for `repo`, as child processes sharing our environment (and so our database)."""
    ensure_broker_folders()
    env = dict(os.environ, SUDOCODE_REPO=str(repo), DJANGO_SETTINGS_MODULE="federation_site.settings")
    env.pop("SUDOCODE_FED_CLI", None)
    celery = [sys.executable, "-m", "celery", "-A", "federation_site"]
    schedule = Path(repo) / ".sudocode" / "celerybeat-schedule"
    return [
        subprocess.Popen(
            [
                *celery,
                "worker",
                "--pool=threads",
                "--concurrency=4",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"worker-{os.getpid()}@%h",
            ],
            env=env,
        ),
        subprocess.Popen([*celery, "beat", "--loglevel=WARNING", "-s", str(schedule)], env=env),
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
