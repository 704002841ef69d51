"""The WebSocket endpoint /api/v1/ws: subscribe, hear matching events in order as they commit, resume with
`since`; authenticated like the REST API. In-process tests (channels' communicator) check the protocol; tests
with a real daphne node check that changes committed by another process (the CLI) reach the socket."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from events.models import Event, Scope
from federation_site.asgi import application
from federation_site.config import default_config, write_config
from remotes import services as remotes
from requests_app.models import CrossRepoRequest, Direction
from requests_app.states import APPROVED, request_event, transition
from tests.nodes import node_cookie
from tracker import services as tracker

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 5


@pytest.fixture
def configured(node_repo):
    write_config(
        node_repo / ".sudocode" / "federation.config.json",
        default_config(url="github.com/org/api-service", display_name="API service"),
    )
    return node_repo


@pytest.fixture
def keys(configured) -> dict[str, str]:
    """An API key per trust level, as `remote add` issues them."""
    out = {}
    for trust in ("trusted", "verified", "untrusted"):
        _, out[trust] = remotes.remote_add(
            url=f"github.com/org/{trust}-client", actor="test", trust_level=trust, discover=False
        )
    return out


@pytest.fixture(autouse=True)
def fresh_layer():
    # The in-memory layer outlives a test's event loop; start each test with empty channels and groups.
    layer = get_channel_layer()
    asyncio.run(layer.flush())
    yield
    asyncio.run(layer.flush())
    # The consumers' database work ran in asgiref's one shared thread: close its connection, or PostgreSQL
    # cannot drop the test database at the end.
    asyncio.run(database_sync_to_async(connections.close_all)())


def socket(path: str = "/api/v1/ws", *, key: str | None = None, headers: list | None = None):
    headers = list(headers or [])
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def connected(communicator: WebsocketCommunicator) -> WebsocketCommunicator:
    ok, _ = await communicator.connect(timeout=TIMEOUT)
    assert ok
    return communicator


async def subscribe(communicator, **message) -> dict:
    await communicator.send_json_to({"type": "subscribe", **message})
    answer = await communicator.receive_json_from(timeout=TIMEOUT)
    assert answer["type"] == "subscribed", answer
    return answer


async def events(communicator, n: int) -> list[dict]:
    out = [await communicator.receive_json_from(timeout=TIMEOUT) for _ in range(n)]
    assert all(m["type"] == "event" for m in out), out
    return out


async def silent(communicator, seconds: float = 0.3) -> bool:
    return await communicator.receive_nothing(timeout=seconds)


issue_create = database_sync_to_async(tracker.issue_create)
issue_update = database_sync_to_async(tracker.issue_update)
issue_close = database_sync_to_async(tracker.issue_close)

WATCH_ISSUES = {"entity_type": "issue"}


# --- subscribing and hearing --------------------------------------------------------------------------------


def test_a_remote_with_a_key_hears_each_change_as_it_commits(keys):
    async def scenario():
        ws = await connected(socket(key=keys["verified"]))
        answer = await subscribe(ws, watch=WATCH_ISSUES, subscription_id="mine")
        assert answer == {"type": "subscribed", "subscription_id": "mine", "head_seq": 0}
        issue = await issue_create(title="Add user profile endpoint", actor="alice", tags=["api"])
        await issue_close(issue=issue.sudocode_id, actor="bob")
        created, closed = await events(ws, 2)
        assert created["subscription_id"] == closed["subscription_id"] == "mine"
        assert created["from"] == "github.com/org/api-service"
        assert (created["event"]["type"], closed["event"]["type"]) == ("issue_created", "issue_updated")
        assert closed["event"]["seq"] == created["event"]["seq"] + 1
        assert closed["event"]["changes"]["status"] == {"from": "open", "to": "closed"}
        assert closed["event"]["entity"]["id"] == issue.sudocode_id
        assert closed["event"]["entity"]["canonical_ref"] == f"org/api-service#{issue.sudocode_id}"
        assert await silent(ws)
        await ws.disconnect()

    asyncio.run(scenario())


def test_the_key_may_come_in_the_url_for_clients_that_cannot_set_headers(keys):
    async def scenario():
        ws = await connected(socket(f"/api/v1/ws?token={keys['trusted']}"))
        await subscribe(ws, watch=WATCH_ISSUES)
        await issue_create(title="Seen by a browser agent", actor="alice")
        [message] = await events(ws, 1)
        assert message["to"] == "github.com/org/trusted-client"
        await ws.disconnect()

    asyncio.run(scenario())


def test_a_reader_hears_only_the_fields_its_trust_allows(keys):
    async def scenario():
        verified = await connected(socket(key=keys["verified"]))
        trusted = await connected(socket(key=keys["trusted"]))
        await subscribe(verified, watch=WATCH_ISSUES)
        await subscribe(trusted, watch=WATCH_ISSUES)
        issue = await issue_create(title="Secret plans", actor="alice", content="v1")
        await issue_update(issue=issue.sudocode_id, actor="alice", content="the plan", status="in_progress")
        _, seen_by_verified = await events(verified, 2)
        _, seen_by_trusted = await events(trusted, 2)
        assert "status" in seen_by_verified["event"]["changes"]
        assert "content" not in seen_by_verified["event"]["changes"]
        assert {"status", "content"} <= set(seen_by_trusted["event"]["changes"])
        await verified.disconnect()
        await trusted.disconnect()

    asyncio.run(scenario())


@pytest.mark.parametrize("who", ["anonymous", "untrusted", "unknown key"])
def test_a_caller_that_may_not_subscribe_is_told_why_and_closed_with_4403(keys, who):
    key = {"anonymous": None, "untrusted": keys["untrusted"], "unknown key": "sfk_not-a-key"}[who]

    async def scenario():
        ws = await connected(socket(key=key))
        error = await ws.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["error"] == "forbidden"
        assert "may not subscribe" in error["errors"][0]["message"]
        closed = await ws.receive_output(timeout=TIMEOUT)
        assert closed == {"type": "websocket.close", "code": 4403}

    asyncio.run(scenario())


def test_a_remote_demoted_while_connected_is_judged_at_its_new_level_on_its_next_message(keys):
    from remotes.models import RemoteRepo

    demote = database_sync_to_async(
        lambda: remotes.remote_update(
            remote=RemoteRepo.objects.get(url="github.com/org/verified-client"), trust_level="untrusted"
        )
    )

    async def scenario():
        ws = await connected(socket(key=keys["verified"]))
        await subscribe(ws, watch=WATCH_ISSUES)
        await demote()
        await ws.send_json_to({"type": "ping"})
        error = await ws.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["error"] == "forbidden"
        assert "may not subscribe" in error["detail"]
        assert await ws.receive_output(timeout=TIMEOUT) == {"type": "websocket.close", "code": 4403}

    asyncio.run(scenario())


def test_filters_decide_which_changes_a_watch_hears(keys):
    async def scenario():
        ws = await connected(socket(key=keys["trusted"]))
        await subscribe(ws, watch={"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}})
        await issue_create(title="Unrelated", actor="alice", tags=["docs"])
        watched = await issue_create(title="Blocks the frontend", actor="alice", tags=["frontend-blocking", "api"])
        await database_sync_to_async(tracker.spec_create)(title="A spec", actor="alice")
        [message] = await events(ws, 1)
        assert message["event"]["entity"]["id"] == watched.sudocode_id
        assert await silent(ws)
        await ws.disconnect()

    asyncio.run(scenario())


def test_a_watched_entity_that_stops_matching_is_heard_once_more(keys):
    async def scenario():
        issue = await issue_create(title="Open one", actor="alice")
        ws = await connected(socket(key=keys["trusted"]))
        await subscribe(ws, watch={"entity_type": "issue", "filters": {"status": "open"}})
        await issue_close(issue=issue.sudocode_id, actor="bob")
        [message] = await events(ws, 1)
        assert message["event"]["changes"]["status"] == {"from": "open", "to": "closed"}
        await issue_update(issue=issue.sudocode_id, actor="bob", title="Closed and renamed")
        assert await silent(ws)
        await ws.disconnect()

    asyncio.run(scenario())


# --- resuming -------------------------------------------------------------------------------------------------


def test_a_client_that_reconnects_with_since_gets_exactly_what_it_missed(keys):
    async def scenario():
        ws = await connected(socket(key=keys["trusted"]))
        await subscribe(ws, watch=WATCH_ISSUES, subscription_id="resume")
        first = await issue_create(title="Heard live", actor="alice")
        [heard] = await events(ws, 1)
        last_seq = heard["event"]["seq"]
        await ws.disconnect()

        await issue_update(issue=first.sudocode_id, actor="alice", status="in_progress")
        missed = await issue_create(title="Made while away", actor="alice")

        again = await connected(socket(key=keys["trusted"]))
        await subscribe(again, watch=WATCH_ISSUES, subscription_id="resume", since=last_seq)
        replayed = await events(again, 2)
        assert [m["event"]["seq"] for m in replayed] == [last_seq + 1, last_seq + 2]
        assert replayed[1]["event"]["entity"]["id"] == missed.sudocode_id
        await issue_close(issue=missed.sudocode_id, actor="alice")
        [live] = await events(again, 1)
        assert live["event"]["seq"] == last_seq + 3
        assert await silent(again)
        await again.disconnect()

    asyncio.run(scenario())


def test_since_ahead_of_the_outbox_is_an_error_naming_it(keys):
    async def scenario():
        ws = await connected(socket(key=keys["trusted"]))
        await ws.send_json_to({"type": "subscribe", "watch": WATCH_ISSUES, "since": 99})
        error = await ws.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["errors"][0]["path"] == "since"
        await ws.disconnect()

    asyncio.run(scenario())


# --- the protocol ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, path",
    [
        ({"type": "subscribe", "watch": {"entity_type": "bug"}}, "watch.entity_type"),
        (
            {"type": "subscribe", "watch": {"entity_type": "issue", "filters": {"status": "opn"}}},
            "watch.filters.status",
        ),
        ({"type": "subscribe", "watch": {"entity_type": "issue", "filterz": {}}}, "watch.filterz"),
        ({"type": "subscribe", "watch": WATCH_ISSUES, "since": "5"}, "since"),
        ({"type": "subscribe", "watch": WATCH_ISSUES, "callback": {"url": "http://x.dev/h"}}, "callback"),
        ({"type": "subscribe", "watch": {"entity_type": "request"}}, "watch.entity_type"),
        ({"type": "unsubscribe", "subscription_id": "nope"}, "subscription_id"),
        ({"type": "subscribe"}, "watch"),
        ({"type": "dance"}, "type"),
        ([1, 2], ""),
    ],
)
def test_an_invalid_message_is_an_error_naming_the_path_and_the_socket_stays_open(keys, message, path):
    async def scenario():
        ws = await connected(socket(key=keys["verified"]))
        await ws.send_json_to(message)
        error = await ws.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and error["errors"][0]["path"] == path, error
        await subscribe(ws, watch=WATCH_ISSUES)
        await ws.disconnect()

    asyncio.run(scenario())


def test_text_that_is_not_json_is_an_error_too(keys):
    async def scenario():
        ws = await connected(socket(key=keys["verified"]))
        await ws.send_to(text_data="{not json")
        error = await ws.receive_json_from(timeout=TIMEOUT)
        assert error["type"] == "error" and "invalid JSON" in error["errors"][0]["message"]
        await ws.send_json_to({"type": "ping"})
        assert (await ws.receive_json_from(timeout=TIMEOUT))["type"] == "pong"
        await ws.disconnect()

    asyncio.run(scenario())


def test_several_watches_on_one_socket_each_hear_their_own_and_one_can_be_removed(keys):
    async def scenario():
        ws = await connected(socket(key=keys["trusted"]))
        await subscribe(ws, watch=WATCH_ISSUES, subscription_id="issues")
        await subscribe(ws, watch={"entity_type": "spec"}, subscription_id="specs")
        await issue_create(title="An issue", actor="alice")
        await database_sync_to_async(tracker.spec_create)(title="A spec", actor="alice")
        first, second = await events(ws, 2)
        assert (first["subscription_id"], second["subscription_id"]) == ("issues", "specs")
        assert first["event"]["seq"] < second["event"]["seq"]

        await ws.send_json_to({"type": "unsubscribe", "subscription_id": "issues"})
        assert await ws.receive_json_from(timeout=TIMEOUT) == {"type": "unsubscribed", "subscription_id": "issues"}
        await issue_create(title="Nobody listens", actor="alice")
        assert await silent(ws)
        await ws.disconnect()

    asyncio.run(scenario())


def test_star_watches_issues_and_specs(keys):
    async def scenario():
        ws = await connected(socket(key=keys["trusted"]))
        await subscribe(ws, watch={"entity_type": "*"})
        await issue_create(title="An issue", actor="alice")
        await database_sync_to_async(tracker.spec_create)(title="A spec", actor="alice")
        kinds = [m["event"]["entity"]["kind"] for m in await events(ws, 2)]
        assert kinds == ["issue", "spec"]
        await ws.disconnect()

    asyncio.run(scenario())


def test_a_commit_that_woke_nobody_is_found_by_the_watcher(keys, settings, monkeypatch):
    """The CLI commits with no channel layer: the web process's watcher polls the outbox and finds it."""
    settings.WEBSOCKET_POLL_SECONDS = 0.05
    monkeypatch.setattr("events.publish._wake_websockets", lambda seq: None)

    async def scenario():
        ws = await connected(socket(key=keys["trusted"]))
        await subscribe(ws, watch=WATCH_ISSUES)
        await issue_create(title="Made by the CLI", actor="alice")
        [message] = await events(ws, 1)
        assert message["event"]["type"] == "issue_created"
        await ws.disconnect()

    asyncio.run(scenario())


def test_without_the_watcher_only_the_channel_layer_wakes_a_socket(keys, settings, monkeypatch):
    settings.WEBSOCKET_POLL_SECONDS = 0
    monkeypatch.setattr("events.publish._wake_websockets", lambda seq: None)

    async def scenario():
        ws = await connected(socket(key=keys["trusted"]))
        await subscribe(ws, watch=WATCH_ISSUES)
        await issue_create(title="Nobody is told", actor="alice")
        assert await silent(ws, 0.5)
        await ws.disconnect()

    asyncio.run(scenario())


# --- staff and the local request events ------------------------------------------------------------------------


@pytest.fixture
def staff_cookie(configured) -> bytes:
    User.objects.create_user("ops", password="a long enough password", is_staff=True)
    browser = Client()
    assert browser.login(username="ops", password="a long enough password")
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def _incoming_request(request_id: str) -> CrossRepoRequest:
    from django.db import transaction
    from django.utils import timezone

    now = timezone.now()
    with transaction.atomic():
        request = CrossRepoRequest.objects.create(
            request_id=request_id,
            direction=Direction.INCOMING,
            from_repo="github.com/org/frontend",
            to_repo="github.com/org/api-service",
            request_type="create_issue",
            payload={"data": {"title": "x"}},
            created_at=now,
            updated_at=now,
        )
        request_event(request, type="request_created", status_from=None)
    return request


def test_a_staff_session_from_our_own_pages_hears_request_events_and_remotes_never_do(keys, staff_cookie):
    staff_headers = [(b"cookie", staff_cookie), (b"origin", b"http://testserver"), (b"host", b"testserver")]

    async def scenario():
        staff = await connected(socket(headers=staff_headers))
        remote = await connected(socket(key=keys["trusted"]))
        await subscribe(staff, watch={"entity_type": "request"})
        await subscribe(remote, watch={"entity_type": "*"})
        request = await database_sync_to_async(_incoming_request)("req-live-1")
        await database_sync_to_async(transition)(request, APPROVED, actor="ops")
        created, approved = await events(staff, 2)
        assert (created["event"]["type"], approved["event"]["type"]) == ("request_created", "request_updated")
        assert approved["event"]["entity"] == {
            "id": "req-live-1",
            "uuid": str(request.pk),
            "kind": "request",
            "status": "approved",
        }
        assert approved["event"]["changes"] == {"status": {"from": "pending", "to": "approved"}}
        assert "from" in created and "to" not in created
        assert await silent(remote)
        await staff.disconnect()
        await remote.disconnect()

    asyncio.run(scenario())
    assert Event.objects.filter(scope=Scope.LOCAL).count() == 2


def test_a_session_cookie_sent_from_another_site_counts_for_nothing(staff_cookie):
    headers = [(b"cookie", staff_cookie), (b"origin", b"https://evil.example"), (b"host", b"testserver")]

    async def scenario():
        ws = await connected(socket(headers=headers))
        assert (await ws.receive_json_from(timeout=TIMEOUT))["error"] == "forbidden"
        assert (await ws.receive_output(timeout=TIMEOUT))["code"] == 4403

    asyncio.run(scenario())


def test_a_request_event_is_written_with_its_change_or_not_at_all(configured):
    request = _incoming_request("req-live-2")
    CrossRepoRequest.objects.filter(pk=request.pk).update(status=APPROVED)  # another process moved it first
    assert transition(request, "rejected", actor="ops") is False
    assert [e.type for e in Event.objects.filter(scope=Scope.LOCAL)] == ["request_created"]


# --- live pages ------------------------------------------------------------------------------------------------


def test_the_issue_page_and_the_queue_carry_the_live_script_and_regions_for_staff(configured, staff_cookie):
    issue = tracker.issue_create(title="Live one", actor="alice")
    blocker = tracker.issue_create(title="Its blocker", actor="alice", relationships=[("blocks", issue.sudocode_id)])
    browser = Client()
    browser.login(username="ops", password="a long enough password")

    page = browser.get(f"/issues/{issue.sudocode_id}").content.decode()
    assert 'data-live="entity"' in page and "/static/js/live.js" in page
    config = _live_config(page)
    assert config["url"] == "/api/v1/ws" and config["since"] == Event.objects.count()
    assert config["watch"]["entity_type"] == "*"
    assert set(config["watch"]["filters"]["ids"]) == {issue.sudocode_id, blocker.sudocode_id}

    queue = browser.get("/approvals/").content.decode()
    assert 'data-live="queue"' in queue and "/static/js/live.js" in queue
    assert _live_config(queue)["watch"] == {"entity_type": "request"}

    assert Client().get(f"/issues/{issue.sudocode_id}").status_code == 302  # to the login: web.public_read is off
    config_path = configured / ".sudocode" / "federation.config.json"
    data = json.loads(config_path.read_text())
    write_config(config_path, {**data, "web": {"public_read": True}})
    anonymous = Client().get(f"/issues/{issue.sudocode_id}").content.decode()
    assert 'data-live="entity"' in anonymous and "live.js" not in anonymous  # only staff may open the socket


def test_the_live_script_is_served(configured):
    response = Client().get("/static/js/live.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"data-live" in body and b"innerHTML" not in body


def _live_config(page: str) -> dict:
    start = page.index('<script id="live-config" type="application/json">') + len(
        '<script id="live-config" type="application/json">'
    )
    return json.loads(page[start : page.index("</script>", start)])


# --- a real node ------------------------------------------------------------------------------------------------


@pytest.fixture
def api_node(tmp_path):
    from tests.nodes import Node

    node = Node(tmp_path, "api-service", worker=False).start()
    yield node
    node.stop()


def _remote_key(node, name: str, trust: str) -> str:
    added = node.cli("remote", "add", f"github.com/org/{name}", "--trust", trust, "--no-discover")
    assert added.code == 0, added.err
    return next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))


def _ws_url(node) -> str:
    return f"ws://127.0.0.1:{node.port}/api/v1/ws"


def _receive(ws, *, timeout: float = 10) -> dict:
    return json.loads(ws.recv(timeout=timeout))


@pytest.mark.slow
def test_a_change_made_by_the_cli_reaches_a_socket_on_the_running_node_and_resumes_after_a_reconnect(api_node):
    from websockets.sync.client import connect

    key = _remote_key(api_node, "frontend", "verified")
    created = api_node.cli_json("issue", "create", "Add user profile endpoint", "--tags", "api")
    headers = {"Authorization": f"Bearer {key}"}
    with connect(_ws_url(api_node), additional_headers=headers) as ws:
        ws.send(json.dumps({"type": "subscribe", "watch": WATCH_ISSUES, "subscription_id": "fe-1"}))
        subscribed = _receive(ws)
        assert subscribed["type"] == "subscribed" and subscribed["head_seq"] >= 1
        started = time.monotonic()
        assert api_node.cli("issue", "close", created["id"]).code == 0  # another process: the CLI
        message = _receive(ws)
        assert time.monotonic() - started < 10
        event = message["event"]
        assert (message["type"], message["subscription_id"]) == ("event", "fe-1")
        assert event["type"] == "issue_updated" and event["seq"] == subscribed["head_seq"] + 1
        assert event["changes"]["status"] == {"from": "open", "to": "closed"}
        assert event["entity"]["canonical_ref"] == f"org/api-service#{created['id']}"
        last_seq = event["seq"]

    # While the client is away: two changes. Back with `since`: exactly those, then live ones.
    assert api_node.cli("issue", "update", created["id"], "--status", "open").code == 0
    other = api_node.cli_json("issue", "create", "Made while away")
    with connect(_ws_url(api_node), additional_headers=headers) as ws:
        ws.send(json.dumps({"type": "subscribe", "watch": WATCH_ISSUES, "subscription_id": "fe-1", "since": last_seq}))
        assert _receive(ws)["type"] == "subscribed"
        replayed = [_receive(ws)["event"] for _ in range(2)]
        assert [e["seq"] for e in replayed] == [last_seq + 1, last_seq + 2]
        assert replayed[1]["entity"]["id"] == other["id"] and replayed[0]["changes"]["status"]["to"] == "open"
        assert api_node.cli("issue", "close", other["id"]).code == 0
        assert _receive(ws)["event"]["seq"] == last_seq + 3
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1)  # nothing twice

        ws.send(json.dumps({"type": "subscribe", "watch": {"entity_type": "issue", "filters": {"status": "opn"}}}))
        error = _receive(ws)
        assert error["type"] == "error" and error["errors"][0]["path"] == "watch.filters.status"


@pytest.mark.slow
def test_the_running_node_closes_a_socket_that_may_not_subscribe_with_4403(api_node):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    untrusted = _remote_key(api_node, "stranger", "untrusted")
    for headers in ({}, {"Authorization": f"Bearer {untrusted}"}):
        with connect(_ws_url(api_node), additional_headers=headers) as ws:
            error = _receive(ws)
            assert error["type"] == "error" and error["error"] == "forbidden"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd.code == 4403


@pytest.mark.slow
def test_a_staff_session_on_the_running_node_hears_a_request_arrive_for_the_live_queue(api_node):
    from websockets.sync.client import connect

    api_node.create_staff("ops", "a long enough password")
    browser = requests.Session()
    browser.get(f"{api_node.base}/admin/login/", timeout=10)
    logged_in = browser.post(
        f"{api_node.base}/admin/login/?next=/approvals/",
        data={"username": "ops", "password": "a long enough password", "next": "/approvals/"},
        headers={"X-CSRFToken": node_cookie(browser.cookies, "csrftoken"), "Referer": f"{api_node.base}/admin/login/"},
        timeout=10,
    )
    assert 'data-live="queue"' in logged_in.text
    key = _remote_key(api_node, "frontend", "verified")
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    with connect(_ws_url(api_node), origin=api_node.base, additional_headers={"Cookie": cookie}) as ws:
        ws.send(json.dumps({"type": "subscribe", "watch": {"entity_type": "request"}, "since": _live_since(logged_in)}))
        assert _receive(ws)["type"] == "subscribed"
        answer = requests.post(
            f"{api_node.api}/federation/mutate",
            json={
                "type": "mutate",
                "from": "github.com/org/frontend",
                "operation": "create_issue",
                "data": {"title": "Needs a decision"},
                "metadata": {"request_id": "req-live-queue", "requester": "test"},
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert answer.json()["status"] == "pending_approval"
        event = _receive(ws)["event"]
        assert (event["type"], event["entity"]["id"]) == ("request_created", "req-live-queue")
        assert event["changes"] == {"status": {"from": None, "to": "pending"}}


def _live_since(page) -> int:
    return _live_config(page.text)["since"]
