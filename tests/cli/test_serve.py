"""`sudocode-fed serve`: a real daphne process serving a temp repository."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import cli_env, run_cli

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def served(git_repo):
    assert run_cli("--repo", str(git_repo), "init").code == 0
    assert run_cli("--repo", str(git_repo), "issue", "create", "Served issue", "--id", "issue-1").code == 0
    config_path = git_repo / ".sudocode" / "federation.config.json"  # pages and API readable without a login
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "web": {"public_read": True}}))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sudocode_cli.main", "--repo", str(git_repo), "serve", "--port", str(port)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(port, proc)
        yield git_repo, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_answers_pages_api_docs_and_static_files(served):
    _repo, base = served
    home = requests.get(f"{base}/", timeout=10)
    assert home.status_code == 200 and "Served issue" in home.text
    issues = requests.get(f"{base}/api/v1/issues", timeout=10).json()
    assert [i["id"] for i in issues["results"]] == ["issue-1"]
    assert requests.get(f"{base}/api/schema/", timeout=10).status_code == 200
    assert requests.get(f"{base}/api/docs/", timeout=10).status_code == 200
    assert requests.get(f"{base}/static/admin/css/base.css", timeout=10).status_code == 200
    assert requests.get(f"{base}/admin/login/", timeout=10).status_code == 200


def test_a_change_made_by_the_cli_shows_in_the_running_server(served):
    repo, base = served
    assert run_cli("--repo", str(repo), "issue", "close", "issue-1").code == 0
    detail = requests.get(f"{base}/api/v1/issues/issue-1", timeout=10).json()
    assert detail["status"] == "closed"


def test_serve_refuses_to_start_without_a_secret_key(git_repo):
    assert run_cli("--repo", str(git_repo), "init").code == 0
    (git_repo / ".sudocode" / "secrets.env").write_text("# emptied\n")
    result = run_cli("--repo", str(git_repo), "serve", "--port", str(free_port()))
    assert result.code == 1
    assert "DJANGO_SECRET_KEY" in result.err and "sudocode-fed init" in result.err
