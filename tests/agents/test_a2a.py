"""The A2A 1.0 door (issue 12) with the official client of `a2a-sdk` (card resolver + client factory) against a
real node, over both transports its card declares: discover, query, a mutate that waits for a maintainer followed
to completion by streaming and by push notification, cancel, and the errors an agent acts on. The conformance
kit's run is test_a2a_conformance.py."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value

from tests.nodes import Node, eventually
from tests.requests_app.test_use_case_1 import decide, staff_session

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "maintainer", "a-long-enough-password-1"
BINDINGS = ["JSONRPC", "HTTP+JSON"]
REFUSED = (A2AError, A2AClientError)  # an A2A error the server sent, or one the client found


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("a2a"), "api-service")
    try:
        node.start()
        node.create_staff(STAFF, PASSWORD)
        assert node.cli("issue", "create", "Seen by agents", "--tags", "a2a").code == 0
        yield node
    finally:
        node.stop()


def key_for(node: Node, repo: str, trust: str) -> str:
    added = node.cli("remote", "add", repo, "--trust", trust, "--no-discover")
    return next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))


@pytest.fixture(scope="module")
def agent_key(api):
    return key_for(api, "github.com/org/agent-repo", "verified")


@asynccontextmanager
async def a2a_client(node: Node, key: str | None, *, binding: str = "JSONRPC", streaming: bool = False):
    """The official client, made the way its README says: resolve the card, let the factory pick the transport."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        card = await A2ACardResolver(http, node.base).get_agent_card()
        config = ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=[binding])
        client = ClientFactory(config).create(card)
        try:
            yield client
        finally:
            await client.close()


def data_message(body: dict, message_id: str | None = None) -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, message_id=message_id or f"m-{id(body)}-{threading.get_ident()}")
    message.parts.append(Part(data=ParseDict(body, Value())))
    return SendMessageRequest(message=message)


async def send(client, request: SendMessageRequest) -> list:
    return [event async for event in client.send_message(request)]


def data_of(message) -> dict:
    return next(MessageToDict(p.data) for p in message.parts if p.HasField("data"))


def test_the_card_says_what_is_true(api):
    card = httpx.get(f"{api.base}/.well-known/agent-card.json", timeout=10)
    assert card.status_code == 200 and card.headers["content-type"].startswith("application/json")
    body = card.json()
    assert {i["protocolBinding"] for i in body["supportedInterfaces"]} == set(BINDINGS)
    capabilities = body["capabilities"]
    [signatures] = capabilities.pop("extensions")  # issue 17: the key that signs this node's messages
    assert capabilities == {"streaming": True, "pushNotifications": True, "extendedAgentCard": False}
    assert signatures["uri"] == "urn:sudocode-federation:http-message-signatures:v1"
    assert signatures["params"]["public_key"] == api.config()["local_identity"]["public_key"]
    assert signatures["params"]["key_id"].startswith("SHA256:")
    assert {s["id"] for s in body["skills"]} == {"discover", "query", "request-changes", "subscribe", "delegate"}
    assert body["securitySchemes"]["apiKey"]["httpAuthSecurityScheme"]["scheme"] == "bearer"
    again = httpx.get(f"{api.base}/.well-known/agent-card.json", headers={"If-None-Match": card.headers["etag"]})
    assert again.status_code == 304 and "max-age" in card.headers["cache-control"]


@pytest.mark.parametrize("binding", BINDINGS)
def test_discover_query_and_help_through_the_official_client(api, agent_key, binding):
    async def scenario():
        async with a2a_client(api, agent_key, binding=binding) as client:
            [(found)] = await send(client, data_message({"type": "discover"}))
            discovered = data_of(found.message)
            assert discovered["type"] == "discover_response"
            assert discovered["capabilities"]["trust_level"] == "verified"
            query = {"type": "query", "query": {"entity": "issue", "filters": {"labels": ["a2a"]}}}
            [answer] = await send(client, data_message(query))
            page = data_of(answer.message)
            assert [r["title"] for r in page["results"]] == ["Seen by agents"]
            text = Message(role=Role.ROLE_USER, message_id=f"hello-{binding}", parts=[Part(text="hello?")])
            [helped] = await send(client, SendMessageRequest(message=text))
            assert "sudocode federation node" in helped.message.parts[0].text
            bad = {"type": "query", "query": {"entity": "issue", "filters": {"status": "opn"}}}
            with pytest.raises(REFUSED, match="query.filters.status"):
                await send(client, data_message(bad))  # a message that is not valid names the path
            with pytest.raises(REFUSED, match="no task"):
                await client.get_task(GetTaskRequest(id="req-nobody-made"))
            odd_id = data_message({"type": "mutate", "operation": "create_issue", "data": {"title": "X"}}, "has space!")
            with pytest.raises(REFUSED, match="message.messageId"):
                await send(client, odd_id)

    asyncio.run(scenario())


@pytest.mark.parametrize("binding", BINDINGS)
def test_a_pending_mutate_is_a_task_followed_by_streaming_until_a_maintainer_approves(api, agent_key, binding):
    request_id = f"req-a2a-stream-{binding.replace('+', '').lower()}"
    mutate = {
        "type": "mutate",
        "operation": "create_issue",
        "data": {"title": f"Add OAuth ({binding})", "priority": 1},
        "metadata": {"request_id": request_id, "requester": "agent"},
    }
    session = staff_session(api)

    def approve_when_it_arrives():
        eventually(lambda: api.cli_json("request", "show", request_id), what="the request to arrive")
        assert decide(session, api, request_id, "approve").status_code == 302

    async def scenario():
        async with a2a_client(api, agent_key, binding=binding, streaming=True) as client:
            approver = threading.Thread(target=approve_when_it_arrives)
            approver.start()
            events = await send(client, data_message(mutate))
            approver.join()
            first = events[0].task
            assert first.id == request_id and first.status.state == TaskState.TASK_STATE_SUBMITTED
            assert "maintainers" in first.status.message.parts[0].text
            states = [e.status_update.status.state for e in events if e.HasField("status_update")]
            assert states[-1] == TaskState.TASK_STATE_COMPLETED
            done = await client.get_task(GetTaskRequest(id=request_id))
            assert done.status.state == TaskState.TASK_STATE_COMPLETED
            created = MessageToDict(done.artifacts[0].parts[0].data)
            assert created["id"].startswith("i-") and done.metadata["status"] == "completed"
            assert done.history[0].parts[0].HasField("data")  # the requester's message is kept
            listed = await client.list_tasks(ListTasksRequest(page_size=1, status=TaskState.TASK_STATE_COMPLETED))
            assert listed.total_size >= 1 and len(listed.tasks) == 1
            with pytest.raises(REFUSED, match="already"):
                [e async for e in client.subscribe(SubscribeToTaskRequest(id=request_id))]
            return created

    created = asyncio.run(scenario())
    assert api.cli_json("issue", "show", created["id"])["title"] == f"Add OAuth ({binding})"


class Receiver(ThreadingHTTPServer):
    """A client's webhook for A2A push notifications: keeps what it was sent."""

    def __init__(self):
        self.received: list[tuple[dict, dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler):  # noqa: N805
                length = int(handler.headers.get("Content-Length") or 0)
                body = json.loads(handler.rfile.read(length))
                if handler.path == "/a2a-push":  # the node's callbacks come here too (it is the declared origin)
                    self.received.append((dict(handler.headers), body))
                handler.send_response(204)
                handler.end_headers()

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/a2a-push"


def test_push_notifications_reach_the_clients_webhook_and_the_requester_can_cancel(api, agent_key):
    receiver = Receiver()
    # A push URL on loopback is called only on the origin of the agent's declared endpoint (issue 17).
    origin = receiver.url.removesuffix("/a2a-push")
    assert api.cli("remote", "update", "github.com/org/agent-repo", "--endpoint", f"{origin}/api/v1").code == 0
    session = staff_session(api)

    async def scenario():
        async with a2a_client(api, agent_key, binding="HTTP+JSON") as client:
            asked = data_message({"type": "mutate", "operation": "create_issue", "data": {"title": "Pushed"}}, "push-1")
            [answer] = await send(client, asked)
            task = answer.task
            assert task.id == "push-1"  # the messageId is the request_id when the message gives none
            config = TaskPushNotificationConfig(task_id=task.id, url=receiver.url, token="secret-token")
            made = await client.create_task_push_notification_config(config)
            assert made.id and made.url == receiver.url
            assert decide(session, api, task.id, "approve").status_code == 302

            def pushed_states():
                states = [body["statusUpdate"]["status"]["state"] for _, body in receiver.received]
                return "TASK_STATE_COMPLETED" in states and states

            states = eventually(pushed_states, what="the completion's push", timeout=30)
            assert states == ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]  # one push per move, in order
            headers, body = receiver.received[-1]
            assert headers["X-A2A-Notification-Token"] == "secret-token"
            assert body["statusUpdate"]["taskId"] == "push-1"

            refused = data_message({"type": "mutate", "operation": "create_issue", "data": {"title": "No"}}, "push-2")
            [answer] = await send(client, refused)
            assert decide(session, api, "push-2", "reject", reason="Not this quarter").status_code == 302
            rejected = await client.get_task(GetTaskRequest(id="push-2"))
            assert rejected.status.state == TaskState.TASK_STATE_REJECTED
            assert "Not this quarter" in rejected.status.message.parts[0].text

            waiting = data_message({"type": "mutate", "operation": "create_issue", "data": {"title": "Never"}}, "c-1")
            [answer] = await send(client, waiting)
            cancelled = await client.cancel_task(CancelTaskRequest(id=answer.task.id))
            assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
            again = await client.cancel_task(CancelTaskRequest(id=answer.task.id))
            assert again.status.state == TaskState.TASK_STATE_CANCELED
            with pytest.raises(REFUSED, match="only a pending one can be cancelled"):
                await client.cancel_task(CancelTaskRequest(id="push-2"))
        async with a2a_client(api, None) as anonymous:  # another's task does not exist for you
            with pytest.raises(REFUSED, match="no task"):
                await anonymous.get_task(GetTaskRequest(id="push-1"))

    try:
        asyncio.run(scenario())
    finally:
        receiver.shutdown()
    shown = api.cli_json("request", "show", "c-1")
    assert shown["status"] == "cancelled"
    assert api.cli_json("issue", "list", "--format", "json") is not None


def test_a_push_url_that_is_not_http_is_refused_before_anything_is_recorded(api, agent_key):
    async def scenario():
        async with a2a_client(api, agent_key) as client:
            asked = data_message({"type": "mutate", "operation": "create_issue", "data": {"title": "X"}}, "bad-push-1")
            asked.configuration.task_push_notification_config.url = "file:///etc/passwd"
            with pytest.raises(REFUSED, match="url"):
                await send(client, asked)

    asyncio.run(scenario())
    assert api.cli("request", "show", "bad-push-1").code != 0


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "https://127.0.0.1/x", "https://[::ffff:10.0.0.1]/x"],
)
def test_a_push_url_into_our_network_is_refused_naming_the_field(api, agent_key, url):
    async def scenario():
        async with a2a_client(api, agent_key) as client:
            asked = data_message({"type": "mutate", "operation": "create_issue", "data": {"title": "X"}}, "ssrf-push")
            asked.configuration.task_push_notification_config.url = url
            with pytest.raises(REFUSED, match="taskPushNotificationConfig.url: refused"):
                await send(client, asked)

    asyncio.run(scenario())
    assert api.cli("request", "show", "ssrf-push").code != 0


# --- the outbound side: a remote reached over A2A -------------------------------------------------------------


def test_a_remote_that_serves_an_agent_card_is_called_over_a2a_by_the_cli(api, tmp_path_factory):
    frontend = Node(tmp_path_factory.mktemp("a2a-out"), "frontend")
    try:
        frontend.start()
        key = key_for(api, frontend.identity, "verified")
        # The endpoint is the node's address, not its REST base: /federation/info is not there, its card is.
        added = frontend.cli("remote", "add", api.identity, "--endpoint", api.base, "--trust", "verified")
        assert added.code == 0 and "over A2A 1.0 (reachable)" in added.out, added
        assert frontend.cli("remote", "set-token", api.identity, key).code == 0
        assert frontend.cli_json("remote", "show", api.identity)["transport"] == "a2a"
        before = api.requests_to("/api/v1/federation")

        page = frontend.cli_json("remote", "query", api.identity, "issue", "--labels", "a2a", "--format", "json")
        assert [r["title"] for r in page["results"]] == ["Seen by agents"]
        assert page["results"][0]["priority"] == 2 and isinstance(page["total"], int)  # not 2.0: Struct doubles
        asked = frontend.cli_json(
            "remote", "create-issue", api.identity, "--title", "Asked over A2A", "--format", "json"
        )
        assert asked["status"] == "pending", asked
        request_id = asked["request_id"]
        assert decide(staff_session(api), api, request_id, "approve").status_code == 302
        # No callback over A2A: frontend's poller reads the task (GetTask) until it is completed.
        done = eventually(
            lambda: (r := frontend.cli_json("request", "show", request_id))["status"] == "completed" and r,
            timeout=60,
            what="frontend to learn the outcome by GetTask",
        )
        assert done["result"]["created"]["id"].startswith("i-")
        assert api.requests_to("/api/v1/federation") == before  # everything went through /a2a
        assert api.requests_to("/a2a") >= 3
    finally:
        frontend.stop()


def test_a_remote_that_must_sign_gets_401_on_the_a2a_door_for_an_unsigned_message(api, agent_key):
    """Issue 17: the A2A door checks RFC 9421 signatures as the REST door does."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from federation_site.keys import NodeKey
    from remotes.signatures import sign_request

    key = NodeKey(Ed25519PrivateKey.generate())
    repo = "github.com/org/agent-repo"
    assert api.cli("remote", "key", repo, "--pin", key.public_key, "--require-signatures", "on").code == 0
    envelope = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": "signed-query-1",
                "role": "ROLE_USER",
                "parts": [{"data": {"type": "query", "query": {"entity": "issue"}}}],
            }
        },
    }
    body = json.dumps(envelope).encode()
    headers = {"Authorization": f"Bearer {agent_key}", "Content-Type": "application/json", "A2A-Version": "1.0"}
    try:
        with httpx.Client(timeout=30) as http:
            unsigned = http.post(f"{api.base}/a2a", content=body, headers={**headers, "X-Correlation-ID": "u-1"})
            assert unsigned.status_code == 401
            assert "must sign its messages" in unsigned.json()["detail"]
            request = http.build_request(
                "POST", f"{api.base}/a2a", content=body, headers={**headers, "X-Correlation-ID": "s-1"}
            )
            sign_request(request, key_id=key.key_id, private_key=key.private_key, body=body)
            signed = http.send(request)
            assert signed.status_code == 200, signed.text
            assert "result" in signed.json(), signed.json()
            request.headers["X-Correlation-ID"] = "s-2"  # a covered header changed after signing
            assert http.send(request).status_code == 401
    finally:
        assert api.cli("remote", "key", repo, "--unpin", "--require-signatures", "off").code == 0
    [row] = api.cli_json("audit", "list", "--remote", repo, "--operation", "query", "--limit", "1")
    assert row["signature"]["key_id"] == key.key_id  # the signed query's audit row keeps its signature
