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
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureComponentResolver,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from rest_framework.test import APIClient

from audit.models import AuditLog
from federation_site import node as node_module
from federation_site.config import default_config, write_config
from federation_site.keys import NodeKey, fingerprint, public_key_text
from remotes import services as remote_services
from remotes.models import RemoteRepo
from remotes.signatures import (
    COVERED,
    LABEL,
    REQUIRED,
    TAG,
    SignatureMissing,
    SignatureProblem,
    _target_uri,
    reverify,
    sign_request,
    verify_request,
)

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


# --- the fast path and the library agree (RFC 9421 interoperability) ---------------------------------------------


def library_signed(
    key: NodeKey, *, created: datetime, date: str, covered=COVERED, **options
) -> requests.PreparedRequest:
    """The same message signed by the `http-message-signatures` library alone."""
    prepared = requests.Request(
        "POST", URL, data=BODY, headers={"Content-Type": "application/json", "X-Correlation-ID": "corr-1", "Date": date}
    ).prepare()
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=StaticKeys(key))
    signer.sign(prepared, key_id=key.key_id, created=created, covered_component_ids=covered, body=BODY, **options)
    return prepared


class StaticKeys(HTTPSignatureKeyResolver):
    def __init__(self, key: NodeKey):
        self.key = key

    def resolve_private_key(self, key_id):
        return self.key.private_key

    def resolve_public_key(self, key_id):
        assert key_id == self.key.key_id
        return self.key.private_key.public_key()


def test_our_headers_are_byte_for_byte_the_librarys(key):
    ours = signed(key)
    created = int(ours.headers["Signature-Input"].split("created=")[1].split(";")[0])
    theirs = library_signed(
        key, created=datetime.fromtimestamp(created, UTC), date=ours.headers["Date"], label=LABEL, tag=TAG
    )
    for name in ("Content-Digest", "Signature-Input", "Signature"):  # Ed25519 is deterministic
        assert ours.headers[name] == theirs.headers[name], name


def test_the_library_verifies_what_we_sign(key):
    ours = signed(key)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=StaticKeys(key))
    [result] = verifier.verify(ours, expect_tag=TAG, require_components=REQUIRED, body=BODY)
    assert result.parameters["keyid"] == key.key_id
    ours.headers["X-Correlation-ID"] = "corr-2"
    with pytest.raises(InvalidSignature):
        verifier.verify(ours, expect_tag=TAG, require_components=REQUIRED, body=BODY)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"label": LABEL, "tag": TAG}, id="our shape"),
        pytest.param({"label": "sig1", "tag": TAG, "nonce": "n-1"}, id="another label, a nonce"),
        pytest.param(
            {"label": LABEL, "tag": TAG, "covered": ("date", "@target-uri", "x-correlation-id", "@method")},
            id="another order",
        ),
    ],
)
def test_we_verify_what_the_library_signs(key, options):
    prepared = library_signed(key, created=datetime.now(UTC), date=email.utils.formatdate(usegmt=True), **options)
    verified = verify(prepared, key)
    assert verified.key_id == key.key_id
    assert reverify(verified.as_record(), key.private_key.public_key())


def test_a_library_signature_that_covers_too_little_is_refused(key):
    prepared = library_signed(
        key, created=datetime.now(UTC), date=email.utils.formatdate(usegmt=True), covered=("@method", "date"), tag=TAG
    )
    with pytest.raises(SignatureProblem, match="was not covered"):
        verify(prepared, key)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8001/api/v1/federation/query",
        "https://API.example.com/a/b?since=3&x=%2F",
        "https://api.example.com",
        "https://api.example.com?q=1",
        "https://api.example.com:443/p;x=1/~u@h:1",
        "http://[::1]:8001/api/v1",  # not the fast path's shape: the library signs it
        "http://user@host.example.com/a",  # nor this
    ],
)
def test_the_target_uri_is_the_librarys(key, url):
    message = SimpleNamespace(method="POST", url=url, headers={"X-Correlation-ID": "c"})
    assert _target_uri("POST", url) in (None, HTTPSignatureComponentResolver(message).get_target_uri())
    sign_request(message, key_id=key.key_id, private_key=key.private_key, body=BODY)
    verified = verify_request(
        method="POST",
        url=url,
        headers=message.headers,
        body=BODY,
        public_keys={key.key_id: key.private_key.public_key()},
    )
    assert f'"@target-uri": {HTTPSignatureComponentResolver(message).get_target_uri()}\n' in verified.signature_base


def test_a_signature_created_in_the_future_or_long_ago_fails(key):
    for offset in (timedelta(minutes=1), -timedelta(minutes=6)):
        prepared = library_signed(
            key, created=datetime.now(UTC) + offset, date=email.utils.formatdate(usegmt=True), label=LABEL, tag=TAG
        )
        with pytest.raises(SignatureProblem, match="does not verify"):
            verify(prepared, key)


def test_a_kept_signature_can_be_checked_again_later(key, other_key):
    record = verify(signed(key), key).as_record()
    lines = record["signature_base"].split("\n")
    assert [line.split(": ")[0] for line in lines] == [
        '"@method"', '"@target-uri"', '"date"', '"x-correlation-id"', '"content-digest"', '"@signature-params"'
    ]  # fmt: skip
    assert lines[1] == f'"@target-uri": {URL}' and lines[3] == '"x-correlation-id": corr-1'
    assert reverify(record, key.private_key.public_key())
    assert not reverify(record, other_key.private_key.public_key())
    assert not reverify(
        {**record, "signature_base": record["signature_base"].replace("corr-1", "corr-9")}, key.private_key.public_key()
    )


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


def test_the_key_an_agent_card_names(key):
    from remotes.a2a_client import SIGNATURES_EXTENSION, card_public_key

    extension = {"uri": SIGNATURES_EXTENSION, "params": {"public_key": key.public_key, "key_id": key.key_id}}
    other = {"uri": "urn:example:other", "params": {"public_key": "ed25519:x"}}
    assert card_public_key({"capabilities": {"extensions": [other, extension]}}) == key.public_key
    assert card_public_key({"capabilities": {"extensions": [other]}}) is None
    assert card_public_key({"supportedInterfaces": []}) is None


def test_an_httpx_request_is_signed_as_a_requests_one(key):
    import httpx

    request = httpx.Request("POST", URL, content=BODY, headers={"X-Correlation-ID": "corr-1"})
    sign_request(request, key_id=key.key_id, private_key=key.private_key, body=BODY)
    verified = verify_request(
        method="POST",
        url=URL,
        headers=dict(request.headers),
        body=BODY,
        public_keys={key.key_id: key.private_key.public_key()},
    )
    assert verified.key_id == key.key_id and f'"@target-uri": {URL}' in verified.signature_base


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("discover_names", "pinned"),
    [
        pytest.param(None, "card", id="the card's key"),
        pytest.param("card", "card", id="both name it"),
        pytest.param("other", None, id="they disagree: none"),
    ],
)
def test_an_a2a_remote_is_pinned_the_key_its_card_names(node_repo, monkeypatch, key, other_key, discover_names, pinned):
    from remotes.a2a_client import SIGNATURES_EXTENSION, A2AClient
    from remotes.client import Response
    from remotes.sync import remote_discover

    url = "github.com/org/agent"
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["remote_repos"] = [
        {"url": url, "trust_level": "verified", "endpoint": "http://127.0.0.1:9/", "transport": "a2a"}
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    names = {"card": key.public_key, "other": other_key.public_key, None: None}
    card = {"capabilities": {"extensions": [{"uri": SIGNATURES_EXTENSION, "params": {"public_key": key.public_key}}]}}
    answer = {"capabilities": {}, **({"public_key": names[discover_names]} if discover_names else {})}
    monkeypatch.setattr(A2AClient, "card", lambda self: card)
    monkeypatch.setattr(A2AClient, "get", lambda self, path, **kw: Response(200, answer, {}, 1.0, 1, "c"))
    remote_discover(remote=RemoteRepo.objects.get(url=url), pin_key=True)
    declared, _ = node_module.config().remote_index(url)
    assert declared.public_key == names[pinned]
