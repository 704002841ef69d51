"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", keyed by the subscription's secret.

    X-Sudocode-Signature: t=1762439400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

The timestamp is signed with the body, so a captured message cannot be replayed outside the window, and the
receiver compares in constant time. (Stripe's scheme, which webhook receivers already know.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from protocol import messages

SIGNATURE_HEADER = "X-Sudocode-Signature"
WINDOW_SECONDS = 300


class SignatureError(Exception):
    """The signature is missing, malformed, wrong, or too old; the message says which."""


def new_secret() -> str:
    return secrets.token_hex(32)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The value of the X-Sudocode-Signature header for `body`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: str, header: str | None, body: bytes, *, now: float | None = None) -> int:
    """The signed timestamp if `header` signs `body` with `secret` within the window; SignatureError if not."""
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    timestamp = messages.parse_count(parts["t"][0], max_digits=12) if parts.get("t") else None
    if timestamp is None:
        raise SignatureError(f"{SIGNATURE_HEADER} has no t=<unix time>")
    if not parts.get("v1"):
        raise SignatureError(f"{SIGNATURE_HEADER} has no v1=<hex digest>")
    now = time.time() if now is None else now
    if abs(now - timestamp) > WINDOW_SECONDS:
        raise SignatureError(
            f"the signature timestamp is {int(now - timestamp)} s old; the window is {WINDOW_SECONDS} s"
        )
    expected = _digest(secret, timestamp, body)
    # As bytes: compare_digest refuses str with characters beyond ASCII (a header may carry any Latin-1).
    if not any(hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")) for given in parts["v1"]):
        raise SignatureError("the signature does not match the body")
    return timestamp
