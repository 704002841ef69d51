"""Starting and stopping the Celery worker and beat next to the web process (`sudocode-fed serve`), and the web
processes themselves when `serve --workers N` runs several on one port."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from federation_site.node import RepoLayout

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


def broker_problem() -> str | None:
    """Why the broker would not take a message now, or None. The filesystem transport: its folders can be made
    and written; Redis: its port accepts a connection within 0.5 s. Another transport is not checked."""
    url = urlsplit(settings.CELERY_BROKER_URL)
    if url.scheme == "filesystem":
        try:
            ensure_broker_folders()
        except OSError as exc:
            return f"the broker's folders cannot be made ({exc}): callbacks, notifications and webhooks wait"
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_out")
        if folder and not os.access(folder, os.W_OK):
            return f"the broker's folder {folder} is not writable: callbacks, notifications and webhooks wait"
        return None
    if url.scheme in ("redis", "rediss"):
        try:
            socket.create_connection((url.hostname or "localhost", url.port or 6379), timeout=0.5).close()
        except OSError as exc:
            where = f"{url.hostname or 'localhost'}:{url.port or 6379}"
            return f"the broker (Redis at {where}) does not answer ({exc}): callbacks, notifications and webhooks wait"
    return None


# Set by `serve` for its web process: whether it runs (and supervises) a worker, so the health check knows
# whether a silent worker is a fault or simply not this node's business (`serve --no-worker`).
WORKER_ENV = "SUDOCODE_WORKER"
HEARTBEAT_MAX_AGE = 10.0  # seconds: beat's heartbeat task runs every 2 s


def heartbeat(lay: RepoLayout) -> None:
    """The worker says it is alive (run by beat's refresh task, so it proves beat and worker both run)."""
    path = lay.worker_heartbeat_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def worker_state(lay: RepoLayout) -> dict:
    """`{"expected": bool, "alive": bool, "last_seen_seconds": float | None}`: alive when the heartbeat is at
    most HEARTBEAT_MAX_AGE old. `expected` is false in a web process that `serve --no-worker` started."""
    try:
        age = max(time.time() - lay.worker_heartbeat_path.stat().st_mtime, 0.0)
    except FileNotFoundError:
        age = None
    return {
        "expected": os.environ.get(WORKER_ENV, "supervised") != "none",
        "alive": age is not None and age <= HEARTBEAT_MAX_AGE,
        "last_seen_seconds": None if age is None else round(age, 1),
    }


def _command(name: str, repo: Path) -> list[str]:
    celery = [sys.executable, "-m", "celery", "-A", "federation_site"]
    if name == "beat":
        return [*celery, "beat", "--loglevel=WARNING", "-s", str(Path(repo) / ".sudocode" / "celerybeat-schedule")]
    return [
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
    ]


def _what(name: str) -> str:
    return f"web process {name[4:]}" if name.startswith("web-") else f"Celery {name}"


def _spawn_web(command: list[str], repo: Path) -> subprocess.Popen:
    env = dict(os.environ, SUDOCODE_REPO=str(repo), DJANGO_SETTINGS_MODULE="federation_site.settings")
    env.pop("SUDOCODE_FED_CLI", None)
    return subprocess.Popen(command, env=env)


def _spawn(name: str, repo: Path) -> subprocess.Popen:
    """The worker or the beat for `repo`, a child process sharing our environment (and so our database)."""
    env = dict(os.environ, SUDOCODE_REPO=str(repo), DJANGO_SETTINGS_MODULE="federation_site.settings")
    env.pop("SUDOCODE_FED_CLI", None)
    return subprocess.Popen(_command(name, repo), env=env)


class Supervisor:
    """Keeps the worker and beat of `serve` running: one that exits is started again, after 1 s, then 2, 4, ...
    up to 60 s while it keeps dying (a process that lived a minute starts the count again), with a log line each
    time. Without them callbacks, notifications and webhooks would silently stop. With `web` (the command line of
    one web process, sudocode_cli.webprocess), it also keeps `web_processes` of them running the same way.
    `worker=False`: no worker and beat (`serve --no-worker`)."""

    POLL_SECONDS = 0.5
    MAX_BACKOFF = 60.0

    def __init__(
        self,
        repo: Path,
        *,
        worker: bool = True,
        web: list[str] | None = None,
        web_processes: int = 0,
    ) -> None:
        self.repo = Path(repo)
        self.names = (["worker", "beat"] if worker else []) + [f"web-{n}" for n in range(web_processes if web else 0)]
        self.web = web
        self.processes: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> Supervisor:
        ensure_broker_folders()
        for name in self.names:
            self._launch(name)
        self._thread.start()
        return self

    def _launch(self, name: str) -> None:
        if name.startswith("web-") and self.web is not None:
            self.processes[name] = _spawn_web(self.web, self.repo)
        else:
            self.processes[name] = _spawn(name, self.repo)
        self._started_at[name] = time.monotonic()

    def _run(self) -> None:
        while not self._stopping.wait(self.POLL_SECONDS):
            self.check()

    def check(self) -> None:
        """One look at both processes (the thread does this every POLL_SECONDS)."""
        now = time.monotonic()
        for name, proc in list(self.processes.items()):
            if self._stopping.is_set() or proc.poll() is None:
                continue
            if name not in self._due:
                if now - self._started_at[name] > self.MAX_BACKOFF:
                    self.restarts[name] = 0  # it had been fine for a while: a fresh start, not a crash loop
                wait = min(2.0 ** self.restarts.get(name, 0), self.MAX_BACKOFF)
                self._due[name] = now + wait
                logger.warning(
                    "the %s exited (code %s); starting it again in %.0f s", _what(name), proc.returncode, wait
                )
            elif now >= self._due[name]:
                del self._due[name]
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._launch(name)
                logger.warning("the %s runs again (restart #%d)", _what(name), self.restarts[name])

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(2)
        stop(list(self.processes.values()))


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
