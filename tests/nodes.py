"""Real federation nodes for tests: a temp git repository each, served by `sudocode-fed serve` (daphne) on a
free port of 127.0.0.1, driven through the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO_ROOT, CliResult, cli_env, copy_corpus, make_git_repo, run_cli


def eventually(check: Callable[[], object], *, timeout: float = 15.0, what: str = "the condition", every: float = 0.1):
    """Retry `check` until it returns something truthy (and return it), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(
        self,
        root: Path,
        name: str,
        *,
        dataset: str | None = None,
        org: str = "org",
        worker: bool = True,
        env: dict[str, str] | None = None,
        workers: int = 1,
    ):
        self.name = name
        self.env = env or {}  # extra environment for the node and its CLI (e.g. the scale-out profile's URLs)
        self.worker = worker  # False: serve without the Celery worker and beat (faster to start and stop)
        self.workers = workers  # web processes (`serve --workers`); 1 by default: the tests share two cores
        self.identity = f"github.com/{org}/{name}"
        self.repo = make_git_repo(root / name, origin=f"git@github.com:{org}/{name}.git")
        if dataset:
            copy_corpus(dataset, self.repo)
        self.port = free_port()
        self.access_log = root / f"{name}-access.log"
        self.log_path = root / f"{name}-node.log"
        self.proc: subprocess.Popen | None = None
        result = self.cli("init")
        assert result.code == 0, result.err

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.base}/api/v1"

    def cookie_name(self, name: str) -> str:
        """This node's name for its `sessionid` or `csrftoken` cookie (federation_site.settings)."""
        import hashlib

        return f"{name}_{hashlib.sha256(str(self.repo.resolve()).encode()).hexdigest()[:10]}"

    def cli(self, *args: str) -> CliResult:
        return run_cli("--repo", str(self.repo), *args, env=cli_env(**self.env))

    def cli_json(self, *args: str):
        result = self.cli(*args, "--format", "json")
        assert result.code == 0, result.err
        return json.loads(result.out)

    def create_staff(self, username: str, password: str) -> None:
        """A superuser in the node's database, who can log in to /admin/ and decide requests on /approvals/."""
        env = cli_env(
            **self.env,
            SUDOCODE_REPO=str(self.repo),
            DJANGO_SUPERUSER_USERNAME=username,
            DJANGO_SUPERUSER_PASSWORD=password,
            DJANGO_SUPERUSER_EMAIL=f"{username}@example.com",
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "createsuperuser", "--noinput"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    def config(self) -> dict:
        return json.loads((self.repo / ".sudocode" / "federation.config.json").read_text())

    def write_config(self, data: dict) -> None:
        (self.repo / ".sudocode" / "federation.config.json").write_text(json.dumps(data, indent=2))

    def make_public(self) -> Node:
        """`web.public_read`: its issue and spec pages readable without a login (a test reading them so)."""
        self.write_config({**self.config(), "web": {"public_read": True}})
        return self

    def start(self, timeout: float = 30, *, serve_args: tuple[str, ...] = ()) -> Node:
        """`serve_args`: more options for `serve` (e.g. --certfile/--keyfile)."""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sudocode_cli.main",
                "--repo",
                str(self.repo),
                "serve",
                "--port",
                str(self.port),
                "--access-log",
                str(self.access_log),
                *([] if self.worker else ["--no-worker"]),
                "--workers",
                str(self.workers),
                *serve_args,
            ],
            env=cli_env(**self.env),
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: a node (and its worker) that logs more than a pipe holds must not block.
            stderr=self.log_path.open("a"),
            # Its own process group: stop() ends daphne, the worker and beat together, leaving no orphans.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.name} did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                # A second is plenty for daphne; the Celery worker's warm shutdown takes about 4.5 s more (nothing
                # it holds is lost to a kill: delivery state is rows, and the tests kill nodes on purpose too).
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
            # The worker and beat may outlive daphne by a moment: the group goes with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the node with its worker and beat, as a crash or an OOM kill would: no clean shutdown."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def db(self):
        """A read-only connection to the node's SQLite database, to look at its state without calling it."""
        import sqlite3

        path = self.repo / ".sudocode" / "federation.db"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)

    def issue_status(self, issue_id: str) -> str | None:
        """The status in the node's issues.jsonl: what git will record, read without asking the node."""
        path = self.repo / ".sudocode" / "issues.jsonl"
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("id") == issue_id:
                return record.get("status")
        return None

    def requests_to(self, path_prefix: str) -> int:
        """How many requests this node's access log shows for paths starting with `path_prefix`."""
        if not self.access_log.exists():
            return 0
        return sum(1 for line in self.access_log.read_text().splitlines() if f" {path_prefix}" in line)


def link(a: Node, b: Node, *, trust: str = "verified") -> str:
    """`a` declares `b` as a remote (with b's endpoint) and b declares a, each holding the key the other
    issued: after this, a's calls to b are authenticated as a (b trusts a at `trust`). Returns a's key at b."""
    added = b.cli("remote", "add", a.identity, "--trust", trust, "--endpoint", a.api, "--no-discover")
    assert added.code == 0, added.err
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    result = a.cli("remote", "add", b.identity, "--trust", "verified", "--endpoint", b.api, "--token", key)
    assert result.code == 0, result.err
    # And the other way: b calls a back (callbacks) with the key a issued to b.
    back = next(line.strip() for line in result.out.splitlines() if line.strip().startswith("sfk_"))
    stored = b.cli("remote", "set-token", a.identity, back)
    assert stored.code == 0, stored.err
    return key


def node_cookie(jar, name: str) -> str:
    """The value of a node's `csrftoken` or `sessionid` cookie in a requests cookie jar: each node names its
    cookies `<name>_<hash of its repository>` (federation_site.settings), so nodes on one host keep apart."""
    found = [c.value for c in jar if c.name.startswith(f"{name}_")]
    assert len(found) == 1, f"expected one {name}_* cookie, found {[c.name for c in jar]}"
    return found[0]
