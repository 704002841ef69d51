"""Fixtures shared by the whole suite: temp git repositories a node can serve, and running the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.corpus import require_corpus

REPO_ROOT = Path(__file__).resolve().parent.parent


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_git_repo(path: Path, *, origin: str | None = "git@github.com:acme/frontend.git") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    if origin:
        git(path, "remote", "add", "origin", origin)
    return path


def copy_corpus(dataset: str, repo: Path) -> None:
    source = require_corpus() / dataset
    (repo / ".sudocode").mkdir(exist_ok=True)
    for name in ("issues.jsonl", "specs.jsonl"):
        if (source / name).exists():
            shutil.copyfile(source / name, repo / ".sudocode" / name)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI run: the node's own SQLite database, whatever the suite itself runs on."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "SUDOCODE_REPO", "SUDOCODE_FED_CLI")
    }
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str = "") -> CliResult:
    result = subprocess.run(
        [sys.executable, "-m", "sudocode_cli.main", *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=120,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "repo")


@pytest.fixture
def node_repo(git_repo: Path, settings) -> Path:
    """A git repository with an empty `.sudocode/`, served by this test process's node."""
    from tracker import sync

    (git_repo / ".sudocode").mkdir()
    settings.SUDOCODE_REPO = git_repo
    sync._seen.clear()
    yield git_repo
    sync._seen.clear()


class Receiver:
    """A local HTTP server standing in for Slack: it records what it is sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/slack"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
