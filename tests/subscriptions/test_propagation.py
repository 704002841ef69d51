"""Live propagation between two real nodes (daphne, Celery worker and beat each, on 127.0.0.1): frontend's
issues reference api-service's, frontend subscribes by itself, and api-service's changes reach frontend by signed
webhook — with nobody running a sync — in order, once, across a subscriber that is down or killed mid-delivery.

Nothing here asks frontend for anything while waiting: the tests read its issues.jsonl and its database."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.nodes import Node, eventually, link

pytestmark = pytest.mark.slow


def wait_until(check, what: str, timeout: float = 60.0):
    return eventually(check, what=what, timeout=timeout)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("propagation")
    api = Node(root, "api-service")
    front = Node(root, "frontend")
    api.start()
    front.start()
    link(front, api, trust="verified")  # api-service lets frontend subscribe (verified: public fields)
    yield api, front
    front.stop()
    api.stop()


def make_blocked_pair(api: Node, front: Node, remote_id: str, local_id: str) -> None:
    made = api.cli("issue", "create", f"Endpoint for {local_id}", "--id", remote_id)
    assert made.code == 0, made.err
    made = front.cli(
        "issue", "create", f"Page {local_id}", "--id", local_id, "--status", "blocked",
        "-d", f"Blocked by: [[org/api-service#{remote_id}]]",
    )  # fmt: skip
    assert made.code == 0, made.err
    wait_until(lambda: watched_by(api, front, remote_id), f"frontend subscribing to {remote_id}")


def watched_by(api: Node, front: Node, remote_id: str) -> bool:
    with api.db() as conn:
        rows = conn.execute(
            "SELECT watch_config FROM cross_repo_subscriptions "
            "WHERE direction = 'incoming' AND status = 'active' AND from_repo = ?",
            (front.identity,),
        ).fetchall()
    return any(remote_id in (json.loads(w).get("filters") or {}).get("ids", []) for (w,) in rows)


def events_about(api: Node, remote_id: str) -> list[tuple[str, int]]:
    with api.db() as conn:
        rows = conn.execute(
            "SELECT event_id, seq FROM events_event WHERE entity_id = ? ORDER BY seq", (remote_id,)
        ).fetchall()
    return [(str(event_id).replace("-", ""), seq) for event_id, seq in rows]


def received_by(front: Node) -> list[tuple[str, int]]:
    with front.db() as conn:
        rows = conn.execute("SELECT event_id, seq FROM subscriptions_receivedevent ORDER BY id").fetchall()
    return [(str(event_id).replace("-", ""), seq) for event_id, seq in rows]


def cached_title(front: Node, remote_id: str) -> str | None:
    with front.db() as conn:
        row = conn.execute("SELECT cached_data FROM cross_repo_references WHERE remote_id = ?", (remote_id,)).fetchone()
    return json.loads(row[0]).get("title") if row and row[0] else None


def test_closing_the_remote_blocker_unblocks_the_local_issue_without_a_sync(pair):
    api, front = pair
    make_blocked_pair(api, front, "issue-084", "issue-100")
    queries_before = api.requests_to("/api/v1/federation/query")

    assert api.cli("issue", "close", "issue-084").code == 0
    wait_until(lambda: front.issue_status("issue-100") == "open", "issue-100 unblocking")

    assert api.requests_to("/api/v1/federation/query") == queries_before, "frontend asked instead of being told"
    shown = front.cli_json("issue", "show", "issue-100")
    assert shown["status"] == "open"
    assert [b["status"] for b in shown["blocked_by"] if b.get("remote")] == ["closed"]

    # Reopened over there: blocked again here.
    assert api.cli("issue", "update", "issue-084", "--status", "open").code == 0
    wait_until(lambda: front.issue_status("issue-100") == "blocked", "issue-100 blocked again")
    why = front.cli("issue", "why-blocked", "issue-100")
    assert why.code == 0 and "org/api-service#issue-084" in why.out


def test_forged_and_replayed_webhooks_are_refused_by_a_real_node(pair):
    api, front = pair

    def active_outgoing():
        with front.db() as conn:
            return conn.execute(
                "SELECT subscription_id FROM cross_repo_subscriptions"
                " WHERE direction = 'outgoing' AND status = 'active'"
            ).fetchone()

    # The automatic subscription of the module's first test may still be on its way on a loaded machine.
    (subscription_id,) = eventually(active_outgoing, timeout=60, what="front's active outgoing subscription")
    body = json.dumps({"type": "event", "from": api.identity, "event": {}}).encode()
    forged = requests.post(
        f"{front.api}/webhooks/cross-repo",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Sudocode-Subscription": subscription_id,
            "X-Sudocode-Signature": f"t={int(time.time())},v1={'0' * 64}",
        },
        timeout=10,
    )
    assert forged.status_code == 401, forged.text
    assert "error" in forged.json()


def test_a_subscriber_that_was_down_gets_every_event_in_order_when_it_is_back(pair):
    api, front = pair
    make_blocked_pair(api, front, "issue-085", "issue-101")
    front.stop()
    try:
        for n in range(4):
            assert api.cli("issue", "update", "issue-085", "--title", f"Endpoint rev {n}").code == 0
        assert api.cli("issue", "close", "issue-085").code == 0
    finally:
        front.start()

    wait_until(lambda: front.issue_status("issue-101") == "open", "issue-101 unblocking after the outage", 90)
    sent = events_about(api, "issue-085")[1:]  # after issue_created, which came before the subscription
    received = [r for r in received_by(front) if r in sent]
    assert received == sent  # every one, once, in order
    assert cached_title(front, "issue-085") == "Endpoint rev 3"


def test_a_subscriber_killed_mid_delivery_loses_nothing(pair):
    api, front = pair
    make_blocked_pair(api, front, "issue-086", "issue-102")
    errors: list[str] = []

    def write() -> None:
        for n in range(8):
            result = api.cli("issue", "update", "issue-086", "--title", f"Killed rev {n}")
            if result.code != 0:
                errors.append(result.err)

    writer = threading.Thread(target=write)
    writer.start()
    wait_until(lambda: any(r in events_about(api, "issue-086") for r in received_by(front)), "a first delivery")
    front.kill()  # SIGKILL: daphne, worker and beat, whatever they were doing
    time.sleep(1)
    front.start()
    writer.join(120)
    assert not errors
    sent = events_about(api, "issue-086")[1:]
    wait_until(lambda: [r for r in received_by(front) if r in sent] == sent, "every event applied after the kill", 90)
    assert cached_title(front, "issue-086") == "Killed rev 7"
