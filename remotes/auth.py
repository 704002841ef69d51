"""Who is calling: the remote whose API key the request presents as `Authorization: Bearer <key>`, or the
anonymous, untrusted caller. Used by every transport through DRF (request.auth is always a Caller).

A remote with a pinned public key (`remote_repos[].public_key`) is also checked for its RFC 9421 signature
(remotes/signatures.py, issue 17): a signature that verifies is kept with the audit rows of the request; with
`require_signatures`, an unsigned or wrongly signed message is refused with 401."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from audit.services import received_signature
from federation_site import node
from federation_site.keys import fingerprint, parse_public_key
from remotes.models import RemoteRepo
from remotes.policy import ANONYMOUS, Caller
from remotes.signatures import SignatureProblem, Verified, is_signed, verify_request

logger = logging.getLogger(__name__)


def caller_for_token(token: str | None) -> Caller:
    if not token:
        return ANONYMOUS
    from remotes.services import hash_key

    remote = RemoteRepo.objects.filter(api_key_hash=hash_key(token)).first() if token.isascii() else None
    return Caller(remote) if remote else ANONYMOUS


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def signature_check(
    caller: Caller, *, method: str, url: str, headers: Mapping[str, str], body: bytes | Callable[[], bytes]
) -> Verified | None:
    """The caller's verified signature, None when there is nothing to verify (an anonymous caller, no pinned key,
    or an unsigned message its config does not require signed). SignatureProblem (the reason) when the config
    says `require_signatures` and the message is unsigned or does not verify with the pinned key; without it, a
    signature that does not verify is only logged. `body`: the raw body, or a function reading it (read only when
    a signature is checked)."""
    if caller.remote is None:
        return None
    cfg = node.config()
    declared, _ = cfg.remote_index(caller.identity) if cfg else (None, None)
    required = bool(declared and declared.require_signatures)
    pinned = declared.public_key if declared else None
    if not is_signed(headers):
        if required:
            raise SignatureProblem(f"{caller} must sign its messages (require_signatures): this one is not signed")
        return None
    if not pinned:
        if required:
            raise SignatureProblem(f"no public key is pinned for {caller}: run `sudocode-fed remote key` first")
        return None
    raw = body() if callable(body) else body
    try:
        return verify_request(
            method=method,
            url=url,
            headers=headers,
            body=raw,
            public_keys={fingerprint(pinned): parse_public_key(pinned)},
        )
    except SignatureProblem as exc:
        if required:
            raise
        logger.warning("a message from %s carries a signature that does not verify: %s", caller, exc)
        return None


class RemoteKeyAuthentication(BaseAuthentication):
    """Sets request.auth to the calling remote (a Caller); a missing or unknown key is the anonymous caller,
    never an error: anonymous callers get what the untrusted level allows. A remote whose config requires
    signatures gets 401 for an unsigned or wrongly signed message (`signature_check`)."""

    def authenticate(self, request):
        from django.contrib.auth.models import AnonymousUser

        caller = caller_for_token(bearer_token(request.META.get("HTTP_AUTHORIZATION")))
        try:
            verified = signature_check(
                caller,
                method=request.method,
                url=request.build_absolute_uri(),
                headers=request.headers,
                body=lambda: request.body,
            )
        except SignatureProblem as exc:
            raise AuthenticationFailed({"error": "unauthorized", "detail": str(exc)}) from None
        received_signature.set(verified.as_record() if verified else None)
        return AnonymousUser(), caller

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="sudocode-federation"'


def request_caller(request) -> Caller:
    return request.auth if isinstance(request.auth, Caller) else ANONYMOUS


class RemoteKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes RemoteKeyAuthentication."""

    target_class = "remotes.auth.RemoteKeyAuthentication"
    name = "remoteApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The API key this node issued to the calling remote (`sudocode-fed remote add`). "
            "Without one the caller is anonymous and untrusted.",
        }
