"""Who is calling: the remote whose API key the request presents as `Authorization: Bearer <key>`, or the
anonymous, untrusted caller. Used by every transport through DRF (request.auth is always a Caller)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from federation_site import logs
from remotes.models import RemoteRepo
from remotes.policy import ANONYMOUS, Caller


def caller_for_token(token: str | None) -> Caller:
    """The remote whose key `token` is, or ANONYMOUS; every line logged afterwards while answering names it
    (`remote` in the log context, federation_site/logs.py)."""
    caller = ANONYMOUS
    if token:
        from remotes.services import hash_key

        remote = RemoteRepo.objects.filter(api_key_hash=hash_key(token)).first() if token.isascii() else None
        caller = Caller(remote) if remote else ANONYMOUS
    logs.bind(remote=caller.identity or "anonymous")
    return caller


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class RemoteKeyAuthentication(BaseAuthentication):
    """Sets request.auth to the calling remote (a Caller); a missing or unknown key is the anonymous caller,
    never an error: anonymous callers get what the untrusted level allows."""

    def authenticate(self, request):
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser(), caller_for_token(bearer_token(request.META.get("HTTP_AUTHORIZATION")))

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
