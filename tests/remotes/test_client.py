"""`remotes.client` against a real HTTP server on 127.0.0.1 that follows a script, with a sleep that only records."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from remotes import client as client_module
from remotes.client import (
    HttpPolicy,
    RemoteBadResponse,
    RemoteClient,
    RemoteError,
    RemoteRejected,
    RemoteUnreachable,
    close_sessions,
    parse_retry_after,
)


@dataclass
class Step:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})  # dict/list are sent as JSON, str/bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, steps: list[Step]) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.steps = list(steps)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # wakes slow handlers at teardown

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1"

    def next_step(self, seen: Seen) -> Step:
        with self.lock:
            self.seen.append(seen)
            return self.steps.pop(0) if self.steps else Step(599, "the script is exhausted")

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out and hung up is expected here


class ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible
    server: ScriptedServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format, *args) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        step = self.server.next_step(
            Seen(self.command, self.path, dict(self.headers.items()), body, self.client_address[1])
        )
        if step.delay:
            self.server.release.wait(step.delay)
        payload = step.body
        if isinstance(payload, dict | list):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode()
        self.send_response(step.status)
        for name, value in step.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(autouse=True)
def _fresh_sessions():
    close_sessions()
    yield
    close_sessions()


@pytest.fixture
def serve():
    servers: list[ScriptedServer] = []

    def start(*steps: Step | int) -> ScriptedServer:
        server = ScriptedServer([Step(s) if isinstance(s, int) else s for s in steps])
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps):
    def make(base_url: str, **policy: Any) -> RemoteClient:
        token = policy.pop("token", None)
        return RemoteClient(base_url, token=token, policy=HttpPolicy(**policy), sleep=sleeps.append)

    return make


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_it_returns_the_json_object_and_sends_the_protocol_headers(serve, make_client):
    server = serve(Step(200, {"node": "a"}, {"X-Node": "a"}))

    response = make_client(server.base_url, token="s3cret").get("/federation/info", correlation_id="corr-1")

    assert (response.status, response.data, response.attempts) == (200, {"node": "a"}, 1)
    assert response.correlation_id == "corr-1"
    assert response.headers["x-node"] == "a"
    assert response.elapsed_ms > 0
    [seen] = server.seen
    assert (seen.method, seen.path) == ("GET", "/api/v1/federation/info")
    assert seen.headers["Authorization"] == "Bearer s3cret"
    assert seen.headers["X-Correlation-ID"] == "corr-1"
    assert seen.headers["User-Agent"].startswith("sudocode-federation/")
    assert seen.headers["Accept"] == "application/json"


def test_it_sends_no_authorization_without_a_token_and_generates_a_correlation_id(serve, make_client):
    server = serve(200)

    response = make_client(server.base_url).get("/federation/info", params={"q": "a b"})

    [seen] = server.seen
    assert "Authorization" not in seen.headers
    assert seen.path == "/api/v1/federation/info?q=a+b"
    assert seen.headers["X-Correlation-ID"] == response.correlation_id
    assert len(response.correlation_id) == 32 and int(response.correlation_id, 16) >= 0


def test_post_sends_a_json_body(serve, make_client):
    server = serve(Step(201, {"id": "req-1"}))

    response = make_client(server.base_url, token="t").post("/requests", {"title": "héllo", "n": 1})

    assert (response.status, response.data) == (201, {"id": "req-1"})
    [seen] = server.seen
    assert seen.method == "POST"
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {"title": "héllo", "n": 1}


@pytest.mark.parametrize(
    ("base_url", "path", "expected"),
    [
        ("http://h/api/v1", "/federation/info", "http://h/api/v1/federation/info"),
        ("http://h/api/v1/", "federation/info", "http://h/api/v1/federation/info"),
        ("http://h/api/v1/", "//federation/info", "http://h/api/v1/federation/info"),
        ("https://h:8443", "/x", "https://h:8443/x"),
        ("http://h/api/v1", "", "http://h/api/v1"),
    ],
)
def test_it_joins_the_path_to_the_base_url_whatever_the_slashes(base_url, path, expected):
    assert RemoteClient(base_url).url(path) == expected


@pytest.mark.parametrize("base_url", ["ftp://h/api", "file:///etc/passwd", "127.0.0.1:8000/api", "http://", "/api/v1"])
def test_it_refuses_a_base_url_that_is_not_http(base_url):
    with pytest.raises(ValueError):
        RemoteClient(base_url)


def test_it_refuses_a_token_that_would_break_the_header():
    with pytest.raises(ValueError):
        RemoteClient("http://h", token="abc\r\nX-Evil: 1")


def test_it_retries_a_5xx_with_the_same_correlation_id_until_it_succeeds(serve, make_client, sleeps):
    server = serve(503, 502, 200)

    response = make_client(server.base_url).get("/x", correlation_id="c-42")

    assert (response.status, response.attempts) == (200, 3)
    assert len(server.seen) == 3 and len(sleeps) == 2
    assert {seen.headers["X-Correlation-ID"] for seen in server.seen} == {"c-42"}


def test_it_gives_up_after_the_last_retry(serve, make_client, sleeps):
    server = serve(*[Step(503, {"detail": "busy"})] * 6)

    with pytest.raises(RemoteUnreachable) as caught:
        make_client(server.base_url, retries=3).get("/x", correlation_id="c-1")

    assert len(server.seen) == 4 and len(sleeps) == 3
    error = caught.value
    assert (error.status, error.attempts, error.correlation_id) == (503, 4, "c-1")
    assert error.url == server.base_url + "/x"
    assert error.body == {"detail": "busy"}


def test_it_makes_one_attempt_when_retries_is_zero(serve, make_client, sleeps):
    server = serve(503, 200)

    with pytest.raises(RemoteUnreachable):
        make_client(server.base_url, retries=0).get("/x")

    assert len(server.seen) == 1 and sleeps == []


@pytest.mark.parametrize("status", [408, 429, 500, 504])
def test_408_429_and_5xx_are_transient(serve, make_client, status):
    server = serve(status, 200)

    assert make_client(server.base_url).get("/x").attempts == 2
    assert len(server.seen) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_4xx_are_rejected_after_one_request(serve, make_client, sleeps, status):
    server = serve(Step(status, {"detail": "no", "code": status}), 200)

    with pytest.raises(RemoteRejected) as caught:
        make_client(server.base_url).post("/requests", {"a": 1})

    assert len(server.seen) == 1 and sleeps == []
    assert (caught.value.status, caught.value.attempts) == (status, 1)
    assert caught.value.body == {"detail": "no", "code": status}


def test_a_rejected_text_body_is_truncated_to_2_kb(serve, make_client):
    server = serve(Step(400, "x" * 5000))

    with pytest.raises(RemoteRejected) as caught:
        make_client(server.base_url).get("/x")

    assert caught.value.body == "x" * 2048


def test_retry_after_in_seconds_is_honoured(serve, make_client, sleeps):
    server = serve(Step(429, headers={"Retry-After": "2"}), 200)

    assert make_client(server.base_url).get("/x").attempts == 2
    assert sleeps == [2.0]


def test_retry_after_zero_leaves_the_jittered_backoff(serve, make_client, sleeps):
    server = serve(Step(429, headers={"Retry-After": "0"}), 200)

    assert make_client(server.base_url, backoff_base=0.2).get("/x").attempts == 2
    assert 0 <= sleeps[0] <= 0.2


def test_retry_after_as_an_http_date_is_honoured(serve, make_client, sleeps):
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    server = serve(Step(503, headers={"Retry-After": later}), 200)

    assert make_client(server.base_url).get("/x").attempts == 2
    assert 3.5 <= sleeps[0] <= 5.0


@pytest.mark.parametrize(
    "retry_after",
    ["3600", email.utils.format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)],
    ids=["seconds", "http-date"],  # stable ids: pytest-xdist workers must collect the same tests
)
def test_retry_after_is_capped(serve, make_client, sleeps, retry_after):
    server = serve(Step(503, headers={"Retry-After": retry_after}), 200)

    make_client(server.base_url, retry_after_cap=1.5).get("/x")

    assert sleeps == [1.5]


def test_an_unreadable_retry_after_is_ignored(serve, make_client, sleeps):
    server = serve(Step(503, headers={"Retry-After": "soon"}), 200)

    make_client(server.base_url, backoff_base=0.1).get("/x")

    assert 0 <= sleeps[0] <= 0.1


def test_parse_retry_after():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("-3", now=now) == 0.0
    for unreadable in (None, "", "soon", "nan"):
        assert parse_retry_after(unreadable, now=now) is None


def test_backoff_delays_are_jittered_within_the_capped_exponential_bound(serve, make_client, sleeps):
    server = serve(*[503] * 6)

    with pytest.raises(RemoteUnreachable):
        make_client(server.base_url, retries=5, backoff_base=0.2, backoff_cap=1.0).get("/x")

    assert len(sleeps) == 5
    for n, delay in enumerate(sleeps):
        assert 0 <= delay <= min(1.0, 0.2 * 2**n)


def test_backoff_draws_uniformly_from_zero_to_the_capped_bound(serve, make_client, sleeps, monkeypatch):
    bounds: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    monkeypatch.setattr(client_module.random, "uniform", uniform)
    server = serve(*[503] * 6)

    with pytest.raises(RemoteUnreachable):
        make_client(server.base_url, retries=5, backoff_base=0.2, backoff_cap=1.0).get("/x")

    assert bounds == [(0, 0.2), (0, 0.4), (0, 0.8), (0, 1.0), (0, 1.0)]
    assert sleeps == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_connection_refused_is_retried_then_unreachable(make_client, sleeps):
    with pytest.raises(RemoteUnreachable) as caught:
        make_client(f"http://127.0.0.1:{closed_port()}/api/v1", retries=2).get("/x")

    assert (caught.value.attempts, caught.value.status) == (3, None)
    assert len(sleeps) == 2
    assert "ConnectionError" in str(caught.value)


def test_a_read_timeout_raises_unreachable_promptly(serve, make_client):
    server = serve(Step(delay=1.0))

    started = time.monotonic()
    with pytest.raises(RemoteUnreachable) as caught:
        make_client(server.base_url, retries=0).get("/slow", timeout=0.3)

    assert time.monotonic() - started < 0.8
    assert "Timeout" in str(caught.value)


def test_a_read_timeout_is_retried(serve, make_client, sleeps):
    server = serve(Step(delay=1.0), Step(200, {"late": False}))

    response = make_client(server.base_url, read_timeout=0.3).get("/slow")

    assert (response.data, response.attempts) == ({"late": False}, 2)
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (Step(200, "<html>hi</html>"), "not JSON"),
        (Step(200, [1, 2]), "not a JSON object"),
        (Step(200, ""), "not JSON"),
        (Step(302, "", {"Location": "http://169.254.169.254/"}), "HTTP 302"),
    ],
)
def test_a_response_outside_the_protocol_is_a_bad_response_and_not_retried(serve, make_client, sleeps, step, message):
    server = serve(step, 200)

    with pytest.raises(RemoteBadResponse) as caught:
        make_client(server.base_url).get("/x")

    assert message in str(caught.value)
    assert (caught.value.status, caught.value.attempts) == (step.status, 1)
    assert len(server.seen) == 1 and sleeps == []


def test_204_is_an_empty_object(serve, make_client):
    server = serve(Step(204, ""))

    assert make_client(server.base_url).post("/x", {}).data == {}


def test_every_error_is_a_remote_error_and_can_be_raised_by_callers_before_any_call():
    assert all(issubclass(cls, RemoteError) for cls in (RemoteUnreachable, RemoteRejected, RemoteBadResponse))
    error = RemoteRejected("no endpoint", url="https://github.com/acme/x", status=0, body=None)
    assert (error.correlation_id, error.attempts, error.status) == ("", 0, 0)


def test_one_session_is_reused_per_base_url(serve, make_client):
    server = serve(200, 200, 200)
    first, second = make_client(server.base_url), make_client(server.base_url + "/")

    first.get("/a")
    second.get("/b")

    assert client_module._session_for(server.base_url) is client_module._sessions[server.base_url]
    assert list(client_module._sessions) == [server.base_url]
    assert server.seen[0].client_port == server.seen[1].client_port  # one pooled keep-alive connection
    assert client_module._session_for("http://other:1/api") is not client_module._session_for(server.base_url)
    before = client_module._session_for(server.base_url)
    close_sessions()
    assert client_module._session_for(server.base_url) is not before


def test_concurrent_calls_share_the_session(serve, make_client):
    server = serve(*[200] * 40)
    remote = make_client(server.base_url)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda i: remote.get(f"/n/{i}").status, range(40)))
        sessions = set(pool.map(lambda _: id(client_module._session_for(server.base_url)), range(40)))

    assert statuses == [200] * 40
    assert len(sessions) == 1
    assert len({seen.client_port for seen in server.seen}) <= client_module.POOL_MAXSIZE


def test_each_retry_is_logged_at_info(serve, make_client, caplog):
    server = serve(503, Step(429, headers={"Retry-After": "1"}), 200)

    with caplog.at_level(logging.INFO, logger="remotes.client"):
        make_client(server.base_url).get("/x")

    retries = [r for r in caplog.records if r.name == "remotes.client" and r.levelno == logging.INFO]
    assert len(retries) == 2
    assert server.base_url + "/x" in retries[0].getMessage() and "HTTP 503" in retries[0].getMessage()
    assert "HTTP 429" in retries[1].getMessage() and "in 1.00s" in retries[1].getMessage()
