"""Who is calling: the remote whose API key the request presents as `Authorization: Bearer <key>`, or the
anonymous, untrusted caller. Used by every transport through DRF (request.auth is always a Caller).

A remote with a pinned public key (`remote_repos[].public_key`) is also checked for its RFC 9421 signature
(remotes/signatures.py, issue 17): a signature that verifies is kept with the audit rows of the request; with
`require_signatures`, an unsigned or wrongly signed message is refused with 401."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from audit.services import received_signature
from federation_site import logs, node
from federation_site.keys import fingerprint, parse_public_key
from remotes.models import RemoteRepo
from remotes.policy import ANONYMOUS, Caller
from remotes.signatures import SignatureProblem, Verified, is_signed, verify_request

logger = logging.getLogger(__name__)


JWT_MAX_LIFETIME = timedelta(minutes=5)
JWT_LEEWAY = timedelta(seconds=30)  # clock skew between nodes


class TokenRejected(Exception):
    """A JWT that does not make its bearer a remote; `str()` says why (the 401's detail)."""


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def caller_for_jwt(token: str, *, now: datetime | None = None) -> Caller:
    """The remote a short-lived JWT speaks for (issue 17): EdDSA, signed with the key pinned for its `iss` (a
    remote's identity), `aud` = our identity, `exp` at most 5 minutes after `iat`, a `jti` never seen before
    (remembered until it expires). TokenRejected (the reason) otherwise. PyJWT does the checking."""
    import jwt
    from django.db import IntegrityError
    from django.utils import timezone

    from remotes.models import UsedTokenId

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"not a JWT: {exc}") from None
    issuer = claims.get("iss")
    cfg = node.config()
    declared, _ = cfg.remote_index(issuer) if cfg and isinstance(issuer, str) else (None, None)
    remote = RemoteRepo.objects.filter(url=declared.url).first() if declared else None
    if remote is None or not declared.public_key:
        raise TokenRejected(f"iss {str(issuer)[:100]!r} is not a remote with a pinned public key here")
    audience = cfg.local_identity.url if cfg.local_identity else ""
    now = now or timezone.now()
    try:
        claims = jwt.decode(
            token,
            key=parse_public_key(declared.public_key),
            algorithms=["EdDSA"],
            audience=audience,
            issuer=declared.url,
            leeway=JWT_LEEWAY,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(f"the JWT of {declared.url} is refused: {exc}") from None
    if claims["exp"] - claims["iat"] > JWT_MAX_LIFETIME.total_seconds():
        raise TokenRejected(f"the JWT lives {claims['exp'] - claims['iat']:.0f} s: at most 300 s (exp - iat)")
    expires = datetime.fromtimestamp(claims["exp"], UTC) + JWT_LEEWAY
    UsedTokenId.objects.filter(expires_at__lt=now).delete()
    try:
        UsedTokenId.objects.create(jti=f"{declared.url} {claims['jti']}"[:200], expires_at=expires)
    except IntegrityError:
        raise TokenRejected(f"the JWT's jti {str(claims['jti'])[:80]!r} was used already: make a new token") from None
    return Caller(remote)


def caller_for_token(token: str | None) -> Caller:
    """The caller a bearer token names: a remote's API key, or a remote's short-lived JWT (`caller_for_jwt`);
    anyone else is the anonymous caller. Every line logged afterwards while answering names it (`remote` in the
    log context, federation_site/logs.py)."""
    caller = ANONYMOUS
    if token and looks_like_jwt(token):
        try:
            caller = caller_for_jwt(token)
        except TokenRejected as exc:
            logger.info("a JWT was refused: %s", exc)
    elif token:
        from remotes.services import hash_key

        remote = remote_by_key_hash(hash_key(token)) if token.isascii() else None
        caller = Caller(remote) if remote else ANONYMOUS
    logs.bind(remote=caller.identity or "anonymous")
    return caller


# api_key_hash -> (its row as last read, the RemoteRepo built from it): per process, checked on every use.
_BY_KEY_HASH: dict[str, tuple[tuple, RemoteRepo]] = {}


def remote_by_key_hash(key_hash: str) -> RemoteRepo | None:
    """The remote whose API key hashes to `key_hash` (sha256 hex), or None. Its row is read on every call, in one
    plain SQL statement (the ORM's compiling was most of its cost); the model instance is built again only when
    the row reads differently from the last time, in this process. So a key revoked, rotated or given another
    trust level by any process applies to the next request, as a lookup every time would."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_by_key_hash_sql(connection), [key_hash])
        row = cursor.fetchone()
    if row is None:
        _BY_KEY_HASH.pop(key_hash, None)
        return None
    cached = _BY_KEY_HASH.get(key_hash)
    if cached is not None and cached[0] == row:
        return cached[1]
    # At least as new as `row`: a change between the two reads only makes the next call read it again.
    remote = RemoteRepo.objects.filter(api_key_hash=key_hash).first()
    if remote is not None:
        _BY_KEY_HASH[key_hash] = (tuple(row), remote)
    return remote


def _by_key_hash_sql(connection) -> str:
    sql = _SQL.get(connection.vendor)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in RemoteRepo._meta.concrete_fields)
        table = quote(RemoteRepo._meta.db_table)
        sql = f"SELECT {columns} FROM {table} WHERE {quote('api_key_hash')} = %s ORDER BY {quote('url')} LIMIT 1"
        _SQL[connection.vendor] = sql
    return sql


_SQL: dict[str, str] = {}  # by database vendor


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


class Unauthorized(Exception):
    """A request that claims to be a remote and fails to prove it (a refused JWT, a missing or wrong signature
    its config requires): HTTP 401 with `{"error": "unauthorized", "detail": str(exc)}`."""


def authenticate(
    *, method: str, url: str, headers: Mapping[str, str], body: bytes | Callable[[], bytes]
) -> tuple[Caller, Verified | None]:
    """Who is calling, from the request's plain parts: the remote its `Authorization: Bearer` names (an API key
    or a JWT, `caller_for_token` / `caller_for_jwt`), else the anonymous caller; and its verified RFC 9421
    signature (`signature_check`), also kept for the audit rows of this request (`received_signature`, set on
    every call, None included). `headers`: any mapping whose lookups ignore case (Django's request.headers,
    federation.fastdoor's); `url`: the absolute URL the caller signed; `body`: the raw body or a function reading
    it. Unauthorized (the reason) for a JWT that is refused and for a signature its config requires. Both doors
    of the federation endpoints call this (DRF's RemoteKeyAuthentication, federation.fastdoor)."""
    received_signature.set(None)
    token = bearer_token(headers.get("Authorization"))
    try:
        caller = caller_for_jwt(token) if token and looks_like_jwt(token) else caller_for_token(token)
    except TokenRejected as exc:  # a JWT is a claim to be someone: a bad one is refused, not anonymous
        raise Unauthorized(str(exc)) from None
    try:
        verified = signature_check(caller, method=method, url=url, headers=headers, body=body)
    except SignatureProblem as exc:
        raise Unauthorized(str(exc)) from None
    received_signature.set(verified.as_record() if verified else None)
    return caller, verified


class RemoteKeyAuthentication(BaseAuthentication):
    """Sets request.auth to the calling remote (a Caller); a missing or unknown key is the anonymous caller,
    never an error: anonymous callers get what the untrusted level allows. A remote whose config requires
    signatures gets 401 for an unsigned or wrongly signed message (`authenticate`)."""

    def authenticate(self, request):
        from django.contrib.auth.models import AnonymousUser

        try:
            caller, _ = authenticate(
                method=request.method,
                url=request.build_absolute_uri(),
                headers=request.headers,
                body=lambda: request.body,
            )
        except Unauthorized as exc:
            raise AuthenticationFailed({"error": "unauthorized", "detail": str(exc)}) from None
        return AnonymousUser(), caller

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="sudocode-federation"'


def request_caller(request) -> Caller:
    return request.auth if isinstance(request.auth, Caller) else ANONYMOUS


def jwt_for(*, audience: str, issuer: str, private_key, lifetime: timedelta = JWT_MAX_LIFETIME) -> str:
    """A short-lived JWT for `audience` (the called node's identity), issued as `issuer` (ours), signed with
    `private_key` (Ed25519): what `caller_for_jwt` accepts once."""
    import uuid

    import jwt

    now = datetime.now(UTC)
    claims = {"iss": issuer, "aud": audience, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, private_key, algorithm="EdDSA")


class RemoteKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes RemoteKeyAuthentication."""

    target_class = "remotes.auth.RemoteKeyAuthentication"
    name = "remoteApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The API key this node issued to the calling remote (`sudocode-fed remote add`), or a "
            "short-lived JWT (EdDSA, signed with the remote's pinned key, aud = this node's identity, at most 5 "
            "minutes, one use). Without one the caller is anonymous and untrusted.",
        }
