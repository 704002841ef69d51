"""The one module through which this node calls another node.

Everything comes in as arguments (no Django models, no settings), so it can be tested without a database:

    client = RemoteClient("https://other.example/api/v1", token=token)
    info = client.get("/federation/info").data

Errors follow STYLE.md habit 6. A 4xx other than 408/429 is permanent: `RemoteRejected`, after one request.
Connection errors, timeouts, 408, 429 and 5xx are transient: retried with capped, fully jittered exponential
backoff (honouring `Retry-After`), then `RemoteUnreachable`. A 2xx whose body is not a JSON object is
`RemoteBadResponse`. Callers that keep delivery rows can store `str(error)`, `.status` and `.attempts`.

POSTs are retried too, so every POST endpoint of the protocol must be idempotent (deduplicated on its key).
"""

from __future__ import annotations

import email.utils
import functools
import http.cookiejar
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from federation_site import logs
from federation_site.keys import NodeKey
from remotes.signatures import sign_request
from remotes.urlguard import GuardedAdapter, UrlGuard, UrlRefused

logger = logging.getLogger(__name__)

ERROR_BODY_LIMIT = 2048
POOL_MAXSIZE = 10


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 3  # extra attempts after the first
    backoff_base: float = 0.2  # seconds; retry n sleeps uniform(0, min(cap, base * 2**n)) unless Retry-After says more
    backoff_cap: float = 5.0
    retry_after_cap: float = 30.0


DEFAULT_POLICY = HttpPolicy()


class RemoteError(Exception):
    def __init__(
        self,
        message: str,
        *,
        url: str,
        correlation_id: str = "",
        attempts: int = 0,
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.correlation_id = correlation_id
        self.attempts = attempts
        self.status = status
        self.body = body


class RemoteUnreachable(RemoteError):
    """Transient failure that outlived the retries: refused, DNS, timeout, or 408/429/5xx (then `.status` is set)."""


class RemoteRejected(RemoteError):
    """Permanent: the remote answered with a 4xx other than 408/429. Retrying the same request will not help."""


class RemoteBadResponse(RemoteError):
    """The remote answered, but not with what the protocol allows (a 2xx without a JSON object, or a 1xx/3xx)."""


@dataclass
class Response:
    status: int
    data: dict
    headers: Mapping[str, str]
    elapsed_ms: float  # the whole call, retries and backoff included
    attempts: int
    correlation_id: str


# One pooled Session per remote base URL. Sessions carry no per-call state (headers go on each request, cookies
# are refused), so concurrent use of one Session from several threads only shares urllib3's thread-safe pool.
_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request) -> bool:
        return False


def _new_session(pool_maxsize: int = POOL_MAXSIZE, *, public_only: bool = False) -> requests.Session:
    session = requests.Session()
    # No proxies, netrc credentials or CA bundles from the environment: what leaves this node is decided here.
    session.trust_env = False
    # The protocol is stateless (bearer tokens); a cookie set by one call must not ride along on the next.
    session.cookies.set_policy(_NoCookies())
    # Retries are ours (with backoff and Retry-After); urllib3 must not retry underneath us.
    # A URL that is only public (not vouched for) is connected to through GuardedAdapter, which checks the
    # address it connects to (urlguard): DNS cannot switch it to an internal one after the check.
    adapter_class = GuardedAdapter if public_only else HTTPAdapter
    adapter = adapter_class(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _session_for(base_url: str, *, pool_maxsize: int = POOL_MAXSIZE, public_only: bool = False) -> requests.Session:
    key = f"public-only {base_url}" if public_only else base_url
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = _new_session(pool_maxsize, public_only=public_only)
        return session


def close_sessions() -> None:
    with _sessions_lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()


@functools.cache
def user_agent() -> str:
    # Read lazily: package metadata costs tens of milliseconds, and most imports of this module never call out.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"sudocode-federation/{version('sudocode-federation')}"
    except PackageNotFoundError:
        return "sudocode-federation/dev"


def backoff_delay(policy: HttpPolicy, retry: int, retry_after: float | None = None) -> float:
    """Seconds to sleep before retry number `retry` (0-based): full jitter, unless Retry-After asks for more."""
    delay = random.uniform(0, min(policy.backoff_cap, policy.backoff_base * 2**retry))
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_cap))
    return delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds, from delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000" dates parse as naive; HTTP-dates are always GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _error_body(response: requests.Response) -> Any:
    content = response.content
    if len(content) <= ERROR_BODY_LIMIT:
        try:
            return json.loads(content)
        except ValueError:
            pass
    return content[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace")


def _reason(body: Any) -> str:
    """ ": why" from a federation error body ({"detail": ...} or {"errors": [{path, message}]}), else ""."""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("detail"), str):
        return f": {body['detail'][:300]}"
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return f": {first.get('path') or '(body)'}: {str(first.get('message'))[:300]}"
    return ""


def _is_transient(status: int) -> bool:
    return status in (408, 429) or 500 <= status <= 599


# Errors of the transport that may go away on their own. ConnectTimeout is a ConnectionError; ReadTimeout is a
# Timeout; ChunkedEncodingError is a connection dropped while the body was read.
_TRANSIENT_EXCEPTIONS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class RemoteClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        policy: HttpPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
        remote: str = "",
        guard: UrlGuard | None = None,
        signer: NodeKey | None = None,
    ) -> None:
        """`guard`: for a base URL that came from outside (a directory, an agent card), the rules it must pass
        (remotes.urlguard); None for an endpoint an admin declared. `signer`: this node's key, to sign every
        request (RFC 9421, remotes.signatures; each attempt signed afresh)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a remote's base URL must be an http(s) URL with a host, not {base_url!r}")
        if token is not None and (not token or not token.isprintable() or token != token.strip()):
            raise ValueError("a bearer token must be a non-empty printable string without surrounding whitespace")
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._token = token
        self._sleep = sleep
        self._headers = dict(headers or {})  # sent with every call (A2A-Version for the A2A transport)
        self.remote = remote  # the remote's identity, for the log context of each call (federation_site/logs.py)
        self._guard = guard
        self._signer = signer

    @property
    def token(self) -> str | None:
        return self._token

    def __repr__(self) -> str:
        return f"RemoteClient({self.base_url!r})"

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        request_id = path.rsplit("/", 1)[-1] if path.startswith("/federation/requests/") else None
        return self._request(
            "GET", path, params=params, correlation_id=correlation_id, timeout=timeout, request_id=request_id
        )

    def post(
        self,
        path: str,
        json_body: dict,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        # Serialized once, here: a body that is not JSON is a bug of the caller, not a remote failure.
        body = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
        metadata = json_body.get("metadata")
        request_id = metadata.get("request_id") if isinstance(metadata, dict) else None
        return self._request(
            "POST", path, body=body, correlation_id=correlation_id, timeout=timeout, request_id=request_id
        )

    def delete(self, path: str, *, correlation_id: str | None = None, timeout: float | None = None) -> Response:
        # Retried like the others: a DELETE of the protocol (cancelling a subscription) is idempotent.
        return self._request("DELETE", path, correlation_id=correlation_id, timeout=timeout)

    def url(self, path: str) -> str:
        path = path.lstrip("/")
        return f"{self.base_url}/{path}" if path else self.base_url

    def _timeouts(self, timeout: float | None) -> tuple[float, float]:
        # A per-call timeout replaces the read timeout, and bounds the connect timeout too: a caller asking for
        # an answer within 0.5 s does not want to wait 3 s for a TCP handshake.
        if timeout is None:
            return (self.policy.connect_timeout, self.policy.read_timeout)
        return (min(self.policy.connect_timeout, timeout), timeout)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        correlation_id: str | None,
        timeout: float | None,
        request_id: str | None = None,
    ) -> Response:
        # A call made while answering another (a delegation passed on, a query fanned out) keeps its id, so one
        # operation has one correlation id on every node it reaches.
        correlation_id = correlation_id or logs.current("correlation_id") or uuid.uuid4().hex
        with logs.bound(correlation_id=correlation_id, remote=self.remote or None, request_id=request_id):
            return self._send(method, path, params=params, body=body, correlation_id=correlation_id, timeout=timeout)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        body: bytes | None,
        correlation_id: str,
        timeout: float | None,
    ) -> Response:
        url = self.url(path)
        headers = {
            "Accept": "application/json",
            "User-Agent": user_agent(),
            "X-Correlation-ID": correlation_id,
            **self._headers,
        }
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        timeouts = self._timeouts(timeout)
        max_attempts = 1 + max(0, self.policy.retries)
        started = time.monotonic()
        attempt = 0

        def fail(cls: type[RemoteError], message: str, **extra: Any) -> RemoteError:
            return cls(f"{method} {url}: {message}", url=url, correlation_id=correlation_id, attempts=attempt, **extra)

        try:
            public_only = self._guard is not None and not self._guard.check(url)
        except UrlRefused as exc:
            raise fail(RemoteRejected, f"refused: {exc}") from None
        session = _session_for(self.base_url, public_only=public_only)

        for attempt in range(1, max_attempts + 1):
            retry_after = None
            try:
                prepared = session.prepare_request(
                    requests.Request(method, url, params=params, data=body, headers=headers)
                )
                if self._signer is not None:
                    sign_request(prepared, key_id=self._signer.key_id, private_key=self._signer.private_key, body=body)
                # Redirects are not followed: a remote must not be able to point us at another address.
                response = session.send(prepared, timeout=timeouts, allow_redirects=False)
            except UrlRefused as exc:  # at connect time: the name now resolves to an address we refuse
                raise fail(RemoteRejected, f"refused: {exc}") from None
            except _TRANSIENT_EXCEPTIONS as exc:
                problem = f"{type(exc).__name__}: {exc}"
                if attempt == max_attempts:
                    raise fail(RemoteUnreachable, problem) from exc
            except requests.RequestException as exc:
                raise fail(RemoteError, f"{type(exc).__name__}: {exc}") from exc
            else:
                status = response.status_code
                if 200 <= status <= 299:
                    return Response(
                        status=status,
                        data=self._json_object(response, fail),
                        headers=response.headers,
                        elapsed_ms=(time.monotonic() - started) * 1000,
                        attempts=attempt,
                        correlation_id=correlation_id,
                    )
                if not _is_transient(status):
                    cls = RemoteRejected if 400 <= status <= 499 else RemoteBadResponse
                    body = _error_body(response)
                    raise fail(cls, f"HTTP {status}{_reason(body)}", status=status, body=body)
                if attempt == max_attempts:
                    raise fail(RemoteUnreachable, f"HTTP {status}", status=status, body=_error_body(response))
                problem = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            delay = backoff_delay(self.policy, attempt - 1, retry_after)
            logger.info(
                "retrying %s %s after %s in %.2fs (attempt %d of %d, correlation %s)",
                method,
                url,
                problem,
                delay,
                attempt,
                max_attempts,
                correlation_id,
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    @staticmethod
    def _json_object(response: requests.Response, fail: Callable[..., RemoteError]) -> dict:
        if response.status_code == 204:
            return {}
        try:
            data = json.loads(response.content)
        except ValueError:
            data, problem = None, "the body is not JSON"
        else:
            problem = "the body is not a JSON object"
        if not isinstance(data, dict):
            raise fail(RemoteBadResponse, problem, status=response.status_code, body=_error_body(response))
        return data


# --- webhooks ------------------------------------------------------------------------------------------------

# A webhook receiver should answer at once and do its work later; one that does not is retried later from the
# delivery row, not waited for.
WEBHOOK_TIMEOUTS = (3.0, 5.0)  # connect, read
WEBHOOK_POOL_MAXSIZE = 16  # the fan-out's threads may all post to one host


def post_webhook(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    correlation_id: str | None = None,
    timeouts: tuple[float, float] = WEBHOOK_TIMEOUTS,
    guard: UrlGuard | None = None,
    signer: NodeKey | None = None,
) -> int:
    """POST `body` (already serialized: it may be signed) to a webhook `url`, once: no retries here, the
    caller's delivery row is the retry. Returns the 2xx status (any body). RemoteRejected for a 4xx other than
    408/429 (`.status` tells 410 Gone from the rest) and for a URL `guard` refuses (remotes.urlguard: a `url`
    a remote handed us), RemoteUnreachable for what may pass (connection errors, timeouts, 408, 429, 5xx),
    RemoteBadResponse for anything else (1xx, 3xx: redirects are not followed). `signer`: this node's key, to
    sign the POST (RFC 9421, remotes.signatures)."""
    correlation_id = correlation_id or uuid.uuid4().hex
    parts = urlsplit(url)

    def fail(cls: type[RemoteError], message: str, **extra: Any) -> RemoteError:
        return cls(f"POST {url}: {message}", url=url, correlation_id=correlation_id, attempts=1, **extra)

    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail(RemoteRejected, "not an http(s) URL with a host")
    try:
        public_only = guard is not None and not guard.check(url)
    except UrlRefused as exc:
        raise fail(RemoteRejected, f"refused: {exc}") from None
    sent_headers = {"User-Agent": user_agent(), "X-Correlation-ID": correlation_id, **headers}
    session = _session_for(
        f"{parts.scheme}://{parts.netloc}", pool_maxsize=WEBHOOK_POOL_MAXSIZE, public_only=public_only
    )
    try:
        prepared = session.prepare_request(requests.Request("POST", url, data=body, headers=sent_headers))
        if signer is not None:
            sign_request(prepared, key_id=signer.key_id, private_key=signer.private_key, body=body)
        response = session.send(prepared, timeout=timeouts, allow_redirects=False)
    except UrlRefused as exc:
        raise fail(RemoteRejected, f"refused: {exc}") from None
    except _TRANSIENT_EXCEPTIONS as exc:
        raise fail(RemoteUnreachable, f"{type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:
        raise fail(RemoteError, f"{type(exc).__name__}: {exc}") from exc
    status = response.status_code
    if 200 <= status <= 299:
        return status
    seen = _error_body(response)
    if _is_transient(status):
        raise fail(RemoteUnreachable, f"HTTP {status}{_reason(seen)}", status=status, body=seen)
    cls = RemoteRejected if 400 <= status <= 499 else RemoteBadResponse
    raise fail(cls, f"HTTP {status}{_reason(seen)}", status=status, body=seen)
