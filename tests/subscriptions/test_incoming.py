"""The watched node accepts subscriptions (who may, how many, which fields), renews and cancels them, and serves
the catch-up feed; called in-process through the REST endpoints."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from audit.models import AuditLog
from events.selectors import head_seq
from federation_site.config import default_config, write_config
from remotes import services as remote_services
from remotes.models import RemoteRepo
from subscriptions.models import Subscription
from tracker import services
from tracker.sync import jsonl_sync

pytestmark = pytest.mark.django_db(transaction=True)

SUBSCRIBE = "/api/v1/federation/subscribe"
EVENTS = "/api/v1/federation/events"
ENDPOINT = "http://127.0.0.1:9/api/v1"
HOOK = f"{ENDPOINT}/webhooks/cross-repo"  # nothing listens: these tests never deliver

TRUSTED = "github.com/org/frontend"
VERIFIED = "github.com/org/partner"
UNTRUSTED = "github.com/org/stranger"
LIMITED = "github.com/org/limited"
MUTED = "github.com/org/muted"


@pytest.fixture
def node(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)  # delivery has its own tests
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["remote_repos"] = [
        {"url": TRUSTED, "trust_level": "trusted"},
        {"url": VERIFIED, "trust_level": "verified"},
        {"url": UNTRUSTED, "trust_level": "untrusted"},
        {"url": LIMITED, "trust_level": "verified", "permissions": {"subscribe": {"max_subscriptions": 2}}},
        {"url": MUTED, "trust_level": "trusted", "permissions": {"subscribe": {"allowed": False}}},
    ]
    for remote in config["remote_repos"]:  # HOOK's origin is vouched for: the remotes' declared endpoint
        remote["endpoint"] = ENDPOINT
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    keys = {url: remote_services.remote_rotate_key(remote=RemoteRepo.objects.get(url=url)) for url in _urls(config)}
    return SimpleNamespace(repo=node_repo, keys=keys)


def _urls(config) -> list[str]:
    return [remote["url"] for remote in config["remote_repos"]]


def client_of(node, remote: str | None) -> APIClient:
    client = APIClient()
    if remote:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys[remote]}")
    return client


def subscribe_message(**extra) -> dict:
    return {
        "type": "subscribe",
        "from": TRUSTED,
        "to": "github.com/org/api-service",
        "watch": {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}},
        "callback": {"url": HOOK, "auth": {"type": "bearer", "token": "whk_frontend"}},
        **extra,
    }


def subscribe(node, remote: str | None, message: dict | None = None, **extra):
    return client_of(node, remote).post(SUBSCRIBE, message or subscribe_message(**extra), format="json")


def test_a_trusted_remote_subscribes_and_gets_an_id_a_secret_and_the_head(node):
    services.issue_create(title="Before", actor="alice")
    response = subscribe(node, TRUSTED)
    body = response.json()
    assert response.status_code == 200, body
    assert body["type"] == "subscribe_response" and body["status"] == "active"
    assert body["subscription_id"].startswith("sub-")
    assert body["head_seq"] == head_seq() == 1
    assert len(body["secret"]) == 64
    assert body["events_url"] == f"http://testserver/api/v1/federation/events?subscription={body['subscription_id']}"
    row = Subscription.objects.get(pk=body["subscription_id"])
    assert (row.direction, row.from_repo, row.to_repo) == ("incoming", TRUSTED, "github.com/org/api-service")
    assert row.watch_config == {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}}
    assert row.callback_url == HOOK and row.callback_auth == {"type": "bearer", "token": "whk_frontend"}
    assert row.secret == body["secret"]
    assert (row.cursor_seq, row.last_seq, row.delivery_status) == (1, 1, "idle")
    audit = AuditLog.objects.get(operation_type="subscribe")
    assert (audit.direction, audit.remote_repo, audit.status) == ("incoming", TRUSTED, "success")


def test_untrusted_and_anonymous_callers_may_not_subscribe(node):
    for remote in (UNTRUSTED, None):
        response = subscribe(node, remote)
        assert response.status_code == 403
        assert "untrusted" in response.json()["detail"]
    assert not Subscription.objects.exists()
    assert AuditLog.objects.filter(operation_type="subscribe", status="failed").count() == 2


def test_permissions_subscribe_allowed_false_overrides_trust(node):
    response = subscribe(node, MUTED, subscription_id="sub-muted")
    assert response.status_code == 403
    assert "permissions.subscribe.allowed" in response.json()["detail"]


def test_a_verified_remote_may_not_filter_on_fields_it_cannot_see(node):
    message = subscribe_message(watch={"entity_type": "issue", "filters": {"spec_refs": ["spec-001"]}})
    response = subscribe(node, VERIFIED, message)
    assert response.status_code == 403
    assert "spec_refs" in response.json()["detail"]
    assert subscribe(node, TRUSTED, message).status_code == 200


def test_max_subscriptions_is_a_403_that_says_to_cancel_one(node):
    for n in range(2):
        assert subscribe(node, LIMITED, subscription_id=f"sub-l{n}").status_code == 200
    response = subscribe(node, LIMITED, subscription_id="sub-l2")
    assert response.status_code == 403
    assert "at most 2" in response.json()["detail"] and "cancel one" in response.json()["detail"]
    # Renewing one it has is no new subscription; after a cancel there is room again.
    assert subscribe(node, LIMITED, subscription_id="sub-l1").status_code == 200
    assert client_of(node, LIMITED).delete(f"{SUBSCRIBE}/sub-l0").status_code == 200
    assert subscribe(node, LIMITED, subscription_id="sub-l2").status_code == 200


def test_subscribing_again_with_the_same_id_renews_it_and_keeps_the_cursor(node):
    first = subscribe(node, TRUSTED, subscription_id="sub-front-1").json()
    services.issue_create(title="Meanwhile", actor="alice", tags=["frontend-blocking"])
    new_watch = {"entity_type": "issue", "filters": {"status": ["open", "blocked"]}}
    second = subscribe(node, TRUSTED, subscription_id="sub-front-1", watch=new_watch).json()
    assert second["subscription_id"] == "sub-front-1"
    assert second["secret"] == first["secret"]  # a retry whose first answer was lost still learns the secret
    assert Subscription.objects.count() == 1
    row = Subscription.objects.get()
    assert row.watch_config == new_watch
    assert row.cursor_seq == first["head_seq"] == 0  # not moved to the head: the event in between is owed
    assert second["head_seq"] == 1


def test_a_secret_given_by_the_subscriber_is_used_and_not_echoed(node):
    secret = "s" * 40
    message = subscribe_message(callback={"url": HOOK, "secret": secret})
    body = subscribe(node, TRUSTED, message).json()
    assert "secret" not in body
    assert Subscription.objects.get().secret == secret


def test_since_starts_the_stream_in_the_past_but_not_in_the_future(node):
    for title in ("One", "Two"):
        services.issue_create(title=title, actor="alice")
    assert subscribe(node, TRUSTED, since=1).status_code == 200
    assert Subscription.objects.get().cursor_seq == 1
    response = subscribe(node, TRUSTED, since=99)
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "since"


def test_an_id_used_by_another_repository_is_a_conflict(node):
    assert subscribe(node, TRUSTED, subscription_id="sub-shared").status_code == 200
    response = subscribe(node, VERIFIED, subscription_id="sub-shared")
    assert response.status_code == 409
    assert "another repository" in response.json()["detail"]
    assert Subscription.objects.get().from_repo == TRUSTED


def test_a_callback_is_required_over_rest(node):
    message = subscribe_message()
    del message["callback"]
    response = subscribe(node, TRUSTED, message)
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "callback"


def test_the_seeds_bare_body_is_a_subscription_too(node):
    body = {
        "watch": {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}},
        "callback_url": HOOK,
        "callback_auth": {"type": "bearer", "token": "whk_frontend"},
    }
    response = client_of(node, TRUSTED).post(SUBSCRIBE, body, format="json")
    assert response.status_code == 200, response.json()
    row = Subscription.objects.get(pk=response.json()["subscription_id"])
    assert row.callback_url == HOOK and row.callback_auth["token"] == "whk_frontend"
    missing = client_of(node, TRUSTED).post(SUBSCRIBE, {"watch": {"entity_type": "issue"}}, format="json")
    assert missing.status_code == 400 and missing.json()["errors"][0]["path"] == "callback_url"


def test_the_a2a_endpoint_answers_subscribe(node):
    response = client_of(node, TRUSTED).post("/api/v1/federation/a2a", subscribe_message(), format="json")
    assert response.status_code == 200
    assert response.json()["type"] == "subscribe_response"


def test_a_spec_watch_cannot_filter_on_status(node):
    message = subscribe_message(watch={"entity_type": "spec", "filters": {"status": "open"}})
    response = subscribe(node, TRUSTED, message)
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "watch.filters.status"


def test_only_the_subscriber_cancels_and_cancelling_twice_is_fine(node):
    subscribe(node, TRUSTED, subscription_id="sub-c")
    assert client_of(node, VERIFIED).delete(f"{SUBSCRIBE}/sub-c").status_code == 404
    assert client_of(node, None).delete(f"{SUBSCRIBE}/sub-c").status_code == 404
    first = client_of(node, TRUSTED).delete(f"{SUBSCRIBE}/sub-c")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert client_of(node, TRUSTED).delete(f"{SUBSCRIBE}/sub-c").json()["status"] == "cancelled"
    assert client_of(node, TRUSTED).delete(f"{SUBSCRIBE}/sub-unknown").status_code == 404
    assert Subscription.objects.get().status == "cancelled"
    assert AuditLog.objects.filter(operation_type="unsubscribe").count() == 1
    # Subscribing again with the id brings it back.
    assert subscribe(node, TRUSTED, subscription_id="sub-c").json()["status"] == "active"


def test_the_catch_up_feed_returns_matching_events_in_order_with_their_chain(node):
    subscribe(node, TRUSTED, subscription_id="sub-feed")
    blocking = services.issue_create(title="Blocking one", actor="alice", tags=["frontend-blocking"])
    services.issue_create(title="Unrelated", actor="alice", tags=["backend"])  # seq 2: not for this watch
    services.issue_close(issue=blocking.sudocode_id, actor="alice")  # seq 3

    feed = client_of(node, TRUSTED).get(EVENTS, {"subscription": "sub-feed", "after": 0}).json()
    assert [(e["previous_seq"], e["event"]["seq"], e["event"]["type"]) for e in feed["events"]] == [
        (0, 1, "issue_created"),
        (1, 3, "issue_updated"),
    ]
    closed = feed["events"][1]["event"]
    assert closed["changes"]["status"] == {"from": "open", "to": "closed"}
    assert closed["entity"]["canonical_ref"] == f"org/api-service#{blocking.sudocode_id}"
    assert (feed["head_seq"], feed["next_after"], feed["more"]) == (3, 3, False)

    page = client_of(node, TRUSTED).get(EVENTS, {"subscription": "sub-feed", "after": 0, "limit": 1}).json()
    assert [e["event"]["seq"] for e in page["events"]] == [1]
    assert page["more"] is True
    rest = client_of(node, TRUSTED).get(EVENTS, {"subscription": "sub-feed", "after": page["next_after"]}).json()
    assert [(e["previous_seq"], e["event"]["seq"]) for e in rest["events"]] == [(page["next_after"], 3)]


def test_the_feed_shows_a_verified_subscriber_public_fields_only(node):
    subscribe(node, VERIFIED, subscription_id="sub-public", watch={"entity_type": "issue"})
    issue = services.issue_create(title="Has content", actor="alice", content="secret plans")
    services.issue_update(issue=issue.sudocode_id, actor="alice", content="more secret plans", priority=0)
    feed = client_of(node, VERIFIED).get(EVENTS, {"subscription": "sub-public"}).json()
    updated = feed["events"][-1]["event"]
    assert set(updated["changes"]) == {"priority", "updated_at"}
    assert "content" not in feed["events"][0]["event"]["changes"]


def test_the_feed_is_only_for_the_subscriber_and_checks_its_parameters(node):
    subscribe(node, TRUSTED, subscription_id="sub-mine")
    assert client_of(node, VERIFIED).get(EVENTS, {"subscription": "sub-mine"}).status_code == 404
    bad = client_of(node, TRUSTED).get(EVENTS, {"subscription": "sub-mine", "after": "-1"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "after"
    missing = client_of(node, TRUSTED).get(EVENTS)
    assert missing.status_code == 400 and missing.json()["errors"][0]["path"] == "subscription"


def test_a_subscriber_whose_trust_was_lowered_cannot_read_the_feed(node):
    subscribe(node, VERIFIED, subscription_id="sub-lowered")
    config_path = node.repo / ".sudocode" / "federation.config.json"
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["remote_repos"] = [{"url": VERIFIED, "trust_level": "untrusted"}]
    write_config(config_path, config)
    jsonl_sync()
    remote_services.remotes_reconcile(force=True)
    assert client_of(node, VERIFIED).get(EVENTS, {"subscription": "sub-lowered"}).status_code == 403
