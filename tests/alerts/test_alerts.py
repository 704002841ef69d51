"""The seed's three alerts (alerts.services): each fires once when its condition holds, its notifications go to
the configured channels (a local webhook receiver standing in for Slack, a generic webhook, email), and it
sends "resolved" once when the condition clears; rows, so a restart (a fresh evaluation) sends nothing twice.
The clock is explicit (`now=`): no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from alerts import delivery
from alerts.models import Alert, AlertDelivery, AlertStatus
from alerts.services import alerts_evaluate
from audit.models import AuditLog
from federation_site.config import default_config, write_config
from remotes import services as remote_services
from remotes.models import BreakerState, RemoteRepo, SyncStatus
from requests_app.models import CrossRepoRequest
from tests.conftest import Receiver

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
API, WEB = "github.com/org/api-service", "github.com/org/web"


@pytest.fixture
def hooks():
    slack, generic = Receiver(), Receiver()
    yield slack, generic
    slack.server.shutdown()
    generic.server.shutdown()


@pytest.fixture
def node(node_repo, hooks):
    slack, generic = hooks
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    config["remote_repos"] = [{"url": API, "trust_level": "verified"}, {"url": WEB, "trust_level": "verified"}]
    config["notifications"] = {
        "channels": [
            # the seed's example: Slack hears approvals and the unreachable alert
            {
                "type": "slack",
                "webhook_url": slack.url,
                "events": ["request_pending_approval", "remote_repo_unreachable"],
            },
            {"type": "webhook", "webhook_url": generic.url},  # no events listed: every alert
            {"type": "email", "to": ["ops@example.com"], "events": ["approval_backlog"]},
        ]
    }
    config["alerts"] = {"approval_backlog": 3, "error_rate_min_calls": 10}
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile()
    RemoteRepo.objects.update(added_at=T0 - timedelta(days=1), last_synced_at=T0, sync_status=SyncStatus.SYNCED)
    return node_repo


def evaluate(at: datetime) -> dict:
    """One run of the periodic task at `at`: evaluate, then send what is due."""
    outcome = alerts_evaluate(now=at)
    delivery.deliver_due(now=at)
    return outcome


def remote_down(url: str, *, since: datetime) -> None:
    RemoteRepo.objects.filter(url=url).update(
        sync_status=SyncStatus.UNREACHABLE,
        breaker_state=BreakerState.OPEN,
        last_synced_at=since,
        last_error="connection refused",
    )


def remote_up(url: str, *, at: datetime) -> None:
    RemoteRepo.objects.filter(url=url).update(
        sync_status=SyncStatus.SYNCED, breaker_state=BreakerState.CLOSED, last_synced_at=at, last_error=""
    )


def test_remote_unreachable_fires_after_ten_minutes_once_and_resolves_once(node, hooks):
    slack, generic = hooks
    remote_down(API, since=T0)
    assert evaluate(T0 + timedelta(minutes=10)) == {"fired": [], "resolved": []}  # not more than 10 minutes yet
    outcome = evaluate(T0 + timedelta(minutes=10, seconds=30))
    assert len(outcome["fired"]) == 1 and API in outcome["fired"][0]
    assert [m["state"] for m in slack.received] == ["firing"]
    fired = slack.received[0]
    assert fired["event"] == "remote_repo_unreachable" and fired["subject"] == API
    assert fired["text"].startswith("[sudocode] ALERT remote_repo_unreachable: github.com/org/api-service")
    assert fired["value"] == 10.5 and fired["threshold"] == 10.0
    assert [m["event"] for m in generic.received] == ["remote_repo_unreachable"]
    assert len(mail.outbox) == 0  # the email channel only hears the backlog

    for minutes in (11, 20, 60):  # still down: nothing new
        assert evaluate(T0 + timedelta(minutes=minutes)) == {"fired": [], "resolved": []}
    assert len(slack.received) == 1 and len(generic.received) == 1

    remote_up(API, at=T0 + timedelta(minutes=61))
    outcome = evaluate(T0 + timedelta(minutes=61))
    assert len(outcome["resolved"]) == 1
    assert [m["state"] for m in slack.received] == ["firing", "resolved"]
    assert slack.received[1]["text"].startswith("[sudocode] RESOLVED remote_repo_unreachable")
    assert slack.received[1]["resolved_at"] == (T0 + timedelta(minutes=61)).isoformat()
    evaluate(T0 + timedelta(minutes=62))
    assert len(slack.received) == 2 and len(generic.received) == 2
    alert = Alert.objects.get()
    assert (alert.status, alert.fired_at, alert.resolved_at) == (
        "resolved",
        T0 + timedelta(minutes=10, seconds=30),
        T0 + timedelta(minutes=61),
    )

    remote_down(API, since=T0 + timedelta(minutes=61))  # down again: a new alert, fired again
    evaluate(T0 + timedelta(minutes=75))
    assert [m["state"] for m in slack.received] == ["firing", "resolved", "firing"]
    assert Alert.objects.filter(status=AlertStatus.FIRING).count() == 1


def test_a_restart_sends_nothing_twice(node, hooks):
    """The state is in rows: an evaluation after a restart (nothing in memory) finds the alert firing, and a
    delivery already sent is not sent again; one whose worker died while sending is sent once after its claim
    expires."""
    slack, _ = hooks
    remote_down(WEB, since=T0)
    alerts_evaluate(now=T0 + timedelta(minutes=15))  # fired, but the process "dies" before delivering
    assert AlertDelivery.objects.filter(status="pending").count() == 2  # slack and the generic webhook
    # the worker claimed one and died mid-send
    stuck = AlertDelivery.objects.filter(target=slack.url).get()
    assert AlertDelivery.objects.filter(pk=stuck.pk).update(
        status="sending", next_attempt_at=T0 + timedelta(minutes=20)
    )
    # restart: evaluate again (nothing new fires), send what is due
    assert evaluate(T0 + timedelta(minutes=16)) == {"fired": [], "resolved": []}
    assert slack.received == []  # its claim has not expired
    evaluate(T0 + timedelta(minutes=21))
    evaluate(T0 + timedelta(minutes=22))
    assert [m["state"] for m in slack.received] == ["firing"]
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_approval_backlog_fires_over_the_threshold_and_emails(node, hooks):
    _, generic = hooks
    for n in range(4):
        CrossRepoRequest.objects.create(
            request_id=f"req-{n}",
            direction="incoming",
            from_repo=WEB,
            to_repo="github.com/org/frontend",
            request_type="create_issue",
            payload={},
            requires_approval=True,
            created_at=T0,
            updated_at=T0,
        )
    CrossRepoRequest.objects.filter(request_id="req-3").update(status="approved")
    assert evaluate(T0) == {"fired": [], "resolved": []}  # 3 waiting: not more than 3
    CrossRepoRequest.objects.filter(request_id="req-3").update(status="pending")
    fired = evaluate(T0 + timedelta(minutes=1))["fired"]
    assert fired == ["4 requests wait for approval (more than 3)"]
    assert [m.subject for m in mail.outbox] == [
        "[sudocode] ALERT approval_backlog: " + fired[0] + " (github.com/org/frontend)"
    ]
    assert generic.received[-1]["event"] == "approval_backlog" and generic.received[-1]["subject"] is None
    CrossRepoRequest.objects.filter(request_id__in=["req-0", "req-1"]).update(status="rejected")
    assert len(evaluate(T0 + timedelta(minutes=2))["resolved"]) == 1
    assert len(mail.outbox) == 2 and "RESOLVED approval_backlog" in mail.outbox[1].subject


def audit(n: int, at: datetime, remote: str, status: str) -> None:
    AuditLog.objects.create(
        log_id=f"log-{remote[-3:]}-{n}",
        operation_type="query",
        direction="outgoing",
        local_repo="x",
        remote_repo=remote,
        status=status,
        timestamp=at,
    )


def test_error_rate_over_five_percent_in_five_minutes_fires_per_remote(node, hooks):
    slack, generic = hooks
    for n in range(20):  # api: 2 of 20 failed (10%) within the window; web: 1 of 20 (5%: not more than 5%)
        audit(n, T0 - timedelta(seconds=10 * n + 5), API, "failed" if n in (3, 4) else "success")
        audit(n, T0 - timedelta(seconds=10 * n + 5), WEB, "failed" if n == 5 else "success")
    audit(99, T0 - timedelta(minutes=6), API, "failed")  # outside the window
    for n in range(100, 105):  # pending rows are not calls that ended
        audit(n, T0 - timedelta(seconds=n), WEB, "pending")
    fired = evaluate(T0)["fired"]
    assert fired == [f"{API}: 2 of 20 calls failed in the last 5 min (10.0%, more than 5%)"]
    assert [m["event"] for m in generic.received] == ["remote_error_rate"]
    assert slack.received == []  # Slack lists the events it hears
    # a minute later every row is still in the window; five minutes later none is (and too few calls are left)
    assert evaluate(T0 + timedelta(minutes=1)) == {"fired": [], "resolved": []}
    assert len(evaluate(T0 + timedelta(minutes=5))["resolved"]) == 1
    assert [m["state"] for m in generic.received] == ["firing", "resolved"]


def test_too_few_calls_and_disabled_alerts_fire_nothing(node):
    audit(1, T0, API, "failed")  # 1 of 1 failed: 100%, but fewer than error_rate_min_calls
    remote_down(WEB, since=T0 - timedelta(hours=1))
    from federation_site.config import AlertSettings

    assert alerts_evaluate(now=T0, settings=AlertSettings(enabled=False)) == {"fired": [], "resolved": []}
    assert [a.kind for a in Alert.objects.all()] == []
    assert [c for c in alerts_evaluate(now=T0)["fired"] if API in c] == []


def test_a_webhook_that_refuses_kills_the_delivery_and_a_down_one_is_retried(node, hooks):
    slack, generic = hooks
    remote_down(API, since=T0)
    generic.server.shutdown()
    generic.server.server_close()
    alerts_evaluate(now=T0 + timedelta(minutes=11))
    assert delivery.deliver_due(now=T0 + timedelta(minutes=11)) == {"delivered": 1, "retry": 1}
    row = AlertDelivery.objects.get(target=generic.url)
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at > T0 + timedelta(minutes=11)
    assert row.last_error


def test_the_banner_shows_firing_alerts_to_staff_only(node):
    remote_down(API, since=T0)
    alerts_evaluate(now=T0 + timedelta(minutes=11))
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True)
    staff = Client()
    staff.login(username="maintainer", password="pw")
    page = staff.get("/remotes/").content.decode()
    assert 'class="banner alert-banner"' in page and f"{API} unreachable for 11 min" in page
    assert "alert-banner" not in Client().get("/remotes/").content.decode()
