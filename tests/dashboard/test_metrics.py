"""`/metrics` on a real node (`serve`: daphne plus the supervised worker and beat, so multiprocess mode): who may
read it, calls counted exactly as the audit log records them, the approval queue and the time to a decision,
WebSocket connections, the worker's liveness, and the database gauges agreeing with the database."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from federation_site.secrets import set_secret
from tests.nodes import Node, eventually, free_port
from tests.requests_app.test_use_case_1 import PASSWORD, STAFF, decide, staff_session

pytestmark = pytest.mark.slow

TOKEN = "metrics-token-for-the-test"
FRONTEND = "github.com/org/frontend"


class Served:
    def __init__(self, node: Node, key: str):
        self.node, self.key = node, key


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("metrics"), "api-service")
    stale = node.repo / ".sudocode" / "metrics"
    stale.mkdir()
    (stale / "counter_99999.db").write_bytes(b"an earlier run's process")  # serve must not add it up
    set_secret(node.repo / ".sudocode" / "secrets.env", "METRICS_TOKEN", TOKEN)
    # frontend's endpoint answers nothing: the worker's callbacks to it fail, each with its audit row.
    nowhere = f"http://127.0.0.1:{free_port()}/api/v1"
    added = node.cli("remote", "add", FRONTEND, "--trust", "verified", "--endpoint", nowhere, "--no-discover")
    assert added.code == 0, added.err
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    node.start()
    try:
        node.create_staff(STAFF, PASSWORD)
        yield Served(node, key)
    finally:
        node.stop()


def scrape(node: Node) -> dict[tuple[str, frozenset], float]:
    response = requests.get(f"{node.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def audited_calls(node: Node) -> dict[tuple[str, str, str, str], float]:
    with node.db() as db:
        rows = db.execute(  # a pending row is counted once it has its outcome (audit.services.audit_complete)
            "SELECT operation_type, remote_repo, direction, status FROM cross_repo_audit_log WHERE status != 'pending'"
        ).fetchall()
    return {key: float(n) for key, n in Counter(rows).items()}


def counted_calls(found: dict) -> dict[tuple[str, str, str, str], float]:
    return {
        (labels["operation"], labels["remote"], labels["direction"], labels["outcome"]): v
        for (name, frozen), v in found.items()
        if name == "sudocode_cross_repo_calls_total" and (labels := dict(frozen))
    }


def test_metrics_are_refused_without_staff_or_the_token(served):
    url = f"{served.node.base}/metrics"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    # A remote's federation key is not the metrics token.
    remote = requests.get(url, headers={"Authorization": f"Bearer {served.key}"}, timeout=10)
    assert remote.status_code == 403
    assert staff_session(served.node).get(url, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 200


def test_serve_starts_with_an_empty_multiprocess_folder(served):
    folder = served.node.repo / ".sudocode" / "metrics"
    assert not (folder / "counter_99999.db").exists()
    assert "metrics/" in (served.node.repo / ".sudocode" / ".gitignore").read_text().splitlines()


def test_calls_in_are_counted_as_the_audit_log_records_them(served):
    node, key = served.node, served.key
    before = scrape(node)
    for _ in range(3):
        answer = requests.post(
            f"{node.api}/federation/query",
            json={"entity": "issue", "filters": {"status": "open"}},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    after = scrape(node)

    calls = "sudocode_cross_repo_calls_total"
    labels = {"operation": "query", "remote": FRONTEND, "direction": "incoming"}
    assert value(after, calls, **labels, outcome="success") - value(before, calls, **labels, outcome="success") == 3
    timed = "sudocode_cross_repo_call_duration_seconds"
    assert value(after, f"{timed}_count", **labels) - value(before, f"{timed}_count", **labels) == 3
    assert (
        value(after, f"{timed}_bucket", **labels, le="+Inf") - value(before, f"{timed}_bucket", **labels, le="+Inf")
        == 3
    )
    # Buckets are cumulative, and a local query answers well under 10 s.
    les = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0"]
    cumulative = [value(after, f"{timed}_bucket", **labels, le=le) for le in les]
    assert cumulative == sorted(cumulative) and cumulative[-1] == value(after, f"{timed}_count", **labels)

    # Every audit row is one count: the counter and the table agree label for label (reads' rows are written in
    # batches, within 0.1 s of the answer).
    eventually(lambda: counted_calls(after) == audited_calls(node), what="the queries' audit rows written")


def _mutate(node: Node, key: str, request_id: str) -> requests.Response:
    message = {
        "type": "mutate",
        "from": FRONTEND,
        "operation": "create_issue",
        "data": {"title": "Add user profile endpoint"},
        "metadata": {"request_id": request_id},
    }
    return requests.post(
        f"{node.api}/federation/mutate", json=message, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_the_approval_queue_and_the_time_to_a_decision(served):
    node = served.node
    before = scrape(node)
    sent = _mutate(node, served.key, "req-metrics-1")
    assert sent.status_code in (200, 202), sent.text
    assert sent.json()["status"] == "pending_approval", sent.json()
    waiting = scrape(node)
    assert value(waiting, "sudocode_approval_queue_depth") == value(before, "sudocode_approval_queue_depth") + 1

    maintainer = staff_session(node)
    assert decide(maintainer, node, "req-metrics-1", "reject", reason="not this quarter").status_code == 302
    after = scrape(node)
    assert value(after, "sudocode_approval_queue_depth") == value(before, "sudocode_approval_queue_depth")
    decided = "sudocode_approval_decision_seconds_bucket"
    grew = {
        le: value(after, decided, decision="rejected", le=le) - value(before, decided, decision="rejected", le=le)
        for le in ("60.0", "+Inf")
    }
    assert grew == {"60.0": 1, "+Inf": 1}  # decided within a minute of arriving
    assert value(after, decided, decision="approved", le="+Inf") == value(
        before, decided, decision="approved", le="+Inf"
    )

    # The delivery gauges are the rows: the rejection's callback to frontend is waiting or dead, never both.
    with node.db() as db:
        rows = dict(
            db.execute(
                "SELECT status, COUNT(*) FROM requests_app_delivery WHERE kind = 'callback' GROUP BY status"
            ).fetchall()
        )
    now = scrape(node)
    shown = value(now, "sudocode_delivery_backlog", kind="callback") + value(
        now, "sudocode_dead_deliveries", kind="callback"
    )
    assert shown == sum(n for status, n in rows.items() if status != "delivered")
    assert shown >= 1

    # The worker's callback attempts are audited in its own process: the scrape adds its counts to daphne's.
    def callbacks() -> int:
        with node.db() as db:
            return db.execute("SELECT COUNT(*) FROM cross_repo_audit_log WHERE operation_type = 'callback'").fetchone()[
                0
            ]

    eventually(callbacks, timeout=30, what="the worker's first callback attempt")
    eventually(lambda: counted_calls(scrape(node)) == audited_calls(node), what="the counts matching the audit log")
    found = scrape(node)
    assert value(found, "sudocode_cross_repo_calls_total", operation="callback", remote=FRONTEND,
                 direction="outgoing", outcome="failed") >= 1  # fmt: skip
    pids = {path.stem.rsplit("_", 1)[-1] for path in (node.repo / ".sudocode" / "metrics").glob("*.db")}
    assert len(pids) >= 2  # daphne and the worker, each in its own files


def test_websocket_connections_go_up_and_down(served):
    from websockets.sync.client import connect

    node = served.node
    url = f"ws://127.0.0.1:{node.port}/api/v1/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {served.key}"}) as ws:
        ws.send(json.dumps({"type": "ping"}))
        ws.recv(timeout=10)
        assert value(scrape(node), "sudocode_websocket_connections") == 1
    eventually(lambda: value(scrape(node), "sudocode_websocket_connections") == 0, what="the count going down")


def test_the_worker_is_reported_alive_and_subscriptions_counted(served):
    node = served.node
    found = eventually(
        lambda: (s := scrape(node)) and value(s, "sudocode_worker_up") == 1 and s,
        timeout=30,
        what="the worker's heartbeat",
    )
    assert value(found, "sudocode_worker_last_seen_seconds") < 10
    with node.db() as db:
        active = dict(
            db.execute(
                "SELECT direction, COUNT(*) FROM cross_repo_subscriptions WHERE status = 'active' GROUP BY direction"
            ).fetchall()
        )
    for direction in ("incoming", "outgoing"):
        assert value(found, "sudocode_active_subscriptions", direction=direction) == active.get(direction, 0)
