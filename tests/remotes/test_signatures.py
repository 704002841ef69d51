"""Issue 17's signed messages (RFC 9421, Ed25519): what the signer sends, what the verifier refuses, the 401 for a
remote whose config requires signatures, the signature kept with the audit row, and key rotation."""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from audit.models import AuditLog
from federation_site import node as node_module
from federation_site.config import default_config, write_config
from federation_site.keys import NodeKey, fingerprint, public_key_text
from remotes import services as remote_services
from remotes.models import RemoteRepo
from remotes.signatures import SignatureMissing, SignatureProblem, sign_request, verify_request

URL = "http://testserver/api/v1/federation/query"
BODY = json.dumps({"entity": "issue"}).encode()


def signed(
    key: NodeKey, *, url: str = URL, body: bytes = BODY, correlation_id: str = "corr-1"
) -> requests.PreparedRequest:
    prepared = requests.Request(
        "POST", url, data=body, headers={"Content-Type": "application/json", "X-Correlation-ID": correlation_id}
    ).prepare()
    sign_request(prepared, key_id=key.key_id, private_key=key.private_key, body=body)
    return prepared


def verify(prepared, key: NodeKey, *, body: bytes = BODY, now: datetime | None = None):
    return verify_request(
        method=prepared.method,
        url=prepared.url,
        headers=dict(prepared.headers),
        body=body,
        public_keys={key.key_id: key.private_key.public_key()},
        now=now,
    )


@pytest.fixture(scope="module")
def key() -> NodeKey:
    return NodeKey(Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def other_key() -> NodeKey:
    return NodeKey(Ed25519PrivateKey.generate())


# --- the signature itself ---------------------------------------------------------------------------------------


def test_a_signed_message_covers_method_target_date_digest_and_correlation_id(key):
    prepared = signed(key)
    assert prepared.headers["Content-Digest"].startswith("sha-256=:")
    assert prepared.headers["Signature-Input"].startswith(
        'sudocode=("@method" "@target-uri" "date" "x-correlation-id" "content-digest");created='
    )
    assert f'keyid="{key.key_id}"' in prepared.headers["Signature-Input"]
    verified = verify(prepared, key)
    assert verified.key_id == key.key_id and verified.content_digest == prepared.headers["Content-Digest"]


def test_an_unsigned_message_is_missing_a_signature(key):
    prepared = requests.Request("POST", URL, data=BODY, headers={"X-Correlation-ID": "c"}).prepare()
    with pytest.raises(SignatureMissing):
        verify(prepared, key)


def test_a_tampered_body_fails(key):
    with pytest.raises(SignatureProblem, match="Content-Digest does not match"):
        verify(signed(key), key, body=BODY.replace(b"issue", b"specs"))


@pytest.mark.parametrize(
    ("header", "value"),
    [("X-Correlation-ID", lambda: "corr-2"), ("Date", lambda: email.utils.formatdate(time.time() - 30, usegmt=True))],
)
def test_a_changed_covered_header_fails(key, header, value):
    prepared = signed(key)
    prepared.headers[header] = value()  # made now: a date inside the window, only not the signed one
    with pytest.raises(SignatureProblem, match="does not verify"):
        verify(prepared, key)


def test_another_target_fails(key):
    prepared = signed(key)
    prepared.url = "http://testserver/api/v1/federation/mutate"
    with pytest.raises(SignatureProblem, match="does not verify"):
        verify(prepared, key)


def test_a_signature_by_another_key_fails(key, other_key):
    with pytest.raises(SignatureProblem, match="not the key pinned for this sender"):
        verify(signed(other_key), key)


def test_a_replay_with_an_old_date_fails(key):
    prepared = signed(key)
    later = datetime.now(UTC) + timedelta(minutes=6)
    with pytest.raises(SignatureProblem, match="more than 5 minutes from now"):
        verify(prepared, key, now=later)


# --- on a node --------------------------------------------------------------------------------------------------

STRICT = "github.com/org/strict"
LAX = "github.com/org/lax"


@pytest.fixture
def node(node_repo, key):
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["remote_repos"] = [
        {"url": STRICT, "trust_level": "verified", "public_key": key.public_key, "require_signatures": True},
        {"url": LAX, "trust_level": "verified", "public_key": key.public_key},
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    keys = {url: remote_services.remote_rotate_key(remote=RemoteRepo.objects.get(url=url)) for url in (STRICT, LAX)}
    return SimpleNamespace(repo=node_repo, keys=keys)


def send(node, remote: str, prepared=None, *, body: bytes = BODY, path: str = "/api/v1/federation/query"):
    client = APIClient()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {node.keys[remote]}"}
    for name, value in prepared.headers.items() if prepared is not None else []:
        if name.lower() not in ("content-type", "content-length"):
            headers["HTTP_" + name.upper().replace("-", "_")] = value
    return client.generic("POST", path, body, content_type="application/json", **headers)


@pytest.mark.django_db(transaction=True)
def test_a_remote_that_must_sign_gets_401_for_an_unsigned_message(node):
    response = send(node, STRICT)
    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "detail": f"{STRICT} must sign its messages (require_signatures): this one is not signed",
    }
    assert send(node, LAX).status_code == 200  # not required: the bearer key is enough


@pytest.mark.django_db(transaction=True)
def test_a_signed_message_is_answered_and_its_signature_kept_with_the_audit_row(node, key):
    prepared = signed(key)
    response = send(node, STRICT, prepared)
    assert response.status_code == 200, response.json()
    row = AuditLog.objects.get(operation_type="query", direction="incoming", remote_repo=STRICT)
    assert row.signature["key_id"] == key.key_id
    assert row.signature["signature"] == prepared.headers["Signature"]
    assert row.signature["signature_input"] == prepared.headers["Signature-Input"]
    assert row.signature["content_digest"] == prepared.headers["Content-Digest"]
    send(node, LAX)  # the next request, unsigned, does not inherit it
    assert AuditLog.objects.get(operation_type="query", remote_repo=LAX).signature is None


@pytest.mark.django_db(transaction=True)
def test_wrong_key_tampered_body_and_old_date_get_401(node, key, other_key):
    assert send(node, STRICT, signed(other_key)).status_code == 401
    tampered = send(node, STRICT, signed(key), body=BODY.replace(b"issue", b"spec"))
    assert tampered.status_code == 401 and "Content-Digest" in tampered.json()["detail"]
    old = signed(key)
    old.headers["Date"] = email.utils.formatdate(time.time() - 600, usegmt=True)
    assert send(node, STRICT, old).status_code == 401
    assert not AuditLog.objects.filter(operation_type="query").exists()  # nothing was answered


@pytest.mark.django_db(transaction=True)
def test_key_rotation_is_a_message_signed_with_the_old_key(node, key, other_key):
    path = "/api/v1/federation/key"
    url = f"http://testserver{path}"
    announce = json.dumps({"type": "key_rotation", "from": STRICT, "public_key": other_key.public_key}).encode()
    by_new_key = send(node, STRICT, signed(other_key, url=url, body=announce), body=announce, path=path)
    assert by_new_key.status_code == 401  # only the pinned (old) key may announce its successor
    unsigned = send(node, LAX, body=announce.replace(STRICT.encode(), LAX.encode()), path=path)
    assert unsigned.status_code == 401 and "not signed" in unsigned.json()["detail"]
    answer = send(node, STRICT, signed(key, url=url, body=announce), body=announce, path=path)
    assert answer.status_code == 200, answer.json()
    assert answer.json() == {"type": "key_rotation_response", "status": "pinned", "key_id": other_key.key_id}
    declared, _ = node_module.config().remote_index(STRICT)
    assert declared.public_key == other_key.public_key
    assert send(node, STRICT, signed(key)).status_code == 401  # the old key no longer speaks for it
    assert send(node, STRICT, signed(other_key)).status_code == 200
    row = AuditLog.objects.get(operation_type="key_rotation")
    assert row.payload == {"old_key_id": key.key_id, "new_key_id": other_key.key_id}
    assert row.signature["key_id"] == key.key_id


def test_the_text_forms_of_a_key(key):
    text = key.public_key
    assert text.startswith("ed25519:") and len(text) == len("ed25519:") + 43
    assert public_key_text(key.private_key.public_key()) == text
    assert fingerprint(text) == key.key_id and key.key_id.startswith("SHA256:")
