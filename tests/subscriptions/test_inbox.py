"""The webhook receiver of the watching node: what it refuses (forgeries, replays, stale or unknown
deliveries), how it keeps each subscription in order (duplicates dropped, gaps filled from the sender's
catch-up feed), and what an applied event does (cached references, issues that unblock themselves)."""

from __future__ import annotations

import json
import time

import pytest

from remotes.models import CrossRepoReference
from subscriptions import inbox
from subscriptions.models import ReceivedEvent, Subscription
from tests.subscriptions.watching_fakes import (
    REMOTE,
    WEBHOOK,
    FakeRemote,
    event_body,
    remote_issue,
    signed_post,
    watching_node,
)
from tracker import services
from tracker.models import Entity

pytestmark = pytest.mark.django_db(transaction=True)


def blocker(remote_id: str) -> dict:
    return {
        "type": "blocked-by",
        "remote_repo": REMOTE,
        "remote_id": remote_id,
        "canonical_ref": f"org/api-service#{remote_id}",
    }


@pytest.fixture
def fake():
    remote = FakeRemote().start()
    remote.entities = {i: remote_issue(i) for i in ("issue-084", "issue-085")}
    yield remote
    remote.stop()


@pytest.fixture
def node(node_repo, fake, monkeypatch):
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)  # nobody watches this node
    ns = watching_node(node_repo, fake)
    ns.issue = services.issue_create(
        title="Add user profile page",
        actor="ana",
        remote_relationships=[blocker("issue-084"), blocker("issue-085")],
    )
    ns.other = services.issue_create(title="Profile avatar", actor="ana", content="Uses [[org/api-service#issue-084]]")
    ns.sub = Subscription.objects.get(direction="outgoing", auto=True)
    assert ns.sub.delivery_status == "confirmed" and ns.sub.last_seq == 40
    return ns


def status_of(issue) -> str:
    return Entity.objects.get(uuid=issue.uuid).status


def jsonl_status(node, issue) -> str:
    lines = (node.repo / ".sudocode" / "issues.jsonl").read_text().splitlines()
    return next(json.loads(line)["status"] for line in lines if json.loads(line)["uuid"] == issue.uuid)


def cached(remote_id: str) -> list[CrossRepoReference]:
    return list(CrossRepoReference.objects.filter(remote_id=remote_id))


def test_an_event_in_order_is_applied_to_every_reference_of_its_entity(node):
    event = event_body(41, status="in_progress", title="Add user profile endpoint (v2)")
    response = signed_post(node.sub, event, previous=0)
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "applied", "seq": 41}
    refs = cached("issue-084")
    assert len(refs) == 2  # issue-100's blocker and the avatar issue's mention
    for ref in refs:
        assert ref.cached_data["status"] == "in_progress"
        assert ref.cached_data["title"] == "Add user profile endpoint (v2)"
        assert ref.fetch_status == "success" and ref.remote_uuid == event["entity"]["uuid"]
    node.sub.refresh_from_db()
    assert (node.sub.last_seq, node.sub.event_count) == (41, 1) and node.sub.last_event_at is not None
    [received] = ReceivedEvent.objects.all()
    assert (received.seq, received.from_repo, received.event["id"]) == (41, REMOTE, event["id"])


def test_a_forged_signature_is_refused(node):
    event = event_body(41, status="closed")
    assert signed_post(node.sub, event, previous=0, secret="x" * 64).status_code == 401
    # A body changed after signing: signed over the original, sent with another.
    body = json.dumps({"type": "event", "from": REMOTE, "event": event}).encode()
    tampered = body.replace(b'"closed"', b'"open"')
    raw_sig = __import__("subscriptions.signing", fromlist=["sign"]).sign(node.sub.secret, body)
    response = signed_post(node.sub, event, previous=0, body=tampered, extra={"HTTP_X_SUDOCODE_SIGNATURE": raw_sig})
    assert response.status_code == 401 and "does not match" in response.json()["detail"]
    no_signature = signed_post(node.sub, event, previous=0, extra={"HTTP_X_SUDOCODE_SIGNATURE": ""})
    assert no_signature.status_code == 401
    assert not ReceivedEvent.objects.exists() and cached("issue-084")[0].cached_data["status"] == "open"


def test_a_stale_timestamp_is_refused(node):
    response = signed_post(node.sub, event_body(41), previous=0, timestamp=int(time.time()) - 600)
    assert response.status_code == 401 and "window" in response.json()["detail"]


def test_a_replay_is_refused_and_a_senders_retry_is_a_duplicate_applied_once(node):
    event = event_body(41, status="closed")
    signed_at = int(time.time()) - 5
    assert signed_post(node.sub, event, previous=0, timestamp=signed_at).status_code == 200
    replay = signed_post(node.sub, event, previous=0, timestamp=signed_at)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    retry = signed_post(node.sub, event, previous=0)  # the sender re-signs a retry with a new timestamp
    assert retry.status_code == 200 and retry.json() == {"status": "duplicate", "seq": 41}
    node.sub.refresh_from_db()
    assert node.sub.event_count == 1 and ReceivedEvent.objects.count() == 1


def test_a_wrong_or_missing_bearer_token_is_refused(node):
    assert signed_post(node.sub, event_body(41), previous=0, token="not-the-token").status_code == 401
    missing = signed_post(node.sub, event_body(41), previous=0, extra={"HTTP_AUTHORIZATION": ""})
    assert missing.status_code == 401 and "Bearer" in missing.json()["detail"]


def test_an_unknown_subscription_is_404_and_a_cancelled_one_410(node):
    event = event_body(41)
    unknown = signed_post(node.sub, event, previous=0, extra={"HTTP_X_SUDOCODE_SUBSCRIPTION": "auto-nope"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    Subscription.objects.filter(pk=node.sub.pk).update(status="cancelled")
    gone = signed_post(node.sub, event, previous=0)
    assert gone.status_code == 410 and gone.json()["error"] == "gone"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda e: e["entity"].update(status="opn"), "event.entity.status"),
        (lambda e: e.update(seq=0), "event.seq"),
        (lambda e: e.update(id="not-a-uuid"), "event.id"),
    ],
)
def test_an_invalid_event_is_400_naming_the_field(node, change, path):
    event = event_body(41)
    change(event)
    response = signed_post(node.sub, event, previous=0)
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["path"] == path


def test_an_event_from_another_repository_or_without_its_headers_is_400(node):
    other = signed_post(node.sub, event_body(41), previous=0, sender="github.com/org/evil")
    assert other.status_code == 400 and other.json()["errors"][0]["path"] == "from"
    no_previous = signed_post(node.sub, event_body(41), previous=0, extra={"HTTP_X_SUDOCODE_PREVIOUS_SEQUENCE": ""})
    assert no_previous.status_code == 400 and "Previous-Sequence" in no_previous.json()["detail"]
    wrong_seq = signed_post(node.sub, event_body(41), previous=0, extra={"HTTP_X_SUDOCODE_SEQUENCE": "42"})
    assert wrong_seq.status_code == 400


def test_an_event_already_applied_is_a_duplicate(node):
    assert signed_post(node.sub, event_body(41, status="closed"), previous=0).json()["status"] == "applied"
    older = signed_post(node.sub, event_body(41, status="open"), previous=0)  # another id, same (old) seq
    assert older.json() == {"status": "duplicate", "seq": 41}
    assert cached("issue-084")[0].cached_data["status"] == "closed"


def test_events_are_applied_in_order_one_after_the_other(node):
    for seq, previous, status in ((41, 0, "in_progress"), (44, 41, "needs_review"), (47, 44, "closed")):
        response = signed_post(node.sub, event_body(seq, status=status), previous=previous)
        assert response.json() == {"status": "applied", "seq": seq}
    node.sub.refresh_from_db()
    assert (node.sub.last_seq, node.sub.event_count) == (47, 3)
    assert list(ReceivedEvent.objects.order_by("seq").values_list("seq", flat=True)) == [41, 44, 47]


def test_a_gap_is_filled_from_the_senders_catch_up_feed_before_applying(node, fake):
    missed = event_body(43, status="in_progress")
    delivered = event_body(45, status="closed")
    fake.feed = [{"previous_seq": 40, "event": missed}, {"previous_seq": 43, "event": delivered}]
    response = signed_post(node.sub, delivered, previous=43)
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "applied", "seq": 45, "caught_up": 2}
    assert fake.feed_calls == [{"subscription": node.sub.subscription_id, "after": "40", "limit": "100"}]
    rows = list(ReceivedEvent.objects.order_by("seq"))
    assert [(r.seq, r.signed_at is None) for r in rows] == [(43, True), (45, True)]
    assert cached("issue-084")[0].cached_data["status"] == "closed"
    node.sub.refresh_from_db()
    assert node.sub.last_seq == 45
    # The sender's retry of what the feed brought is a duplicate.
    assert signed_post(node.sub, missed, previous=0).json()["status"] == "duplicate"


def test_a_gap_that_cannot_be_filled_now_is_503_and_the_sender_retries(node, fake):
    delivered = event_body(45, status="closed")
    fake.fail_with = 503
    response = signed_post(node.sub, delivered, previous=43)
    assert response.status_code == 503 and response["Retry-After"] == str(inbox.RETRY_AFTER)
    assert not ReceivedEvent.objects.exists()
    fake.fail_with = None
    fake.feed = [{"previous_seq": 40, "event": event_body(43)}]  # it has what was missed, not (yet) this one
    assert signed_post(node.sub, delivered, previous=43).json() == {"status": "applied", "seq": 45, "caught_up": 1}
    node.sub.refresh_from_db()
    assert node.sub.last_seq == 45


def test_a_feed_that_leaves_the_gap_open_is_503(node, fake):
    fake.feed = []
    response = signed_post(node.sub, event_body(45), previous=43)
    assert response.status_code == 503 and "missing" in response.json()["detail"]


def test_the_feeds_flat_shape_is_read_too(node, fake):
    fake.feed = [{**event_body(43, status="in_progress"), "previous_seq": 40}]  # event bodies with previous_seq
    assert signed_post(node.sub, event_body(45), previous=43).json() == {"status": "applied", "seq": 45, "caught_up": 1}
    assert [r.seq for r in ReceivedEvent.objects.order_by("seq")] == [43, 45]


def test_a_deleted_entity_is_marked_failed_and_still_blocks(node):
    response = signed_post(
        node.sub, event_body(41, status="open", event_type="issue_deleted", deleted=True), previous=0
    )
    assert response.status_code == 200
    ref = CrossRepoReference.objects.get(local_uuid=node.issue.uuid, remote_id="issue-084")
    assert ref.fetch_status == "failed" and "was deleted in github.com/org/api-service" in ref.fetch_error
    assert status_of(node.issue) == "blocked"


def test_an_issue_blocked_by_two_remote_issues_unblocks_only_when_both_are_closed(node):
    assert status_of(node.issue) == "blocked"  # both blockers open (fetched once subscribed)
    assert signed_post(node.sub, event_body(41, entity_id="issue-084", status="closed"), previous=0).status_code == 200
    assert status_of(node.issue) == "blocked"
    other = event_body(42, entity_id="issue-085", status="closed", entity_uuid="9b2f0000-0000-4000-8000-000000000085")
    assert signed_post(node.sub, other, previous=41).status_code == 200
    assert status_of(node.issue) == "open" and jsonl_status(node, node.issue) == "open"
    reopened = event_body(43, entity_id="issue-085", status="open", entity_uuid=other["entity"]["uuid"])
    assert signed_post(node.sub, reopened, previous=42).status_code == 200
    assert status_of(node.issue) == "blocked" and jsonl_status(node, node.issue) == "blocked"
    assert status_of(node.other) == "open"  # a mention is not a blocker


def test_the_endpoint_refuses_a_body_too_large_before_reading_it(node):
    from django.test import Client

    response = Client().post(
        WEBHOOK, data=b"{}", content_type="application/json", CONTENT_LENGTH=str(inbox.MAX_BODY_BYTES + 1)
    )
    assert response.status_code == 413
