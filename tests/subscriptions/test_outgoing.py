"""The watching node subscribes by itself to the remote entities its issues reference: the outgoing rows follow
the references (created, watch changed, cancelled) and are pushed to the remote (a local fake that records the
calls), with backoff while it is down and a visible reason when it refuses."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from remotes import services as remote_services
from remotes.models import CrossRepoReference, RemoteRepo
from subscriptions import outgoing
from subscriptions.models import Subscription
from tests.conftest import cli_env, run_cli
from tests.subscriptions.watching_fakes import (
    LOCAL,
    OUR_REST,
    REMOTE,
    FakeRemote,
    remote_issue,
    watching_node,
)
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

BLOCKER = {
    "type": "blocked-by",
    "remote_repo": REMOTE,
    "remote_id": "issue-084",
    "canonical_ref": "org/api-service#issue-084",
}


@pytest.fixture
def fake():
    remote = FakeRemote().start()
    remote.entities["issue-084"] = remote_issue("issue-084")
    yield remote
    remote.stop()


@pytest.fixture
def node(node_repo, fake, monkeypatch):
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)  # nobody watches this node
    return watching_node(node_repo, fake)


def auto_rows() -> list[Subscription]:
    return list(Subscription.objects.filter(direction="outgoing", auto=True).order_by("subscription_id"))


def make_past(row: Subscription) -> None:
    Subscription.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_it_subscribes_to_what_our_issues_reference_or_are_blocked_by(node, fake):
    services.issue_create(
        title="Add user profile page",
        actor="ana",
        content="Needs [[org/api-service#issue-090]] too.",
        remote_relationships=[BLOCKER],
    )
    [row] = auto_rows()
    assert row.subscription_id == outgoing.auto_subscription_id(remote_url=REMOTE, kind="issue")
    assert row.subscription_id.startswith("auto-")
    assert (row.delivery_status, row.status, row.to_repo, row.from_repo) == ("confirmed", "active", REMOTE, LOCAL)
    assert row.last_seq == fake.head_seq  # a new subscription hears what happens from the remote's head on
    [call] = fake.subscribes
    body = call["body"]
    assert call["authorization"] == "Bearer key-frontend-at-api"  # our API key at that remote
    assert body["type"] == "subscribe" and body["from"] == LOCAL and body["to"] == REMOTE
    assert body["subscription_id"] == row.subscription_id
    assert body["watch"] == {"entity_type": "issue", "filters": {"ids": ["issue-084", "issue-090"]}}
    assert body["callback"] == {
        "url": f"{OUR_REST}/webhooks/cross-repo",
        "auth": {"type": "bearer", "token": row.callback_auth["token"]},
        "secret": row.secret,
    }
    assert "since" not in body


def test_the_watched_entities_are_fetched_once_subscribed(node, fake):
    fake.entities["issue-084"] = remote_issue("issue-084", status="closed")
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    assert ["issue-084"] in fake.queries
    ref = CrossRepoReference.objects.get(remote_id="issue-084")
    assert ref.cached_data["status"] == "closed" and ref.fetch_status == "success"


def test_the_subscription_id_is_the_same_on_every_run_and_per_remote_and_kind():
    a = outgoing.auto_subscription_id(remote_url=REMOTE, kind="issue")
    assert a == outgoing.auto_subscription_id(remote_url=REMOTE.upper(), kind="issue")
    assert a != outgoing.auto_subscription_id(remote_url=REMOTE, kind="spec")
    assert a != outgoing.auto_subscription_id(remote_url="github.com/org/other", kind="issue")
    assert outgoing.auto_subscription_id(remote_url=REMOTE, kind="issue", chunk=2) == f"{a}-2"


def test_a_changed_reference_changes_the_watch_under_the_same_id(node, fake):
    issue = services.issue_create(title="Page", actor="ana", content="[[org/api-service#issue-084]]")
    services.issue_update(
        issue=issue.uuid, actor="ana", content="[[org/api-service#issue-084]] [[org/api-service#issue-085]]"
    )
    first, second = fake.subscribes
    assert first["body"]["subscription_id"] == second["body"]["subscription_id"]
    assert second["body"]["watch"]["filters"]["ids"] == ["issue-084", "issue-085"]
    [row] = auto_rows()
    assert row.delivery_status == "confirmed" and row.last_seq == fake.head_seq


def test_a_reference_no_longer_held_cancels_the_subscription_there(node, fake):
    issue = services.issue_create(title="Page", actor="ana", content="See [[org/api-service#issue-084]]")
    [row] = auto_rows()
    services.issue_update(issue=issue.uuid, actor="ana", content="Nothing remote any more.")
    row.refresh_from_db()
    assert fake.deletes == [row.subscription_id]
    assert (row.status, row.delivery_status) == ("cancelled", "confirmed")
    # Referenced again: the same id is subscribed again.
    services.issue_update(issue=issue.uuid, actor="ana", content="Back: [[org/api-service#issue-084]]")
    row.refresh_from_db()
    assert (row.status, row.delivery_status) == ("active", "confirmed")
    assert len(fake.subscribes) == 2


def test_reconciling_again_changes_nothing(node, fake):
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    assert outgoing.subscriptions_reconcile() == {"created": [], "updated": [], "cancelled": []}
    assert outgoing.push_due() == {}
    assert len(fake.subscribes) == 1


def test_pushes_back_off_while_the_remote_is_down_and_go_through_when_it_is_back(node, fake):
    fake.fail_with = 503
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    [row] = auto_rows()
    assert row.delivery_status == "retrying" and row.attempts == 1
    assert "503" in row.last_error
    wait = (row.next_attempt_at - timezone.now()).total_seconds()
    assert 0 < wait <= 2.5
    assert outgoing.subscription_push(subscription_id=row.subscription_id) == "not due"  # no retry storm
    for attempt in range(2, 5):
        make_past(row)
        assert outgoing.push_due() == {"retrying": 1}
        row.refresh_from_db()
        assert row.attempts == attempt
    # Backoff grows, with jitter, and never gives up while the remote is down.
    assert (row.next_attempt_at - timezone.now()).total_seconds() > 3
    Subscription.objects.filter(pk=row.pk).update(attempts=40)
    make_past(row)
    assert outgoing.push_due() == {"retrying": 1}  # the 5th failure in a row: the circuit breaker opens
    fake.fail_with = None
    make_past(row)
    assert outgoing.push_due() == {"paused": 1}  # not even tried before the probe time, the attempt not counted
    row.refresh_from_db()
    assert row.attempts == 41 and "(circuit breaker)" in row.last_error
    RemoteRepo.objects.update(breaker_next_try_at=timezone.now())  # the cool-down is over
    make_past(row)
    assert outgoing.push_due() == {"confirmed": 1}
    row.refresh_from_db()
    assert (row.delivery_status, row.attempts, row.last_error, row.next_attempt_at) == ("confirmed", 0, "", None)


def test_a_remote_that_is_not_listening_at_all_is_retried(node, fake):
    fake.stop()
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    [row] = auto_rows()
    assert row.delivery_status == "retrying"
    assert "Connection" in row.last_error or "refused" in row.last_error.lower()


def test_a_refusal_is_retried_with_backoff_and_shows_its_reason(node, fake):
    fake.fail_with = 403
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    [row] = auto_rows()
    # Not dead: the remote's maintainers may trust us tomorrow, and nothing would tell us (issue 14).
    assert row.delivery_status == "retrying" and "403" in row.last_error and "refused by the fake" in row.last_error
    assert row.attempts == 1 and row.next_attempt_at > timezone.now()
    assert outgoing.subscription_push(subscription_id=row.subscription_id) == "not due"  # waits its backoff
    make_past(row)
    assert outgoing.due() == [row.subscription_id]
    assert outgoing.subscription_push(subscription_id=row.subscription_id) == "refused"
    row.refresh_from_db()
    assert row.attempts == 2
    fake.fail_with = None  # the remote now trusts us: the next step of the backoff succeeds
    make_past(row)
    assert outgoing.push_due() == {"confirmed": 1}
    row.refresh_from_db()
    assert row.delivery_status == "confirmed" and row.last_error == "" and row.attempts == 0


def test_a_change_of_our_config_retries_failed_subscriptions_at_once(node, fake):
    fake.fail_with = 403
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    [row] = auto_rows()
    assert row.delivery_status == "retrying" and row.next_attempt_at > timezone.now()
    fake.fail_with = None
    # The admin (or `remote trust`, the management API, an edit of the file) changes the remote's trust level:
    # remotes_reconcile applies it and remotes.signals.remotes_changed makes the failed rows due now, and
    # queues their push (run at once here: the test settings' tasks are eager).
    remote_services.remote_update(remote=node.remote, trust_level="trusted")
    row.refresh_from_db()
    assert row.delivery_status == "confirmed" and row.attempts == 0 and len(fake.subscribes) == 1


def test_without_a_declared_endpoint_the_row_says_what_to_do(node_repo, fake, monkeypatch):
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    watching_node(node_repo, fake, rest=None)
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    [row] = auto_rows()
    assert row.delivery_status == "dead" and "endpoints.rest" in row.last_error
    assert fake.subscribes == []
    watching_node(node_repo, fake, rest=OUR_REST)  # declared now: the next reconcile revives the row
    assert outgoing.subscriptions_sync()["updated"] == [row.subscription_id]
    row.refresh_from_db()
    assert row.delivery_status == "confirmed" and row.callback_url == f"{OUR_REST}/webhooks/cross-repo"


def test_a_manual_subscription_is_pushed_with_its_filters(node, fake):
    row = outgoing.subscription_create(
        remote=node.remote, watch={"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}}
    )
    row.refresh_from_db()
    assert row.delivery_status == "confirmed" and not row.auto
    assert fake.subscribes[-1]["body"]["watch"] == {
        "entity_type": "issue",
        "filters": {"labels": ["frontend-blocking"]},
    }
    with pytest.raises(ValidationError) as err:
        outgoing.subscription_create(remote=node.remote, watch={"entity_type": "issue", "filters": {"status": "opn"}})
    assert "watch.filters.status" in err.value.message_dict


def test_a_manual_subscription_from_a_sequence_number_says_since(node, fake):
    outgoing.subscription_create(remote=node.remote, watch={"entity_type": "issue", "filters": {}}, since=7)
    assert fake.subscribes[-1]["body"]["since"] == 7


def test_the_cli_subscribes(node, fake):
    result = run_cli(
        "--repo", str(node.repo), "remote", "subscribe", "org/api-service", "--entity", "issue", "--label",
        "frontend-blocking", "--format", "json", env=cli_env(),
    )  # fmt: skip
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert info["delivery_status"] == "confirmed" and info["watch"]["filters"] == {"labels": ["frontend-blocking"]}
    assert fake.subscribes[-1]["body"]["subscription_id"] == info["subscription_id"]
    bad = run_cli("--repo", str(node.repo), "remote", "subscribe", "org/api-service", "--filters", "[1]")
    assert bad.code == 2 and "--filters" in bad.err


def test_a_failed_subscription_can_be_retried_by_hand_and_by_the_cli(node, fake):
    fake.fail_with = 403
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    [row] = auto_rows()
    assert row.delivery_status == "retrying"
    fake.fail_with = None  # the remote now trusts us
    outgoing.subscription_retry(subscription_id=row.subscription_id)
    row.refresh_from_db()
    assert row.delivery_status == "confirmed"


def test_the_cli_retries_now_or_says_what_to_give_it(node_repo):
    # The CLI works on the node's own database (not this test's): nothing failed there yet.
    repo = ["--repo", str(node_repo)]
    nothing = run_cli(*repo, "subscription", "retry", "--all", env=cli_env())
    assert nothing.code == 0 and "0 outgoing subscription(s) due now" in nothing.out, nothing.err
    assert run_cli(*repo, "subscription", "retry", env=cli_env()).code == 2  # an id or --all
    unknown = run_cli(*repo, "subscription", "retry", "sub-nope", env=cli_env())
    assert unknown.code == 1 and "subscriptions list --direction outgoing" in unknown.err


def test_a_node_that_starts_subscribes_again_so_the_remote_delivers_at_once(node_repo, fake, monkeypatch):
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    watching_node(node_repo, fake, rest=None)
    monkeypatch.setenv("SUDOCODE_SERVED_URL", "http://127.0.0.1:9100/api/v1")  # what `serve` exports
    services.issue_create(title="Page", actor="ana", remote_relationships=[BLOCKER])
    [row] = auto_rows()
    assert row.delivery_status == "confirmed" and len(fake.subscribes) == 1

    monkeypatch.setenv("SUDOCODE_SERVED_URL", "http://127.0.0.1:9200/api/v1")  # started again, on another port
    assert outgoing.subscriptions_resume() == 1
    row.refresh_from_db()
    assert row.delivery_status == "pending" and row.callback_url == "http://127.0.0.1:9200/api/v1/webhooks/cross-repo"
    assert outgoing.push_due() == {"confirmed": 1}
    [_, again] = fake.subscribes
    assert again["body"]["subscription_id"] == row.subscription_id  # the same subscription: the remote's stream
    assert again["body"]["callback"]["url"] == row.callback_url  # wakes up and learns the new address
    row.refresh_from_db()
    assert row.last_seq == fake.head_seq and row.delivery_status == "confirmed"
