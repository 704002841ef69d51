"""HTTP Message Signatures (RFC 9421) between nodes (issue 17), with Ed25519 keys (federation_site/keys.py). No
Django here: the client signs with it, the edges verify with it.

Every signed message carries a `Date`, a `Content-Digest` (RFC 9530: sha-256 of the body, also of an empty one) and

    Signature-Input: sudocode=("@method" "@target-uri" "date" "x-correlation-id" "content-digest");
        created=1764470000;keyid="SHA256:...";alg="ed25519";tag="sudocode-federation"
    Signature: sudocode=:<base64 of the Ed25519 signature>:

signing the signature base of RFC 9421 section 2.5 (one line per covered component, then the parameters):

    "@method": POST
    "@target-uri": https://api.example.com/api/v1/federation/query
    "date": Mon, 30 Nov 2026 05:00:00 GMT
    "x-correlation-id": 3f2a...
    "content-digest": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:
    "@signature-params": ("@method" "@target-uri" "date" "x-correlation-id" "content-digest");created=...

A verifier accepts it only when the signature verifies with the key it pinned for the sender, covers all of
those components, the body matches the digest, and `created` and `Date` are both within MAX_AGE of its clock
(a replay with an old date is refused; idempotency keys deduplicate replays inside the window).

Speed: the `http-message-signatures` library spends most of a call serialising and parsing structured fields
(`http_sf`), so for the one shape we emit this module writes the headers and the base itself, and reads a
received `Signature-Input` with a strict pattern for exactly that shape (`_fast_sign`, `_fast_verify`: about a
third of the library's cost). Anything else - other components, parameters, labels, URLs or header values
outside the plain ASCII the patterns accept - goes through the library unchanged, so any RFC 9421 signer that
covers these components still verifies (tests/remotes/test_signatures.py checks both directions).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature as BadSignatureBytes
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
CLOCK_SKEW = 5  # seconds a `created` may lie in the future (the library's max_clock_skew)
SIGNATURE_HEADERS = ("Signature", "Signature-Input", "Content-Digest", "Date")

# The fast path's shapes. Every pattern is a subset of what RFC 9421 / RFC 8941 allow, chosen so that the
# library would produce and read exactly the same bytes; a value outside it takes the library's path.
_COMPONENTS = '("@method" "@target-uri" "date" "x-correlation-id" "content-digest")'
_PARAMS = _COMPONENTS + ';created={created};keyid="{key_id}";alg="ed25519";tag="' + TAG + '"'
_SIGNATURE_INPUT = re.compile(
    re.escape(LABEL + "=" + _COMPONENTS) + r';created=([0-9]{1,15});keyid="([\x20-\x21\x23-\x5b\x5d-\x7e]*)"'
    r';alg="ed25519";tag="' + re.escape(TAG) + '"'
)
_SIGNATURE = re.compile(re.escape(LABEL) + r"=:([A-Za-z0-9+/]{86}==):")  # 64 bytes of Ed25519 signature
_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")
_KEY_ID = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")  # an sf-string without `"` or `\`: no escaping needed
_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")  # a field value the library would not trim
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})  # not OPTIONS (its empty path stays "")
_PCHAR = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/\-]|%[0-9A-Fa-f]{2})"
_URL = re.compile(rf"(https?://[A-Za-z0-9.\-]+(?::[0-9]{{1,5}})?)(/{_PCHAR}*)?(\?(?:{_PCHAR}|\?)*)?")


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


def content_digest(body: bytes) -> str:
    """The `Content-Digest` field of `body` (RFC 9530, sha-256), as the library writes it."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def _target_uri(method: str, url: str) -> str | None:
    """The `@target-uri` value of RFC 9421 section 2.2.2 for the plain URLs nodes use, None for any other."""
    match = _URL.fullmatch(url) if method in _METHODS else None
    if match is None:
        return None
    origin, path, query = match.groups()
    return origin + (path or "/") + (query or "")


def _base(*, method: str, target: str, date: str, correlation_id: str, digest: str, params: str) -> bytes:
    return (
        f'"@method": {method}\n"@target-uri": {target}\n"date": {date}\n"x-correlation-id": {correlation_id}\n'
        f'"content-digest": {digest}\n"@signature-params": {params}'
    ).encode()


def _header(headers: Any, name: str) -> str | None:
    value = headers.get(name)  # requests' and Django's headers are case-insensitive; a plain dict may not be
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def sign_request(message: Any, *, key_id: str, private_key: Ed25519PrivateKey, body: bytes | None) -> None:
    """Sign `message` in place (a requests.PreparedRequest, or anything with `.method`, `.url` and a mutable
    `.headers`): sets Date, Content-Digest, Signature-Input and Signature. The X-Correlation-ID header must be
    set already (HTTPMessageSignaturesException otherwise, from the library's path)."""
    headers = message.headers
    for name in SIGNATURE_HEADERS:  # a retry signs afresh
        headers.pop(name, None)
    date = email.utils.formatdate(usegmt=True)
    headers["Date"] = date
    body = body or b""
    correlation_id = _header(headers, "X-Correlation-ID")
    target = _target_uri(message.method, str(message.url))  # httpx gives a URL object
    if (
        target is None
        or correlation_id is None
        or not _VALUE.fullmatch(correlation_id)
        or not _KEY_ID.fullmatch(key_id)
    ):
        signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(private=private_key))
        signer.sign(
            message, key_id=key_id, label=LABEL, tag=TAG, covered_component_ids=COVERED, body=body, include_alg=True
        )
        return
    digest = content_digest(body)
    params = _PARAMS.format(created=int(time.time()), key_id=key_id)
    base = _base(
        method=message.method, target=target, date=date, correlation_id=correlation_id, digest=digest, params=params
    )
    headers["Content-Digest"] = digest
    headers["Signature-Input"] = f"{LABEL}={params}"
    headers["Signature"] = f"{LABEL}=:{base64.b64encode(private_key.sign(base)).decode()}:"


@dataclass(frozen=True)
class _Message:
    method: str
    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Verified:
    """A signature that verified: what the audit row keeps, so a node can show later what was asked of it.
    `signature_base` is the exact text the sender signed (RFC 9421 section 2.5): method, target URI, date,
    correlation id, content digest and the signature parameters; with `signature` and the sender's public key,
    anyone can check it again (`reverify`)."""

    key_id: str
    created: datetime
    signature_input: str
    signature: str
    content_digest: str
    signature_base: str

    def as_record(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "created": self.created.isoformat(),
            "signature_input": self.signature_input,
            "signature": self.signature,
            "content_digest": self.content_digest,
            "signature_base": self.signature_base,
        }


def reverify(record: Mapping[str, str], public_key: Ed25519PublicKey) -> bool:
    """Whether a stored signature record (`Verified.as_record()`, as the audit row keeps it) is `public_key`'s
    signature over its `signature_base`: the proof that the sender sent those components."""
    match = re.fullmatch(r"[A-Za-z0-9\-_*]+=:([A-Za-z0-9+/=]+):", record.get("signature", ""))
    try:
        public_key.verify(base64.b64decode(match.group(1) if match else ""), record["signature_base"].encode())
    except (BadSignatureBytes, binascii.Error, KeyError, ValueError):
        return False
    return True


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
    verified = _fast_verify(method=method, url=url, headers=lowered, body=body, public_keys=public_keys, now=now)
    if verified is None:
        verified = _library_verify(method=method, url=url, headers=lowered, body=body, public_keys=public_keys)
    return verified


def _fast_verify(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    public_keys: Mapping[str, Ed25519PublicKey],
    now: datetime,
) -> Verified | None:
    """The check of a signature in exactly the shape `sign_request` writes, None for any other shape (then the
    library decides). Applies the library's rules: created not in the future (CLOCK_SKEW), not older than
    MAX_AGE, the key pinned, the digest of the body, the Ed25519 signature over the base."""
    signature_input, signature = headers["signature-input"], headers["signature"]
    fields = _SIGNATURE_INPUT.fullmatch(signature_input)
    sig = _SIGNATURE.fullmatch(signature)
    target = _target_uri(method, url)
    date, correlation_id = headers["date"], headers.get("x-correlation-id", "")
    digest = headers.get("content-digest", "")
    if (
        fields is None
        or sig is None
        or target is None
        or not _VALUE.fullmatch(date)
        or not _VALUE.fullmatch(correlation_id)
        or not _DIGEST.fullmatch(digest)
    ):
        return None
    created, key_id = int(fields.group(1)), fields.group(2)
    clock = now.timestamp()
    if created > clock + CLOCK_SKEW:
        raise SignatureProblem("the signature does not verify: its created parameter is in the future")
    if created + MAX_AGE.total_seconds() < clock - CLOCK_SKEW:
        raise SignatureProblem(f"the signature does not verify: it was created more than {MAX_AGE} ago")
    key = public_keys.get(key_id)
    if key is None:
        raise SignatureProblem(
            f"the signature does not verify: signed with key {key_id}, not the key pinned for this sender"
        )
    if digest != content_digest(body):
        raise SignatureProblem("the signature does not verify: Content-Digest does not match the message body")
    params = signature_input[len(LABEL) + 1 :]
    base = _base(method=method, target=target, date=date, correlation_id=correlation_id, digest=digest, params=params)
    try:
        key.verify(base64.b64decode(sig.group(1)), base)
    except BadSignatureBytes:
        raise SignatureProblem("the signature does not verify: the Ed25519 signature is not the base's") from None
    return Verified(
        key_id=key_id,
        created=datetime.fromtimestamp(created, UTC),
        signature_input=signature_input,
        signature=signature,
        content_digest=digest,
        signature_base=base.decode(),
    )


def _library_verify(
    *, method: str, url: str, headers: dict[str, str], body: bytes, public_keys: Mapping[str, Ed25519PublicKey]
) -> Verified:
    """Any other RFC 9421 shape that covers REQUIRED with our tag, checked by `http-message-signatures`."""
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(public=public_keys))
    message = _Message(method=method.upper(), url=url, headers=headers)
    try:
        [result] = verifier.verify(message, max_age=MAX_AGE, expect_tag=TAG, require_components=REQUIRED, body=body)
    except (InvalidSignature, HTTPMessageSignaturesException, ValueError) as exc:
        raise SignatureProblem(f"the signature does not verify: {exc}") from None
    params = result.parameters
    created = params.get("created")
    return Verified(
        key_id=str(params.get("keyid", "")),
        created=created if isinstance(created, datetime) else datetime.fromtimestamp(int(created or 0), UTC),
        signature_input=headers["signature-input"],
        signature=headers["signature"],
        content_digest=headers.get("content-digest", ""),
        signature_base="\n".join(f"{name}: {value}" for name, value in result.covered_components.items()),
    )
