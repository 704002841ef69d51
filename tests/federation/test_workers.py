"""`serve --workers N`: several daphne processes on one port. Each keeps its own answer cache, which must never
serve an answer older than the data, whichever process changed it; the WebSocket works through any of them; and
the reads' audit rows, written in batches off the request path, are all written by the time the node stops."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO_ROOT, cli_env
from tests.nodes import Node, eventually

pytestmark = pytest.mark.slow

QUERY = {"entity": "issue", "filters": {"status": "open"}}


def _children(pid: int) -> list[str]:
    """The command lines of the processes whose parent is `pid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return out


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("workers"), "api-service", worker=False, workers=2)
    added = node.cli("remote", "add", "github.com/org/frontend", "--trust", "trusted", "--no-discover")
    assert added.code == 0, added.err
    node.key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    config = node.config()
    config["rate_limits"]["per_repo"]["queries_per_minute"] = 10_000
    config["policies"]["incoming_requests"]["query"]["rate_limit"]["requests_per_minute"] = 10_000
    config["rate_limits"]["per_repo"]["mutations_per_hour"] = 10_000
    remote = next(r for r in config["remote_repos"] if r["url"] == "github.com/org/frontend")
    remote.setdefault("permissions", {})["mutate"] = {"allowed": True}  # auto-approved: carried out at once
    node.write_config(config)
    node.issue = node.cli_json("issue", "create", "Before the change", "--tags", "api")["id"]
    node.start()  # the port listens once a web process has loaded
    yield node
    node.stop()


def _titles(node: Node, correlation_id: str | None = None) -> set[str]:
    # A new connection each time, so the kernel spreads them over both processes.
    headers = {"Authorization": f"Bearer {node.key}"}
    if correlation_id:
        headers["X-Correlation-ID"] = correlation_id
    reply = requests.post(f"{node.api}/federation/query", json=QUERY, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return {r["title"] for r in reply.json()["results"]}


def test_two_web_processes_share_the_port(node):
    web = [c for c in _children(node.proc.pid) if "sudocode_cli.webprocess" in c]
    assert len(web) == 2, _children(node.proc.pid)


def test_no_process_answers_from_its_cache_after_another_process_changed_the_data(node):
    for _ in range(20):  # both processes have the answer cached
        assert _titles(node) == {"Before the change"}
    assert node.cli("issue", "update", node.issue, "--title", "After the change").code == 0  # a third process
    for _ in range(20):
        assert _titles(node) == {"After the change"}


def test_a_websocket_on_any_process_hears_a_change(node):
    from websockets.sync.client import connect

    headers = {"Authorization": f"Bearer {node.key}"}
    watch = {"entity_type": "issue", "filters": {}}
    for n in range(2):  # two sockets: most likely one on each process
        with connect(f"ws://127.0.0.1:{node.port}/api/v1/ws", additional_headers=headers) as ws:
            ws.send(json.dumps({"type": "subscribe", "watch": watch, "subscription_id": f"fe-{n}"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
            created = node.cli_json("issue", "create", f"Heard by socket {n}")
            event = json.loads(ws.recv(timeout=15))["event"]
            assert event["type"] == "issue_created" and event["entity"]["id"] == created["id"]


def test_creates_sent_at_once_to_both_processes_are_all_written_once(node):
    """Each process appends to the bytes it last wrote; one that finds the file changed by the other reads it
    again. Identical requests (one request_id) create one issue."""
    from concurrent.futures import ThreadPoolExecutor

    def create(n: int) -> requests.Response:
        body = {
            "type": "mutate",
            "from": "github.com/org/frontend",
            "to": "github.com/org/api-service",
            "operation": "create_issue",
            "data": {"title": f"Created at once {n % 12}", "priority": 2},
            "metadata": {"request_id": f"req-at-once-{n % 12}", "requester": "test"},
        }
        return requests.post(
            f"{node.api}/federation/mutate", json=body, headers={"Authorization": f"Bearer {node.key}"}, timeout=60
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(24)))  # each of 12 requests sent twice
    assert [a.status_code for a in answers] == [200] * 24, [a.text[:200] for a in answers]
    assert {a.json()["status"] for a in answers} == {"completed"}, answers[0].text
    lines = (node.repo / ".sudocode" / "issues.jsonl").read_text().splitlines()
    titles = [json.loads(line)["title"] for line in lines]
    assert sorted(t for t in titles if t.startswith("Created at once")) == sorted(
        f"Created at once {n}" for n in range(12)
    )
    listed = node.cli_json("issue", "list")
    assert sorted(i["title"] for i in listed if i["title"].startswith("Created at once")) == sorted(
        f"Created at once {n}" for n in range(12)
    )


def test_every_query_is_audited_once_the_node_stops(node):
    db = node.repo / ".sudocode" / "federation.db"

    def audited() -> int:  # only this test's queries: an earlier test's batched rows may still be landing
        with sqlite3.connect(db) as conn:
            sql = "select count(*) from cross_repo_audit_log where operation_type='query' and correlation_id=?"
            return conn.execute(sql, ["audited-once"]).fetchone()[0]

    for _ in range(30):
        _titles(node, correlation_id="audited-once")
    eventually(lambda: audited() == 30, what="the 30 queries' audit rows")
    time.sleep(0.5)  # written once: no second copy lands after a batch is flushed
    assert audited() == 30


def test_queued_audit_rows_are_written_when_the_process_exits(node_repo_dir):
    """A process that batches its reads' audit rows and exits before the batch is due still writes them."""
    script = textwrap.dedent(
        """
        import sys
        from sudocode_cli import runtime

        runtime.setup(sys.argv[1])
        from audit import services

        services.BATCH_SECONDS = 600  # the batch thread would wait ten minutes: only the exit can write these
        services.batch_reads()
        for n in range(25):
            services.audit_record_later(
                operation="query", direction="incoming", local_repo="here", remote_repo="there", status="success"
            )
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(node_repo_dir)],
        cwd=REPO_ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(node_repo_dir / ".sudocode" / "federation.db") as conn:
        rows = conn.execute("select count(*) from cross_repo_audit_log where remote_repo='there'").fetchone()[0]
    assert rows == 25


@pytest.fixture
def node_repo_dir(tmp_path):
    from tests.conftest import make_git_repo, run_cli

    repo = make_git_repo(tmp_path / "repo")
    assert run_cli("--repo", str(repo), "init", env=cli_env()).code == 0
    assert os.path.exists(repo / ".sudocode")
    return repo
