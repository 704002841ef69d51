"""Webhook delivery from the watched node: signed, in order, at least once, with backoff and a dead end, and
one subscriber's trouble never holding up another. Time is driven by passing `now`, never by sleeping."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditLog
from events.selectors import head_seq
from federation_site.config import default_config, write_config
from remotes import services as remote_services
from remotes.models import RemoteRepo
from subscriptions import delivery, signing
from subscriptions.models import Subscription
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

FRONTEND = "github.com/org/frontend"
MOBILE = "github.com/org/mobile"


class Hook:
    """A webhook receiver on 127.0.0.1 that records each POST (headers and raw body) and answers `status`
    (an int, or a list consumed one per request). With `hold`, it waits for `release` before answering."""

    def __init__(self) -> None:
        self.requests: list[SimpleNamespace] = []
        self.status: int | list[int] = 200
        self.hold = False
        self.release = threading.Event()
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                seen = SimpleNamespace(
                    headers=dict(self.headers.items()), raw=raw, body=json.loads(raw), answered=False
                )
                hook.requests.append(seen)
                hook.arrived.set()
                if hook.hold:
                    hook.release.wait(30)
                status = hook.status.pop(0) if isinstance(hook.status, list) else hook.status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                seen.answered = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1/webhooks/cross-repo"

    def seqs(self) -> list[int]:
        return [r.body["event"]["seq"] for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def other_hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def node(node_repo):
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["remote_repos"] = [{"url": FRONTEND, "trust_level": "trusted"}, {"url": MOBILE, "trust_level": "verified"}]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    keys = {
        url: remote_services.remote_rotate_key(remote=RemoteRepo.objects.get(url=url)) for url in (FRONTEND, MOBILE)
    }
    return SimpleNamespace(repo=node_repo, keys=keys, config=config)


@pytest.fixture
def no_wake(monkeypatch):
    """Deliveries happen only when the test calls them (no fan-out after each commit)."""
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)


def subscribe(node, url: str, *, remote: str = FRONTEND, sid: str = "sub-front", labels=("frontend-blocking",)):
    # The hook is on loopback: its origin must be the remote's declared endpoint (issue 17's URL guard).
    endpoint = url.split("/webhooks/")[0]
    remote_services.remote_update(remote=RemoteRepo.objects.get(url=remote), endpoint=endpoint)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys[remote]}")
    message = {
        "type": "subscribe",
        "from": remote,
        "subscription_id": sid,
        "watch": {"entity_type": "issue", "filters": {"labels": list(labels)}},
        "callback": {"url": url, "auth": {"type": "bearer", "token": f"whk-{sid}"}},
    }
    response = client.post("/api/v1/federation/subscribe", message, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def blocking_issue(title: str = "Add user profile endpoint"):
    return services.issue_create(title=title, actor="alice", tags=["frontend-blocking"])


def row(sid: str = "sub-front") -> Subscription:
    return Subscription.objects.get(pk=sid)


def test_events_arrive_signed_in_order_with_their_headers(node, hook):
    answer = subscribe(node, hook.url)
    issue = blocking_issue()
    services.issue_close(issue=issue.sudocode_id, actor="bob")

    assert hook.seqs() == [1, 2]  # woken after each commit: no sync, no poll
    first, second = hook.requests
    for seen in hook.requests:
        signed_at = signing.verify(answer["secret"], seen.headers[signing.SIGNATURE_HEADER], seen.raw)
        assert abs(signed_at - timezone.now().timestamp()) < 60
        assert seen.headers["Content-Type"] == "application/json"
        assert seen.headers["Authorization"] == "Bearer whk-sub-front"
        assert seen.headers["X-Sudocode-Subscription"] == "sub-front"
        assert seen.headers["X-Sudocode-From"] == "github.com/org/api-service"
        assert seen.headers["X-Sudocode-Event-Id"] == seen.body["event"]["id"]
        assert seen.headers["X-Sudocode-Sequence"] == str(seen.body["event"]["seq"])
        assert seen.headers["X-Correlation-ID"]
        assert (seen.body["type"], seen.body["from"], seen.body["to"]) == (
            "event",
            "github.com/org/api-service",
            FRONTEND,
        )
    assert first.headers["X-Sudocode-Previous-Sequence"] == "0"
    assert second.headers["X-Sudocode-Previous-Sequence"] == "1"
    assert second.body["event"]["changes"]["status"] == {"from": "open", "to": "closed"}
    assert second.body["event"]["entity"]["canonical_ref"] == f"org/api-service#{issue.sudocode_id}"
    sub = row()
    assert (sub.cursor_seq, sub.last_seq, sub.event_count, sub.delivery_status) == (2, 2, 2, "idle")
    assert sub.last_event_at is not None


def test_a_tampered_body_does_not_verify(node, hook):
    answer = subscribe(node, hook.url)
    blocking_issue()
    [seen] = hook.requests
    with pytest.raises(signing.SignatureError):
        signing.verify(answer["secret"], seen.headers[signing.SIGNATURE_HEADER], seen.raw.replace(b"open", b"shut"))


def test_events_that_do_not_match_are_skipped_but_the_cursor_moves_on(node, hook):
    subscribe(node, hook.url)
    services.issue_create(title="Backend only", actor="alice", tags=["backend"])
    services.issue_create(title="Also not", actor="alice")
    blocking_issue()
    assert hook.seqs() == [3]
    assert hook.requests[0].headers["X-Sudocode-Previous-Sequence"] == "0"  # nothing in between was ours
    assert (row().cursor_seq, row().last_seq) == (3, 3)
    services.issue_create(title="Backend again", actor="alice", tags=["backend"])
    assert hook.seqs() == [3]
    assert (row().cursor_seq, row().last_seq, row().event_count) == (4, 3, 1)


def test_a_failing_receiver_is_retried_with_backoff_then_dead_and_redelivered_in_order(node, hook, no_wake):
    subscribe(node, hook.url)
    blocking_issue("One")
    blocking_issue("Two")
    hook.status = 503
    now = timezone.now()
    assert delivery.deliver_subscription("sub-front", now=now) == "retrying"
    first = row()
    assert (first.delivery_status, first.attempts, first.cursor_seq) == ("retrying", 1, 0)
    assert "HTTP 503" in first.last_error
    assert delivery.deliver_subscription("sub-front", now=now) == "not due"  # waits for its time
    delays = []
    while row().delivery_status == "retrying":
        previous = now
        now = row().next_attempt_at
        delays.append((now - previous).total_seconds())
        delivery.deliver_subscription("sub-front", now=now)
    dead = row()
    assert (dead.delivery_status, dead.attempts) == ("dead", delivery.MAX_ATTEMPTS)
    assert "gave up after" in dead.last_error
    assert len(hook.requests) == delivery.MAX_ATTEMPTS
    assert set(hook.seqs()) == {1}  # never the second before the first
    assert delays[0] <= 4 and max(delays) <= 30 * 60 and sum(delays) > 3600  # for hours, capped
    assert delivery.due(now=now + timedelta(days=1)) == []  # the periodic task leaves a dead stream alone
    failures = AuditLog.objects.filter(operation_type="event", direction="outgoing", status="failed")
    assert failures.count() == delivery.MAX_ATTEMPTS and failures.first().payload["seq"] == 1

    # Between the attempts the subscriber's circuit breaker was open (5 failures in a row): the stream waited
    # for its probes without counting attempts, so the 15 attempts took as many POSTs and audit rows.
    assert RemoteRepo.objects.get(url=FRONTEND).breaker_state == "open"
    RemoteRepo.objects.filter(url=FRONTEND).update(breaker_next_try_at=timezone.now())  # this test's clock ran ahead

    hook.requests.clear()
    hook.status = 200
    assert delivery.redeliver("sub-front") is True
    assert (row().delivery_status, row().attempts) == ("pending", 0)
    assert delivery.fan_out() == {"sub-front": "delivered"}
    assert hook.seqs() == [1, 2]
    assert [r.headers["X-Sudocode-Previous-Sequence"] for r in hook.requests] == ["0", "1"]
    assert (row().delivery_status, row().last_seq, row().last_error) == ("idle", 2, "")
    assert delivery.redeliver("sub-front") is False  # not dead


def test_a_subscriber_whose_circuit_breaker_is_open_waits_for_the_probe_without_counting_attempts(node, hook, no_wake):
    subscribe(node, hook.url)
    blocking_issue()
    hook.status = 503
    now = timezone.now()
    for attempt in range(1, 6):  # the 5th failure in a row opens the breaker (http.circuit_breaker.failures)
        assert delivery.deliver_subscription("sub-front", now=now) == "retrying"
        assert row().attempts == attempt
        now = row().next_attempt_at
    probe_at = RemoteRepo.objects.get(url=FRONTEND).breaker_next_try_at
    assert now < probe_at
    assert delivery.deliver_subscription("sub-front", now=now) == "waiting"
    waiting = row()
    assert (waiting.delivery_status, waiting.attempts, waiting.next_attempt_at) == ("retrying", 5, probe_at)
    assert "paused after 5 failures in a row" in waiting.last_error and len(hook.requests) == 5
    hook.status = 200
    assert delivery.deliver_subscription("sub-front", now=probe_at) == "delivered"  # the probe, answered
    assert hook.seqs()[-1] == 1 and len(hook.requests) == 6
    assert RemoteRepo.objects.get(url=FRONTEND).breaker_state == "closed"


def test_a_4xx_is_dead_at_once_but_429_is_retried(node, hook, no_wake):
    subscribe(node, hook.url)
    blocking_issue()
    hook.status = [429, 400]
    assert delivery.deliver_subscription("sub-front") == "retrying"
    assert delivery.deliver_subscription("sub-front", now=row().next_attempt_at) == "dead"
    assert "refused" in row().last_error and "HTTP 400" in row().last_error


def test_410_gone_cancels_the_subscription(node, hook, no_wake):
    subscribe(node, hook.url)
    blocking_issue()
    hook.status = 410
    assert delivery.deliver_subscription("sub-front") == "cancelled"
    assert (row().status, row().cursor_seq) == ("cancelled", 0)
    assert "410" in row().last_error
    blocking_issue("Another")
    assert delivery.fan_out() == {}
    assert len(hook.requests) == 1


def test_an_unreachable_receiver_is_retried(node, no_wake):
    subscribe(node, "http://127.0.0.1:9/api/v1/webhooks/cross-repo")  # nothing listens on port 9
    blocking_issue()
    assert delivery.deliver_subscription("sub-front") == "retrying"
    assert "ConnectionError" in row().last_error


def test_a_cancelled_subscription_gets_nothing_more(node, hook):
    subscribe(node, hook.url)
    blocking_issue()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys[FRONTEND]}")
    assert client.delete("/api/v1/federation/subscribe/sub-front").status_code == 200
    blocking_issue("After the cancel")
    assert hook.seqs() == [1]


def test_a_subscriber_that_always_fails_does_not_hold_up_another(node, hook, other_hook, no_wake):
    subscribe(node, hook.url, sid="sub-broken")
    subscribe(node, other_hook.url, remote=MOBILE, sid="sub-healthy")  # another remote: another endpoint
    for n in range(3):
        blocking_issue(f"Issue {n}")
    hook.status = 500
    assert delivery.fan_out() == {"sub-broken": "retrying", "sub-healthy": "delivered"}
    assert other_hook.seqs() == [1, 2, 3]
    assert hook.seqs() == [1]
    blocking_issue("Issue 3")
    # The broken one is not due yet: only the healthy one is delivered, at once.
    assert delivery.fan_out() == {"sub-healthy": "delivered"}
    assert other_hook.seqs() == [1, 2, 3, 4]
    assert row("sub-broken").attempts == 1


def test_a_slow_subscriber_does_not_hold_up_another(node, hook, other_hook, no_wake):
    subscribe(node, hook.url, sid="sub-slow")
    subscribe(node, other_hook.url, remote=MOBILE, sid="sub-fast")
    for n in range(3):
        blocking_issue(f"Issue {n}")
    hook.hold = True  # answers only when released
    outcome: dict = {}
    fan = threading.Thread(target=lambda: outcome.update(delivery.fan_out()))
    fan.start()
    try:
        assert hook.arrived.wait(20)
        for _ in range(200):  # the fast one gets everything while the slow one still holds its first event
            if len(other_hook.requests) == 3:
                break
            threading.Event().wait(0.05)
        assert other_hook.seqs() == [1, 2, 3]
        assert len(hook.requests) == 1 and not hook.requests[0].answered
    finally:
        hook.release.set()
        fan.join(30)
    assert outcome["sub-fast"] == "delivered"
    assert hook.seqs() in ([1, 2, 3], [1])  # [1] if the held answer came after the read timeout (retried later)


def test_an_expired_claim_is_taken_over(node, hook, no_wake):
    subscribe(node, hook.url)
    blocking_issue()
    # A worker claimed the row and died before sending.
    now = timezone.now()
    Subscription.objects.filter(pk="sub-front").update(delivery_status="sending", next_attempt_at=now + delivery.LEASE)
    assert delivery.due(now=now) == []
    assert delivery.deliver_subscription("sub-front", now=now) == "not due"
    later = now + delivery.LEASE + timedelta(seconds=1)
    assert delivery.due(now=later) == ["sub-front"]
    assert delivery.fan_out(now=later) == {"sub-front": "delivered"}
    assert hook.seqs() == [1]
    assert row().delivery_status == "idle"


def test_a_run_that_lost_its_claim_stops(node, hook, no_wake):
    subscribe(node, hook.url)
    blocking_issue()
    now = timezone.now()
    stream = delivery._Stream.open("sub-front", now)
    assert stream is not None and delivery._Stream.open("sub-front", now) is None  # one claim at a time
    # Its lease ran out and another worker took the row over.
    Subscription.objects.filter(pk="sub-front").update(next_attempt_at=now + timedelta(minutes=5))
    assert delivery._drive([stream], None) == {"sub-front": "lost"}
    assert hook.requests == []


def test_a_subscriber_that_may_no_longer_subscribe_is_stopped_with_the_reason(node, hook, no_wake):
    subscribe(node, hook.url)
    blocking_issue()
    RemoteRepo.objects.filter(url=FRONTEND).update(trust_level="untrusted")
    assert delivery.deliver_subscription("sub-front") == "dead"
    assert "untrusted" in row().last_error
    assert hook.requests == []


def test_a_verified_subscriber_hears_public_fields_only(node, hook):
    subscribe(node, hook.url, remote=MOBILE, sid="sub-mobile")
    issue = blocking_issue()
    services.issue_update(issue=issue.sudocode_id, actor="alice", content="internal notes", priority=0)
    last = hook.requests[-1].body["event"]
    assert "content" not in last["changes"] and last["changes"]["priority"]["to"] == 0


def test_a_broker_that_is_down_does_not_fail_the_change(node, hook, monkeypatch):
    from subscriptions import tasks

    def down():
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.fan_out, "delay", down)
    subscribe(node, hook.url)
    blocking_issue()  # committed; the wake-up was lost
    assert hook.requests == []
    assert delivery.due() == ["sub-front"]  # the periodic task finds it
    assert delivery.fan_out() == {"sub-front": "delivered"}
    assert head_seq() == row().cursor_seq == 1


def test_without_subscribers_a_change_queues_no_fan_out(node, monkeypatch):
    from subscriptions import tasks

    queued = []
    monkeypatch.setattr(tasks.fan_out, "delay", lambda: queued.append(1))
    blocking_issue()
    assert queued == []
    Subscription.objects.create(
        subscription_id="sub-x",
        direction="incoming",
        from_repo=FRONTEND,
        to_repo="github.com/org/api-service",
        watch_config={"entity_type": "issue"},
        callback_url="http://127.0.0.1:9/",
        secret="x" * 64,
        created_at=timezone.now(),
        updated_at=timezone.now(),
    )
    blocking_issue("Now somebody listens")
    assert queued == [1]


def test_a_fan_out_woken_while_another_runs_leaves_the_work_to_it_and_asks_for_one_more_round(monkeypatch):
    rounds: list[int] = []

    def once(now):
        rounds.append(1)
        if len(rounds) == 1:  # meanwhile an event commits and its wake-up finds this fan-out running
            assert delivery.fan_out() == {}
        return {}

    monkeypatch.setattr(delivery, "_fan_out_once", once)
    delivery.fan_out()
    assert len(rounds) == 2  # the running one went round again for it
    assert not delivery._fanning_out.locked()
