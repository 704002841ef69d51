"""The fast door: the two hot federation endpoints, `GET /api/v1/federation/info` and `POST
/api/v1/federation/query`, answered from plain values without Django's request, middleware or DRF (issue 16).

`answer(...)` is the one implementation of both endpoints. It takes the request's parts (method, path, scheme,
host, headers, body, client address) and returns an `Answer` (status, headers, body bytes). It does, in order,
what the Django stack does for them, calling the same services:

1. the correlation id (the caller's X-Correlation-ID, else the one federation_site.asgi bound, else new);
2. `node.refresh_state()` (what NodeStateMiddleware does);
3. the day's bandwidth (`remotes.quotas.check_bandwidth`, what federation.middleware does; counted at the end);
4. who is calling: `remotes.auth.authenticate` (bearer key, JWT, RFC 9421 signature, `received_signature`);
5. the message: Content-Length and size, `messages.parse_body`, `messages.parse_query`;
6. the answer: `services.answer_discover` / `services.answer_query_json` (permissions, the query rate limit,
   the answer cache, the audit row); refusals through `services.refusal`;
7. the headers Django's middleware adds to a JSON answer (`security_headers`), X-Correlation-ID, Retry-After,
   X-Sudocode-Data-Problem.

Two thin adapters call it: `asgi_answer` (federation_site.asgi sends the requests `is_fast(scope)` accepts
here, before Django) and the DRF views `federation.apis.InfoApi` / `QueryApi` (Django's test client, the OpenAPI
schema, any request the ASGI adapter leaves to Django: HEAD, an Origin header, a query string, a host Django
must check). tests/federation/test_fastdoor.py checks both give the same answers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson

from federation import services
from federation_site import logs, node
from federation_site.config import ConfigError
from protocol import messages
from remotes import quotas
from remotes.auth import Unauthorized, authenticate
from remotes.policy import Caller, PermissionDenied, RateLimited
from tracker.jsonl import JsonlFormatError
from tracker.sync import DataDamaged, data_problems

logger = logging.getLogger(__name__)

INFO_PATH = "/api/v1/federation/info"
QUERY_PATH = "/api/v1/federation/query"
JSON = "application/json"
PROBLEM_HEADER = "X-Sudocode-Data-Problem"  # dashboard.middleware's; an edge above us, so named again here
AUTHENTICATE = 'Bearer realm="sudocode-federation"'  # remotes.auth.RemoteKeyAuthentication.authenticate_header


class Headers(Mapping[str, str]):
    """A request's headers with lookups that ignore case, as Django's request.headers does; built from ASGI's
    [(b"name", b"value")] (latin-1). A repeated header keeps its last value, as Django's META does."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()):
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items = {name.lower(): value for name, value in pairs}

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        headers = cls()
        headers._items = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
        return headers

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def get(self, name: str, default=None):
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Answer:
    """What the fast door answers: the HTTP status, the headers (name, value) in order, the body (UTF-8 JSON)."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def handles(method: str, path: str) -> bool:
    """Whether `answer` is the implementation of this endpoint (HEAD of info included: Django's door)."""
    return (path == INFO_PATH and method in ("GET", "HEAD")) or (path == QUERY_PATH and method == "POST")


def answer(
    *,
    method: str,
    path: str,
    scheme: str,
    host: str,
    headers: Mapping[str, str],
    body: bytes,
    client_address: str = "",
    query_string: str = "",
) -> Answer:
    """The answer to one request to `INFO_PATH` (GET) or `QUERY_PATH` (POST) (`handles`). `host`: the Host the
    caller used, already checked against ALLOWED_HOSTS (Django's `get_host`); `scheme`: "http" or "https";
    `headers`: a mapping whose lookups ignore case (`Headers`, Django's request.headers); `body`: the raw body
    (at most MAX_MESSAGE_BYTES + 1 bytes read); `query_string`: the URL's (a signature covers it). Never raises
    for anything a caller sends: 400 (the message, naming the path), 401 (a refused JWT or signature), 403, 429
    (Retry-After), 503 (damaged data, Retry-After)."""
    call_id = correlation_id(headers)
    with logs.bound(correlation_id=call_id):
        extra = [(messages.CORRELATION_HEADER, call_id)]
        try:
            node.refresh_state()
        except node.RepoNotFound:
            pass
        with node.config_pinned():  # one config for the whole answer: checked once, not at each of ~9 reads
            try:
                config = node.config()
            except (node.RepoNotFound, ConfigError):  # the answer says what is wrong
                config = None
            status, payload = _answer(
                method=method,
                path=path,
                scheme=scheme,
                host=host,
                headers=headers,
                body=body,
                client_address=client_address,
                query_string=query_string,
                config=config,
                extra=extra,
            )
        out = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        if config is not None and quotas.bandwidth_limit(config) is not None:
            quotas.count_bandwidth(len(body) + len(out))
        problems = data_problems()
        if problems:
            extra.append((PROBLEM_HEADER, problems[0].short.encode("ascii", "backslashreplace").decode()[:500]))
        return Answer(status, out, [("Content-Type", JSON), *extra, *security_headers(https=scheme == "https")])


def _answer(
    *,
    method: str,
    path: str,
    scheme: str,
    host: str,
    headers: Mapping[str, str],
    body: bytes,
    client_address: str,
    query_string: str,
    config,
    extra: list[tuple[str, str]],
) -> tuple[int, dict | bytes]:
    correlation_id = extra[0][1]
    caller: Caller | None = None
    try:
        quotas.check_bandwidth(config)
        url = f"{scheme}://{host}{path}" + (f"?{query_string}" if query_string else "")  # as build_absolute_uri
        try:
            caller, _ = authenticate(method=method, url=url, headers=headers, body=body)
        except Unauthorized as exc:
            extra.append(("WWW-Authenticate", AUTHENTICATE))
            return 401, {"error": "unauthorized", "detail": str(exc)}
        if path == INFO_PATH:
            rest_base = f"{scheme}://{host}/api/v1"
            return 200, services.answer_discover(caller=caller, rest_base=rest_base, correlation_id=correlation_id)
        try:
            message = messages.parse_query(read_message(headers, body))
        except messages.MessageError as exc:
            services.audit_invalid(caller=caller, operation="query", error=exc, correlation_id=correlation_id)
            raise
        logs.bind(request_id=getattr(getattr(message, "metadata", None), "request_id", None))
        return 200, services.answer_query_json(
            caller=caller, message=message, correlation_id=correlation_id, client_address=client_address
        )
    except (messages.MessageError, services.QueryError) as exc:
        return 400, exc.as_json()
    except (PermissionDenied, RateLimited, JsonlFormatError) as exc:  # damaged data: nothing recorded, try later
        if caller is None:  # the day's bandwidth, before anyone was asked who they are
            caller = Caller()
        if isinstance(exc, JsonlFormatError) and not isinstance(exc, DataDamaged):  # as DataProblemsMiddleware
            exc = DataDamaged.of(exc)
        payload, status = services.refusal(exc, caller)
        if "retry_after" in payload:
            extra.append(("Retry-After", str(exc.retry_after)))
        return status, payload


def correlation_id(headers: Mapping[str, str]) -> str:
    """The id this call is known by (PROTOCOL.md, X-Correlation-ID): the caller's header when usable (printable,
    cut to 128 characters), else the one federation_site.asgi bound for the request's log lines, else a new one.
    """
    given = (headers.get(messages.CORRELATION_HEADER) or "").strip()
    if given and given.isprintable():
        return given[:128]
    return logs.current("correlation_id") or uuid.uuid4().hex


def read_message(headers: Mapping[str, str], body: bytes | Callable[[], bytes]) -> object:
    """The message a request carries, parsed as JSON (`messages.parse_body`), or MessageError: a Content-Length
    that is not a number, or over MAX_MESSAGE_BYTES (refused before `body` is read when it is a function)."""
    given = headers.get("Content-Length")
    length = messages.parse_count(given, max_digits=30)
    if given and length is None:
        raise messages.MessageError.at("", f"Content-Length {given[:40]!r} is not a number of bytes")
    if length is not None and length > messages.MAX_MESSAGE_BYTES:
        # Refused before reading it; same words as parse_body uses for a body that turns out too large.
        raise messages.MessageError.at(
            "", f"the message is {length} bytes; the limit is {messages.MAX_MESSAGE_BYTES} bytes"
        )
    return messages.parse_body(body() if callable(body) else body)


_SECURITY: dict[bool, tuple[tuple[str, str], ...]] = {}


def security_headers(*, https: bool) -> tuple[tuple[str, str], ...]:
    """The headers Django's middleware adds to a JSON answer under federation_site.settings, read from the same
    settings once per process: SecurityMiddleware (X-Content-Type-Options, Referrer-Policy,
    Cross-Origin-Opener-Policy; Strict-Transport-Security on HTTPS), django-csp's Content-Security-Policy,
    XFrameOptionsMiddleware's X-Frame-Options. tests/federation/test_fastdoor.py compares them with Django's."""
    cached = _SECURITY.get(https)
    if cached is not None:
        return cached
    from csp.utils import build_policy
    from django.conf import settings

    out: list[tuple[str, str]] = []
    if https and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        out.append(("Strict-Transport-Security", value))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        out.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        out.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        out.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    csp = build_policy()  # django-csp's own, from CONTENT_SECURITY_POLICY (directives in set order, per process)
    if csp:
        out.append(("Content-Security-Policy", csp))
    out.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()))
    _SECURITY[https] = tuple(out)
    return _SECURITY[https]


# --- the ASGI adapter -------------------------------------------------------------------------------------------

_ALLOWED_HOSTS: list[str] | None = None


def is_fast(scope: dict) -> bool:
    """Whether federation_site.asgi may send this HTTP request here rather than to Django: GET info or POST
    query at exactly their paths, no query string, no Origin (CORS is django-cors-headers' work), and a Host
    header ALLOWED_HOSTS accepts (Django's DisallowedHost answer is Django's). Everything else goes to Django,
    whose views call `answer` too."""
    method, path = scope["method"], scope["path"]
    if not ((path == QUERY_PATH and method == "POST") or (path == INFO_PATH and method == "GET")):
        return False
    if scope.get("query_string"):
        return False
    host = None
    for name, value in scope["headers"]:
        if name == b"origin":
            return False
        if name == b"host":
            host = value
    return host is not None and _host_allowed(host.decode("latin-1"))


def _host_allowed(host: str) -> bool:
    global _ALLOWED_HOSTS
    from django.http.request import split_domain_port, validate_host

    if _ALLOWED_HOSTS is None:
        from django.conf import settings

        _ALLOWED_HOSTS = list(settings.ALLOWED_HOSTS)
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, _ALLOWED_HOSTS)


# Where `answer` runs: one thread of its own per process, which keeps its database connection between answers
# (`_close_old_connections`). Not asgiref's sync_to_async(thread_sensitive=True): that thread also runs Django's
# sync views, so an answer would wait behind a page being rendered, and it cost about 5% more CPU per answer
# (measured in-process). One thread: one database connection, answers one at a time (they hold the GIL anyway);
# `serve --workers N` gives the parallelism.
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastdoor")


CONNECTION_MAX_AGE = 60.0  # seconds the fast door's thread keeps a database connection when CONN_MAX_AGE is 0


def _answer_as_django_would(correlation_id: str, request: dict) -> Answer:
    """`answer` in the fast door's thread, with what Django's handler does around a view (request_started):
    `_close_old_connections`. The correlation id federation_site.asgi bound is bound again here: the thread does
    not share the request's context."""
    _close_old_connections()
    with logs.bound(correlation_id=correlation_id):
        return answer(**request)


def _close_old_connections() -> None:
    """Django's close_old_connections for the fast door's thread: a connection left in a transaction, broken, or
    older than its CONN_MAX_AGE is closed, and the next query opens a new one. CONN_MAX_AGE 0 (SQLite's setting
    here: Django's ASGI handler runs each request's sync code in a thread of its own, so a kept connection would
    leak) closed it after every request, and opening one (with its WAL pragmas) cost 1.5 ms, more than a whole
    answer (362 connections for 350 discovers, counted): this thread keeps it up to CONNECTION_MAX_AGE."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.settings_dict["CONN_MAX_AGE"] == 0 and conn.close_at is not None:
            # This thread's own wrapper (not the settings all share): close_at is the time it connected.
            conn.close_at += CONNECTION_MAX_AGE
            conn.settings_dict = {**conn.settings_dict, "CONN_MAX_AGE": CONNECTION_MAX_AGE}
        conn.close_if_unusable_or_obsolete()


async def asgi_answer(scope: dict, receive: Callable, send: Callable) -> None:
    """Answer an HTTP request `is_fast` accepted: read the body (at most MAX_MESSAGE_BYTES + 1 bytes, none past a
    larger Content-Length), run `answer` in the fast door's thread (the database is not async), send it."""
    headers = Headers.from_asgi(scope["headers"])
    body = b""
    if scope["method"] == "POST":
        declared = messages.parse_count(headers.get("Content-Length"), max_digits=30)
        if declared is None or declared <= messages.MAX_MESSAGE_BYTES:
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if size <= messages.MAX_MESSAGE_BYTES:
                    chunks.append(chunk)
                    size += len(chunk)
                if not message.get("more_body"):
                    break
            body = b"".join(chunks)
    client = scope.get("client") or ("", 0)
    try:
        request = {
            "method": scope["method"],
            "path": scope["path"],
            "scheme": scope.get("scheme") or "http",
            "host": headers["host"],
            "headers": headers,
            "body": body,
            "client_address": client[0] or "",
        }
        correlation_id = logs.current("correlation_id") or ""
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(_EXECUTOR, _answer_as_django_would, correlation_id, request)
    except Exception:  # as Django's handler does: logged with the request, a 500 without details
        logger.exception("Internal Server Error: %s", scope["path"])
        result = Answer(500, b'{"error": "server_error"}', [("Content-Type", JSON)])
    raw = [(b"content-length", str(len(result.body)).encode())]
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in result.headers]
    await send({"type": "http.response.start", "status": result.status, "headers": raw})
    await send({"type": "http.response.body", "body": result.body})
