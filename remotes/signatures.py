"""HTTP Message Signatures (RFC 9421) between nodes (issue 17), with the `http-message-signatures` library and
Ed25519 keys (federation_site/keys.py). No Django here: the client signs with it, the edges verify with it.

Every signed message carries a `Date`, a `Content-Digest` (sha-256 of the body, also of an empty one) and

    Signature-Input: sudocode=("@method" "@target-uri" "date" "x-correlation-id" "content-digest");
        created=1764470000;keyid="SHA256:...";alg="ed25519";tag="sudocode-federation"
    Signature: sudocode=:<base64 of the Ed25519 signature>:

A verifier accepts it only when the signature verifies with the key it pinned for the sender, covers all of
those components, the body matches the digest, and `created` and `Date` are both within MAX_AGE of its clock
(a replay with an old date is refused; idempotency keys deduplicate replays inside the window).
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

LABEL = "sudocode"
TAG = "sudocode-federation"
COVERED = ("@method", "@target-uri", "date", "x-correlation-id")  # + content-digest, added with the body
REQUIRED = (*COVERED, "content-digest")
MAX_AGE = timedelta(minutes=5)
SIGNATURE_HEADERS = ("Signature", "Signature-Input", "Content-Digest", "Date")


class SignatureProblem(Exception):
    """A message that is not signed as the sender's config requires; `str()` says why (the 401's detail)."""


class SignatureMissing(SignatureProblem):
    pass


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, *, private: Ed25519PrivateKey | None = None, public: Mapping[str, Ed25519PublicKey] = {}):
        self._private = private
        self._public = public

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        assert self._private is not None
        return self._private

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        try:
            return self._public[key_id]
        except KeyError:
            raise InvalidSignature(f"signed with key {key_id}, not the key pinned for this sender") from None


def sign_request(message: Any, *, key_id: str, private_key: Ed25519PrivateKey, body: bytes | None) -> None:
    """Sign `message` in place (a requests.PreparedRequest, or anything with `.method`, `.url` and a mutable
    `.headers`): sets Date, Content-Digest, Signature-Input and Signature. The X-Correlation-ID header must be
    set already."""
    for name in SIGNATURE_HEADERS:  # a retry signs afresh
        message.headers.pop(name, None)
    message.headers["Date"] = email.utils.formatdate(usegmt=True)
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(private=private_key))
    signer.sign(
        message, key_id=key_id, label=LABEL, tag=TAG, covered_component_ids=COVERED, body=body or b"", include_alg=True
    )


@dataclass(frozen=True)
class _Message:
    method: str
    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Verified:
    """A signature that verified: what the audit row keeps, so a node can show later what was asked of it."""

    key_id: str
    created: datetime
    signature_input: str
    signature: str
    content_digest: str

    def as_record(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "created": self.created.isoformat(),
            "signature_input": self.signature_input,
            "signature": self.signature,
            "content_digest": self.content_digest,
        }


def is_signed(headers: Mapping[str, str]) -> bool:
    return "signature" in {name.lower() for name in headers}


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    public_keys: Mapping[str, Ed25519PublicKey],
    now: datetime | None = None,
) -> Verified:
    """Check the `sudocode` signature of a request as received (`url`: the absolute URL it was sent to) against
    `public_keys` ({key id (fingerprint): key}, the sender's pinned key). SignatureMissing when it carries none,
    SignatureProblem (the reason) when it does not verify, covers too little, its body or date do not match."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if "signature" not in lowered or "signature-input" not in lowered:
        raise SignatureMissing("the message is not signed (Signature and Signature-Input headers, RFC 9421)")
    now = now or datetime.now(UTC)
    try:
        sent = email.utils.parsedate_to_datetime(lowered.get("date", ""))
    except (TypeError, ValueError):
        raise SignatureProblem("the Date header is missing or unreadable") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    if abs(now - sent) > MAX_AGE:
        raise SignatureProblem(f"the Date {lowered['date']!r} is more than {MAX_AGE.seconds // 60} minutes from now")
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(public=public_keys))
    message = _Message(method=method.upper(), url=url, headers=lowered)
    try:
        [result] = verifier.verify(message, max_age=MAX_AGE, expect_tag=TAG, require_components=REQUIRED, body=body)
    except (InvalidSignature, HTTPMessageSignaturesException, ValueError) as exc:
        raise SignatureProblem(f"the signature does not verify: {exc}") from None
    params = result.parameters
    created = params.get("created")
    return Verified(
        key_id=str(params.get("keyid", "")),
        created=created if isinstance(created, datetime) else datetime.fromtimestamp(int(created or 0), UTC),
        signature_input=lowered["signature-input"],
        signature=lowered["signature"],
        content_digest=lowered.get("content-digest", ""),
    )
