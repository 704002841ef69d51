"""Issue 17's short-lived tokens: a remote may present a JWT (EdDSA, its pinned key, aud = our identity, at most
5 minutes, one use) instead of its static API key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from federation_site.config import default_config, write_config
from federation_site.keys import NodeKey
from remotes import services as remote_services
from remotes.auth import jwt_for

pytestmark = pytest.mark.django_db(transaction=True)

US = "github.com/org/api-service"
PARTNER = "github.com/org/partner"
INFO = "/api/v1/federation/info"


@pytest.fixture(scope="module")
def key() -> NodeKey:
    return NodeKey(Ed25519PrivateKey.generate())


@pytest.fixture
def node(node_repo, key):
    config = default_config(url=US, display_name="API Service")
    config["remote_repos"] = [{"url": PARTNER, "trust_level": "verified", "public_key": key.public_key}]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    return node_repo


def info(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(INFO)


def token(key: NodeKey, **claims) -> str:
    now = datetime.now(UTC)
    base = {"iss": PARTNER, "aud": US, "iat": now, "exp": now + timedelta(minutes=5), "jti": uuid.uuid4().hex}
    return jwt.encode({**base, **claims}, key.private_key, algorithm="EdDSA")


def test_a_jwt_signed_with_the_pinned_key_makes_the_caller_that_remote(node, key):
    answer = info(jwt_for(audience=US, issuer=PARTNER, private_key=key.private_key))
    assert answer.status_code == 200
    assert answer.json()["capabilities"]["trust_level"] == "verified"
    assert answer.json()["to"] == PARTNER


def test_a_jwt_is_accepted_once(node, key):
    once = token(key)
    assert info(once).status_code == 200
    again = info(once)
    assert again.status_code == 401
    assert "was used already" in again.json()["detail"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": datetime.now(UTC) - timedelta(minutes=1), "iat": datetime.now(UTC) - timedelta(minutes=4)}, "expired"),
        ({"aud": "github.com/org/someone-else"}, "Audience doesn't match"),
        ({"exp": datetime.now(UTC) + timedelta(minutes=30)}, "at most 300 s"),
        ({"iss": "github.com/org/stranger"}, "not a remote with a pinned public key"),
        ({"jti": None}, "jti"),
    ],
)
def test_a_jwt_that_breaks_a_rule_gets_401(node, key, claims, reason):
    if claims.get("jti", "") is None:
        now = datetime.now(UTC)
        bad = jwt.encode(
            {"iss": PARTNER, "aud": US, "iat": now, "exp": now + timedelta(minutes=1)},
            key.private_key,
            algorithm="EdDSA",
        )
    else:
        bad = token(key, **claims)
    answer = info(bad)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized" and reason in answer.json()["detail"]


def test_a_jwt_signed_with_another_key_gets_401(node):
    answer = info(token(NodeKey(Ed25519PrivateKey.generate())))
    assert answer.status_code == 401 and "Signature verification failed" in answer.json()["detail"]


def test_an_hs256_jwt_is_refused(node, key):
    now = datetime.now(UTC)
    forged = jwt.encode(
        {"iss": PARTNER, "aud": US, "iat": now, "exp": now + timedelta(minutes=1), "jti": "x"},
        key.public_key,  # the public key as an HMAC secret: the classic algorithm confusion
        algorithm="HS256",
    )
    assert info(forged).status_code == 401
