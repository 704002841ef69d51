"""The A2A 1.0 door (issue 12): another agent talks to this node with the A2A protocol, served by the node's own
ASGI application through the official `a2a-sdk` (its JSON-RPC and HTTP+JSON transports; agents/asgi.py mounts
them). This module is the protocol's RequestHandler: a thin edge over the same services as the REST views.

- SendMessage carries one of the seed's federation messages (`discover`, `query`, `mutate`, `subscribe`,
  `delegate`) as a data part. Answers that need no one (discover, query, subscribe) come back as an agent
  Message whose data part is the same response body the REST endpoint gives. A plain text message is answered
  with help.
- A mutate or delegate is a cross-repo request, and **the request row is the A2A task** (task id = request_id;
  the A2A messageId is the idempotency key when the message names no request_id). Its state follows the
  request: pending -> SUBMITTED (waiting for a maintainer), approved -> WORKING, completed -> COMPLETED with the
  created entity as an artifact, rejected -> REJECTED with the reason, failed -> FAILED, cancelled (CancelTask by
  its requester) -> CANCELED. A restart loses nothing: the task is read from the row every time.
- Refusals are the REST door's: the same words, the same audit row. A message that is not valid is an A2A
  InvalidParams error naming the path; a request the caller may not make (trust level, rate limit, a JSONL
  file to repair) is an agent Message carrying the REST error body (`{"error": "forbidden", "detail": ...}`).
- Streaming (SendStreamingMessage, SubscribeToTask) follows the row until a final state; push notifications
  are Delivery rows (requests_app.delivery.queue_push), queued in the transaction of each move.

The caller is the remote whose API key the `Authorization: Bearer` header presents, as on every door.
With `FEDERATION_A2A_CONFORMANCE=1` (`serve --a2a-conformance`), messages that carry no federation message go
to the conformance executor (agents.a2a_conformance) instead of the help text: only for the conformance kit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import RequestHandler
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    Artifact,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    HTTPAuthSecurityScheme,
    InvalidParamsError,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    Part,
    Role,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    StreamResponse,
    StringList,
    SubscribeToTaskRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
    UnsupportedOperationError,
)
from a2a.utils.errors import ExtendedAgentCardNotConfiguredError
from asgiref.sync import sync_to_async
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.struct_pb2 import Value

from agents.asgi import A2A_JSONRPC_PATH as JSONRPC_PATH
from agents.asgi import A2A_REST_PATH as REST_PATH
from federation_site import logs
from remotes.a2a_client import A2A_VERSION, SIGNATURES_EXTENSION

PROTOCOL_VERSION = A2A_VERSION  # the version the outbound client asks for too
FEDERATION_TYPES = ("discover", "query", "mutate", "subscribe", "delegate", "key_rotation")
POLL_SECONDS = 0.25  # how often a stream re-reads its request row
MAX_PAGE_SIZE = 100

# Our request status -> the A2A task state (PROTOCOL.md "A2A: the task lifecycle").
STATES = {
    "pending": TaskState.TASK_STATE_SUBMITTED,
    "approved": TaskState.TASK_STATE_WORKING,
    "completed": TaskState.TASK_STATE_COMPLETED,
    "rejected": TaskState.TASK_STATE_REJECTED,
    "failed": TaskState.TASK_STATE_FAILED,
    "cancelled": TaskState.TASK_STATE_CANCELED,
}
STATUSES = {state: status for status, state in STATES.items()}
FINAL_STATES = {STATES[s] for s in ("completed", "rejected", "failed", "cancelled")}

HELP = (
    "This is a sudocode federation node. Send one of the federation messages as a data part of your message: "
    '{"type": "discover"}, {"type": "query", "query": {"entity": "issue", "filters": {"status": "open"}}}, '
    '{"type": "mutate", "operation": "create_issue", "data": {"title": "..."}}, {"type": "subscribe", ...} or '
    '{"type": "delegate", "task": {"type": "issue", "title": "..."}}. A mutate or delegate becomes a task that '
    "follows its approval. Authenticate with `Authorization: Bearer <the key this node issued your repository>`. "
    "The message bodies are in PROTOCOL.md."
)

SKILLS = [
    ("discover", "Discover", "What this node offers the caller: its operations at the caller's trust level.",
     ['{"type": "discover"}']),
    ("query", "Query issues and specs", "Issues and specs of this repository, filtered and paged.",
     ['{"type": "query", "query": {"entity": "issue", "filters": {"status": "open"}}}']),
    ("request-changes", "Request changes", "Ask for an issue or spec to be created or updated; a task that "
     "waits for a maintainer (or this node's policy) and completes with the created entity.",
     ['{"type": "mutate", "operation": "create_issue", "data": {"title": "Add OAuth"}}']),
    ("subscribe", "Subscribe", "Watch entities here; changes come to your webhook or WebSocket.",
     ['{"type": "subscribe", "watch": {"entity_type": "issue"}, '
      '"callback": {"url": "https://you.example/api/v1/webhooks/cross-repo"}}']),
    ("delegate", "Delegate", "Hand this repository a task it accepts as a spec or issue of its own.",
     ['{"type": "delegate", "task": {"type": "issue", "title": "Implement the endpoint"}}']),
]  # fmt: skip


# --- the agent card ---------------------------------------------------------------------------------------


def agent_card(base_url: str) -> AgentCard:
    """This node's Agent Card (A2A 1.0 section "Agent Card"), its URLs under `base_url` ("http://host:port"):
    identity from the config, the skills above, JSON-RPC and HTTP+JSON, the API key as bearer."""
    from federation_site import identity

    described = identity.describe()
    base = base_url.rstrip("/")
    return AgentCard(
        name=described["display_name"],
        description=described.get("description") or f"sudocode federation node of {described['url']}",
        version=_version(),
        provider=AgentProvider(
            organization=described["url"].split("/")[1] if "/" in described["url"] else "",
            url=f"https://{described['url']}" if described["url"] else base,
        ),  # fmt: skip
        documentation_url=f"{base}/api/docs/",
        supported_interfaces=[
            AgentInterface(url=f"{base}{JSONRPC_PATH}", protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION),
            AgentInterface(url=f"{base}{REST_PATH}", protocol_binding="HTTP+JSON", protocol_version=PROTOCOL_VERSION),
        ],
        capabilities=AgentCapabilities(
            streaming=True, push_notifications=True, extended_agent_card=False, extensions=_signature_extension()
        ),
        security_schemes={
            "apiKey": SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="bearer",
                    bearer_format="sfk_ key",
                    description="The API key this node issued your repository (`sudocode-fed remote add`). "
                    "Without one you are an anonymous caller: discover and query only.",
                )
            )
        },
        security_requirements=[SecurityRequirement(schemes={"apiKey": StringList(list=[])}), SecurityRequirement()],
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json", "text/plain"],
        skills=[
            AgentSkill(id=id_, name=name, description=text, tags=["sudocode", "federation"], examples=examples)
            for id_, name, text, examples in SKILLS
        ],
    )


def _signature_extension() -> list[AgentExtension]:
    """The card's word on signatures (issue 17): this node's public key, which signs its A2A messages (RFC 9421)."""
    from google.protobuf.struct_pb2 import Struct

    from federation_site import node

    cfg = node.config()
    public_key = cfg.local_identity.public_key if cfg and cfg.local_identity else None
    if not public_key:
        return []
    from federation_site.keys import fingerprint

    params = Struct()
    params.update({"public_key": public_key, "key_id": fingerprint(public_key), "algorithm": "ed25519"})
    return [
        AgentExtension(
            uri=SIGNATURES_EXTENSION,
            description="This node signs its messages with HTTP Message Signatures (RFC 9421) under this Ed25519 key.",
            required=False,
            params=params,
        )
    ]


def card_last_modified() -> float | None:
    """When the card last changed: the config file's modification time (seconds since the epoch), or None."""
    from federation_site import node

    try:
        return node.layout().config_path.stat().st_mtime
    except (OSError, node.RepoNotFound):
        return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sudocode-federation")
    except PackageNotFoundError:
        return "0"


# --- the handler ------------------------------------------------------------------------------------------


class FederationRequestHandler(RequestHandler):
    """A2A's RequestHandler over this node's services. `conformance`: the handler that answers what carries no
    federation message and the tasks it made (agents.a2a_conformance), or None in normal operation."""

    def __init__(self, conformance: RequestHandler | None = None):
        self.conformance = conformance

    # SendMessage / SendStreamingMessage

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        body = _federation_body(params.message)
        if body is None:
            if self.conformance is not None:
                return await self.conformance.on_message_send(params, context)
            return _agent_message(params.message, text=HELP)
        return await sync_to_async(_receive)(body, params, context)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        body = _federation_body(params.message)
        if body is None and self.conformance is not None:
            async for event in self.conformance.on_message_send_stream(params, context):
                yield event
            return
        answer = await self.on_message_send(params, context)
        yield answer
        if isinstance(answer, Task):
            async for event in _follow(answer, context):
                yield event

    # Tasks

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        task = await sync_to_async(_task_or_none)(params.id, context, params.history_length or None)
        if task is None and self.conformance is not None:
            return await self.conformance.on_get_task(params, context)
        if task is None:
            raise TaskNotFoundError(f"no task {params.id!r} of yours here")
        return task

    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        if self.conformance is not None:
            return await self.conformance.on_list_tasks(params, context)
        return await sync_to_async(_list_tasks)(params, context)

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        if await self._conformance_task(params.id, context):
            return await self.conformance.on_cancel_task(params, context)
        return await sync_to_async(_cancel)(params.id, context)

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        task = await sync_to_async(_task_or_none)(params.id, context, None)
        if task is None and self.conformance is not None:
            async for event in self.conformance.on_subscribe_to_task(params, context):
                yield event
            return
        if task is None:
            raise TaskNotFoundError(f"no task {params.id!r} of yours here")
        if task.status.state in FINAL_STATES:
            raise UnsupportedOperationError(
                f"task {params.id} is already {TaskState.Name(task.status.state)}: GetTask reads it"
            )
        yield task
        async for event in _follow(task, context):
            yield event

    # Push notification configs: kept on the request row, sent as Delivery rows.

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        if await self._conformance_task(params.task_id, context):
            return await self.conformance.on_create_task_push_notification_config(params, context)
        return await sync_to_async(_push_create)(params, context)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        if await self._conformance_task(params.task_id, context):
            return await self.conformance.on_get_task_push_notification_config(params, context)
        configs = await sync_to_async(_push_configs)(params.task_id, context)
        for config in configs:
            if config.id == params.id:
                return config
        raise TaskNotFoundError(f"task {params.task_id} has no push notification config {params.id!r}")

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        if await self._conformance_task(params.task_id, context):
            return await self.conformance.on_list_task_push_notification_configs(params, context)
        configs = await sync_to_async(_push_configs)(params.task_id, context)
        return ListTaskPushNotificationConfigsResponse(configs=configs)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        if await self._conformance_task(params.task_id, context):
            await self.conformance.on_delete_task_push_notification_config(params, context)
            return
        await sync_to_async(_push_delete)(params.task_id, params.id, context)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError("this node has no extended agent card: the public one is all")

    async def _conformance_task(self, task_id: str, context: ServerCallContext) -> bool:
        if self.conformance is None:
            return False
        return await sync_to_async(_task_or_none)(task_id, context, None) is None


# --- messages in ------------------------------------------------------------------------------------------


def _federation_body(message: Message) -> dict | None:
    """The federation message a data part carries (a dict with a known `type`), or None."""
    for part in message.parts:
        if part.HasField("data"):
            from protocol.messages import integral_numbers

            value = integral_numbers(MessageToDict(part.data))
            if isinstance(value, dict) and value.get("type") in FEDERATION_TYPES:
                return value
    return None


def _receive(body: dict, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
    """Answer one federation message through the services every door uses (federation.services,
    requests_app.services, subscriptions.incoming)."""
    from django.db import close_old_connections

    from federation import services
    from protocol import messages
    from remotes.policy import PermissionDenied, RateLimited
    from requests_app.services import request_receive
    from subscriptions import incoming
    from tracker.sync import DataDamaged

    close_old_connections()
    caller = _caller(context)
    incoming_message = params.message
    kind = body["type"]
    if kind in ("mutate", "delegate"):
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if "request_id" not in metadata and not messages.is_request_id(incoming_message.message_id):
            raise InvalidParamsError(
                f"invalid: message.messageId: {incoming_message.message_id[:80]!r} is this request's id when "
                "metadata.request_id is not given, and a request id is 1 to 64 letters, digits, '.', '_', ':' or "
                "'-', starting with a letter or digit: send such a messageId, or metadata.request_id",
                data={"errors": [{"field": "message.messageId", "message": "not usable as a request id"}]},
            )
        body = {**body, "metadata": {"request_id": incoming_message.message_id, **metadata}}
        if params.configuration.HasField("task_push_notification_config"):  # refused before anything is recorded
            _push_dict(params.configuration.task_push_notification_config, "", caller, field=_PUSH_FIELD)
    # The caller's X-Correlation-ID (or a new id), bound by federation_site.asgi for every line of this call.
    correlation_id = logs.current("correlation_id") or uuid.uuid4().hex
    logs.bind(request_id=(body.get("metadata") or {}).get("request_id") if kind in ("mutate", "delegate") else None)
    base = context.state.get("base_url", "")
    try:
        if kind == "key_rotation":  # not a seed message: issue 17's announcement, answered as at /federation/key
            return _key_rotation(body, caller, incoming_message)
        parsed = messages.parse_message({**body, "from": caller.identity or "anonymous/caller"})
        if kind == "discover":
            answer: dict | tuple = services.answer_discover(
                caller=caller, rest_base=f"{base}/api/v1", correlation_id=correlation_id
            )
        elif kind == "query":
            answer = services.answer_query(
                caller=caller,
                message=parsed,
                correlation_id=correlation_id,
                client_address=context.state.get("client_address", ""),
            )
        elif kind == "subscribe":
            answer = incoming.subscription_receive(
                caller=caller, message=parsed, correlation_id=correlation_id, base_url=base
            )
        else:
            answer = request_receive(caller=caller, message=parsed, correlation_id=correlation_id, base_url=base)
    except (messages.MessageError, services.QueryError) as exc:
        errors = exc.as_json()["errors"]
        text = "; ".join(f"{e['path'] or 'message'}: {e['message']}" for e in errors)
        # The SDK's shape for a google.rpc.BadRequest: one field violation per problem.
        violations = [{"field": e["path"] or "message", "message": e["message"]} for e in errors]
        raise InvalidParamsError(f"invalid: {text}", data={"errors": violations}) from None
    except (PermissionDenied, RateLimited, DataDamaged) as exc:
        return _refusal(incoming_message, services.refusal(exc, caller)[0])
    response, status = answer if isinstance(answer, tuple) else (answer, 200)
    if kind in ("mutate", "delegate") and status == 200:
        request = _request_of(caller, response["request_id"])
        _remember(request, incoming_message, params, caller)
        return task_for(request, history_length=params.configuration.history_length or None)
    if status >= 400:
        return _refusal(incoming_message, response)
    return _agent_message(incoming_message, data=response)


def _key_rotation(body: dict, caller, incoming_message: Message) -> Message:
    """A remote's new public key, announced in a message signed with its pinned key (remotes.services
    .remote_key_rotation_accept, with the signature agents/asgi.py verified for this request). A refusal is the
    REST door's 401 body; a message that is not valid raises MessageError (InvalidParams)."""
    from audit.services import received_signature
    from protocol import messages
    from remotes.services import remote_key_rotation_accept
    from remotes.signatures import SignatureProblem

    rotation = messages.parse_key_rotation({**body, "from": caller.identity or "anonymous/caller"})
    try:
        answer = remote_key_rotation_accept(
            caller=caller, public_key=rotation.public_key, signature=received_signature.get()
        )
    except SignatureProblem as exc:
        return _refusal(incoming_message, {"error": "unauthorized", "detail": str(exc)})
    return _agent_message(incoming_message, data=answer)


def _remember(request, message: Message, params: SendMessageRequest, caller) -> None:
    """Keep the A2A parts of the task on its request row, once: the context, the message, a push config."""
    from requests_app.models import CrossRepoRequest

    if request.a2a:
        return
    a2a: dict[str, Any] = {
        "context_id": message.context_id or uuid.uuid4().hex,
        "message": MessageToDict(message),
        "push": [],
    }
    if params.configuration.HasField("task_push_notification_config"):
        config = params.configuration.task_push_notification_config
        a2a["push"].append(_push_dict(config, request.request_id, caller, field=_PUSH_FIELD))
    CrossRepoRequest.objects.filter(pk=request.pk, a2a__isnull=True).update(a2a=a2a)
    request.refresh_from_db(fields=["a2a"])


def _caller(context: ServerCallContext):
    from remotes.auth import bearer_token, caller_for_token

    caller = context.state.get("caller")
    if caller is None:
        caller = caller_for_token(bearer_token(context.state.get("authorization")))
        context.state["caller"] = caller
    return caller


def _request_of(caller, request_id: str):
    """The incoming request `caller` sent under `request_id`, or None (another's is not shown to exist)."""
    from requests_app.models import CrossRepoRequest, Direction

    request = CrossRepoRequest.objects.filter(request_id=request_id, direction=Direction.INCOMING).first()
    if request is None or caller.remote is None or request.from_repo != caller.identity:
        return None
    return request


# --- tasks out --------------------------------------------------------------------------------------------


def task_for(request, *, history_length: int | None = None) -> Task:
    """The A2A Task a request is (see the module docstring): its status message says what it waits for, its
    metadata is the request's mutate_response (or delegate_response), a completed one carries the created entity
    as the artifact `created`."""
    from requests_app.selectors import response_for

    response = response_for(request)
    a2a = request.a2a or {}
    context_id = a2a.get("context_id") or request.request_id
    status_text = response.get("message") or request.status
    if response.get("reason"):
        status_text = f"{status_text}: {response['reason']}"
    status = TaskStatus(
        state=STATES[request.status],
        message=Message(
            message_id=f"{request.request_id}-{request.status}",
            context_id=context_id,
            task_id=request.request_id,
            role=Role.ROLE_AGENT,
            parts=[Part(text=status_text)],
        ),
    )
    status.timestamp.FromDatetime(request.updated_at)
    task = Task(id=request.request_id, context_id=context_id, status=status)
    task.metadata.update(_json_safe(response))
    created = (request.result or {}).get("created")
    if created:
        task.artifacts.append(_artifact(created))
    history = []
    if a2a.get("message"):
        history.append(ParseDict(a2a["message"], Message(), ignore_unknown_fields=True))
    history.append(status.message)
    if history_length is not None:
        history = history[-history_length:] if history_length > 0 else []
    task.history.extend(history)
    return task


def _artifact(created: dict) -> Artifact:
    artifact = Artifact(artifact_id="created", name="created", description="The entity this request created")
    artifact.parts.append(Part(data=ParseDict(_json_safe(created), Value())))
    return artifact


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _task_or_none(task_id: str, context: ServerCallContext, history_length: int | None) -> Task | None:
    from django.db import close_old_connections

    close_old_connections()
    request = _request_of(_caller(context), task_id)
    return None if request is None else task_for(request, history_length=history_length)


def _list_tasks(params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
    """The caller's requests, newest first, as tasks: filtered by context, state and status time, paged by an
    opaque token (empty on the last page)."""
    from django.db import close_old_connections

    from requests_app.models import CrossRepoRequest, Direction

    close_old_connections()
    caller = _caller(context)
    if caller.remote is None:
        return ListTasksResponse(page_size=0, total_size=0)
    rows = CrossRepoRequest.objects.filter(direction=Direction.INCOMING, from_repo=caller.identity)
    if params.context_id:
        rows = rows.filter(a2a__context_id=params.context_id)
    if params.status:
        if params.status not in STATUSES:
            return ListTasksResponse(page_size=params.page_size or 0, total_size=0)
        rows = rows.filter(status=STATUSES[params.status])
    if params.HasField("status_timestamp_after"):
        rows = rows.filter(updated_at__gt=params.status_timestamp_after.ToDatetime(tzinfo=UTC))
    if params.page_size < 0 or params.page_size > MAX_PAGE_SIZE:
        raise InvalidParamsError(f"pageSize: must be between 1 and {MAX_PAGE_SIZE}, got {params.page_size}")
    size = params.page_size or 50
    total = rows.count()
    rows = rows.order_by("-pk")
    if params.page_token:
        try:
            after = int(base64.urlsafe_b64decode(params.page_token.encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise InvalidParamsError("pageToken: not a token this node gave out") from None
        rows = rows.filter(pk__lt=after)
    page = list(rows[: size + 1])
    more = len(page) > size
    page = page[:size]
    history_length = params.history_length if params.HasField("history_length") else None
    tasks = [task_for(r, history_length=history_length) for r in page]
    if params.HasField("include_artifacts") and not params.include_artifacts:
        for task in tasks:
            del task.artifacts[:]
    token = base64.urlsafe_b64encode(str(page[-1].pk).encode()).decode() if more and page else ""
    return ListTasksResponse(tasks=tasks, next_page_token=token, page_size=size, total_size=total)


def _cancel(task_id: str, context: ServerCallContext) -> Task:
    from django.core.exceptions import ValidationError
    from django.db import close_old_connections

    from requests_app.models import CrossRepoRequest
    from requests_app.services import request_cancel

    close_old_connections()
    try:
        request = request_cancel(request_id=task_id, caller=_caller(context))
    except CrossRepoRequest.DoesNotExist:
        raise TaskNotFoundError(f"no task {task_id!r} of yours here") from None
    except ValidationError as exc:
        raise TaskNotCancelableError(" ".join(exc.message_dict.get("status", exc.messages))) from None
    return task_for(request)


async def _follow(task: Task, context: ServerCallContext) -> AsyncGenerator[Any]:
    """Status (and artifact) updates of `task` as its request row moves, until a final state."""
    state, seen_artifact = task.status.state, bool(task.artifacts)
    while state not in FINAL_STATES:
        await asyncio.sleep(POLL_SECONDS)
        now = await sync_to_async(_task_or_none)(task.id, context, None)
        if now is None:
            return
        if now.artifacts and not seen_artifact:
            seen_artifact = True
            yield TaskArtifactUpdateEvent(task_id=now.id, context_id=now.context_id, artifact=now.artifacts[0])
        if now.status.state != state:
            state = now.status.state
            yield TaskStatusUpdateEvent(task_id=now.id, context_id=now.context_id, status=now.status)


def _agent_message(incoming: Message, *, text: str | None = None, data: dict | None = None) -> Message:
    parts = []
    if text:
        parts.append(Part(text=text))
    if data is not None:
        parts.append(Part(data=ParseDict(_json_safe(data), Value()), media_type="application/json"))
    return Message(
        message_id=uuid.uuid4().hex,
        context_id=incoming.context_id,
        role=Role.ROLE_AGENT,
        parts=parts,
        reference_task_ids=[incoming.task_id] if incoming.task_id else [],
    )


def _refusal(incoming: Message, body: dict) -> Message:
    """A refusal an agent can act on: the REST door's error body as data, its detail as text."""
    return _agent_message(incoming, text=str(body.get("detail") or body.get("error")), data=body)


# --- push notifications -----------------------------------------------------------------------------------


_PUSH_FIELD = "configuration.taskPushNotificationConfig.url"


def _push_dict(config: TaskPushNotificationConfig, task_id: str, caller, *, field: str = "url") -> dict:
    """The push config as stored on the request row; InvalidParamsError naming `field` for a URL this node will
    not call for `caller` (remotes.urlguard, issue 17: nothing is stored then)."""
    from remotes.selectors import url_refusal

    if not config.url.startswith(("http://", "https://")):
        raise InvalidParamsError(f"{field}: {config.url!r} is not an http(s) URL")
    refused = url_refusal(caller.identity, config.url)
    if refused:
        raise InvalidParamsError(
            f"invalid: {field}: refused: {refused}",
            data={"errors": [{"field": field, "message": f"refused: {refused}"}]},
        )
    stored = MessageToDict(config)
    stored["id"] = config.id or uuid.uuid4().hex
    stored["taskId"] = task_id
    stored.pop("tenant", None)
    return stored


def _push_create(params: TaskPushNotificationConfig, context: ServerCallContext) -> TaskPushNotificationConfig:
    from django.db import transaction

    from requests_app.models import CrossRepoRequest

    request = _request_of(_caller(context), params.task_id)
    if request is None:
        raise TaskNotFoundError(f"no task {params.task_id!r} of yours here")
    config = _push_dict(params, request.request_id, _caller(context))
    with transaction.atomic():
        row = CrossRepoRequest.objects.select_for_update().get(pk=request.pk)
        a2a = row.a2a or {"context_id": request.request_id, "push": []}
        a2a["push"] = [c for c in a2a.get("push", []) if c["id"] != config["id"]] + [config]
        row.a2a = a2a
        row.save(update_fields=["a2a"])
    return ParseDict(config, TaskPushNotificationConfig())


def _push_configs(task_id: str, context: ServerCallContext) -> list[TaskPushNotificationConfig]:
    request = _request_of(_caller(context), task_id)
    if request is None:
        raise TaskNotFoundError(f"no task {task_id!r} of yours here")
    return [ParseDict(c, TaskPushNotificationConfig()) for c in (request.a2a or {}).get("push", [])]


def _push_delete(task_id: str, config_id: str, context: ServerCallContext) -> None:
    from django.db import transaction

    from requests_app.models import CrossRepoRequest

    request = _request_of(_caller(context), task_id)
    if request is None:
        raise TaskNotFoundError(f"no task {task_id!r} of yours here")
    with transaction.atomic():
        row = CrossRepoRequest.objects.select_for_update().get(pk=request.pk)
        if row.a2a:
            row.a2a["push"] = [c for c in row.a2a.get("push", []) if c["id"] != config_id]
            row.save(update_fields=["a2a"])


def queue_push_notifications(sender, request, status_from: str, **kwargs) -> None:
    """requests_app.signals.request_changed: one push delivery per config of the task, carrying the A2A
    StreamResponse with the task's new status (A2A 1.0 "Push Notifications"); the token as
    X-A2A-Notification-Token, the config's authentication as Authorization."""
    from requests_app.delivery import queue_push

    configs = (request.a2a or {}).get("push") or []
    if not configs:
        return
    task = task_for(request, history_length=0)
    update = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id, status=task.status)
    payload = MessageToDict(StreamResponse(status_update=update))
    for config in configs:
        headers = {"A2A-Version": PROTOCOL_VERSION}
        if config.get("token"):
            headers["X-A2A-Notification-Token"] = config["token"]
        auth = config.get("authentication") or {}
        if auth.get("scheme") and auth.get("credentials"):
            headers["Authorization"] = f"{auth['scheme']} {auth['credentials']}"
        queue_push(request, f"task_{request.status}", config["url"], payload, headers)
