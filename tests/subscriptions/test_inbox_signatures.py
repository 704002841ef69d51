"""Issue 17 on the webhook receiver: when the watched remote's config requires signatures, a delivery must carry
its RFC 9421 signature besides the HMAC one; the incoming `event` audit row of an applied delivery keeps the
signature that verified."""

from __future__ import annotations

import json

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.models import AuditLog
from federation_site.keys import NodeKey
from remotes import services as remote_services
from remotes.signatures import reverify, sign_request
from subscriptions import signing
from subscriptions.models import ReceivedEvent, Subscription
from tests.subscriptions.test_inbox import blocker, fake  # noqa: F401 (fixture)
from tests.subscriptions.watching_fakes import LOCAL, REMOTE, WEBHOOK, event_body, signed_post, watching_node
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

KEY = NodeKey(Ed25519PrivateKey.generate())


@pytest.fixture
def node(node_repo, fake, monkeypatch):  # noqa: F811
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    ns = watching_node(node_repo, fake)
    services.issue_create(title="Add user profile page", actor="ana", remote_relationships=[blocker("issue-084")])
    ns.sub = Subscription.objects.get(direction="outgoing", auto=True)
    remote_services.remote_pin_key(url=REMOTE, public_key=KEY.public_key, require_signatures=True)
    return ns


def rfc9421_headers(sub, event: dict) -> tuple[bytes, dict]:
    """The body and the RFC 9421 headers the watched node would add (as Django test client extras)."""
    raw = json.dumps({"type": "event", "from": REMOTE, "to": LOCAL, "event": event}).encode()
    prepared = requests.Request(
        "POST", f"http://testserver{WEBHOOK}", data=raw, headers={"X-Correlation-ID": event["id"]}
    ).prepare()
    sign_request(prepared, key_id=KEY.key_id, private_key=KEY.private_key, body=raw)
    names = ("Date", "Content-Digest", "Signature-Input", "Signature", "X-Correlation-ID")
    extra = {"HTTP_" + n.upper().replace("-", "_"): prepared.headers[n] for n in names}
    extra["HTTP_X_SUDOCODE_SIGNATURE"] = signing.sign(sub.secret, raw)
    return raw, extra


def test_an_unsigned_delivery_is_refused_when_signatures_are_required(node):
    response = signed_post(node.sub, event_body(41), previous=0)
    assert response.status_code == 401
    assert "must sign its messages" in response.json()["detail"]
    assert not ReceivedEvent.objects.exists()
    assert not AuditLog.objects.filter(operation_type="event").exists()


def test_a_signed_delivery_is_applied(node):
    event = event_body(41, status="closed")
    raw, extra = rfc9421_headers(node.sub, event)
    response = signed_post(node.sub, event, previous=0, body=raw, extra=extra)
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "applied", "seq": 41}
    row = AuditLog.objects.get(operation_type="event", direction="incoming")
    assert row.remote_repo == REMOTE and row.correlation_id == event["id"]
    assert row.payload == {
        "subscription_id": node.sub.subscription_id, "event_id": event["id"], "seq": 41,
        "type": event["type"], "entity": event["entity"]["id"],
    }  # fmt: skip
    assert row.signature["key_id"] == KEY.key_id
    assert row.signature["signature"] == extra["HTTP_SIGNATURE"]
    assert f'"@target-uri": http://testserver{WEBHOOK}' in row.signature["signature_base"]
    assert reverify(row.signature, KEY.private_key.public_key())


def test_a_delivery_signed_by_another_key_is_refused(node):
    event = event_body(41)
    raw, extra = rfc9421_headers(node.sub, event)
    other = NodeKey(Ed25519PrivateKey.generate())
    prepared = requests.Request(
        "POST", f"http://testserver{WEBHOOK}", data=raw, headers={"X-Correlation-ID": event["id"]}
    ).prepare()
    sign_request(prepared, key_id=other.key_id, private_key=other.private_key, body=raw)
    extra.update(
        {"HTTP_SIGNATURE": prepared.headers["Signature"], "HTTP_SIGNATURE_INPUT": prepared.headers["Signature-Input"]}
    )
    response = signed_post(node.sub, event, previous=0, body=raw, extra=extra)
    assert response.status_code == 401 and "does not verify" in response.json()["detail"]
