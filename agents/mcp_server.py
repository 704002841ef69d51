"""The MCP door (issue 12): a node's tools for a coding agent, over the official `mcp` SDK.

`sudocode-fed mcp` serves them on stdio, for an agent running in the repository: it acts as the local
maintainer (its actor is git's user.name), as the CLI does. Every tool is a thin caller of the same services
and selectors as the CLI and the REST API, so permissions, policy, quotas and audit rows are the same whichever
door is used. Tools return structured results (`structuredContent` with an output schema); a failure is a tool
error whose text is the same reason a REST 4xx or the CLI gives (a remote's refusal with its status, a
validation error naming the field, an unreachable remote with what is cached).

The seed's three tools (Multi-Agent Collaboration): `cross_repo_query`, `cross_repo_create_issue`,
`cross_repo_watch`; and around them `cross_repo_delegate`, `cross_repo_events`, `request_status`,
`request_list`, `issue_list`, `issue_show`, `issue_create`, `issue_update`, `why_blocked`, `remote_list`.
Issues and specs are also resources, `sudocode://issue/<id>` and `sudocode://spec/<id>`.

`build_remote_server()` is the other MCP door: streamable HTTP at `/mcp` on the node (agents/asgi.py), for agents
of other repositories. The caller is the remote whose API key the request presents (`Authorization: Bearer`),
or the anonymous, untrusted caller; its tools are the federation messages (discover, query, request_issue,
request_status, delegate) answered by the same functions as the REST endpoints, so a remote agent can do
exactly what its repository may.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from pydantic import BaseModel, Field

INSTRUCTIONS = (
    "Tools of a sudocode federation node: this repository's issues and specs (issue_*), and the other "
    "repositories it federates with (cross_repo_*: query them, ask them for an issue, watch their changes, hand "
    "them a task). A request to another repository may wait for its maintainers: follow it with request_status."
)


class QueryResult(BaseModel):
    """A page of another repository's issues or specs, as much of each as it lets this node see."""

    results: list[dict[str, Any]]
    total: int
    next_cursor: str | None = Field(None, description="Send back as `cursor` for the next page; none on the last")


class Request(BaseModel):
    """A request for work (or a delegation) between this node and another, as this node knows it."""

    request_id: str
    direction: Literal["incoming", "outgoing"]
    type: str = Field(description="create_issue, create_spec, update_issue or delegate")
    status: str = Field(description="pending, approved, completed, rejected or failed")
    to: str
    title: str | None = None
    approval_url: str | None = Field(None, description="Where the other repository's maintainers decide")
    created: dict[str, Any] | None = Field(None, description="The entity it created: id, uuid, canonical_ref, url")
    rejection_reason: str | None = None
    decision: dict[str, Any] | None = Field(None, description="Which policy rule decided, and why")
    error: str | None = None


WATCH_SECONDS = 0.5  # how often the stdio server reads the events outbox for resource-updated notifications


def build_server(*, actor: str) -> MCPServer:
    """The MCP server for one local agent acting as `actor`. Django must be set up (sudocode_cli.runtime).

    Resource-updated notifications: while it runs, every change to an issue or spec in the events outbox
    (whoever made it: a maintainer, an approved request, auto-unblock when a remote blocker closes) is published
    as `ResourceUpdated("sudocode://<kind>/<id>")`; a client hears those it listens for
    (`subscriptions/listen` with `resource_subscriptions`, MCP 2026-07-28)."""
    from mcp.server.subscriptions import InMemorySubscriptionBus

    bus = InMemorySubscriptionBus()
    server = MCPServer(
        name="sudocode-federation",
        instructions=INSTRUCTIONS,
        version="1.0",
        subscriptions=bus,
        lifespan=lambda _server: _watching_resources(bus),
    )

    @server.tool()
    def cross_repo_query(
        repo_url: str,
        entity: Literal["issue", "spec"] = "issue",
        filters: dict[str, Any] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> QueryResult:
        """Query another repository's issues or specs (the seed's query filters: status, labels, priority,
        ids, spec_refs, updated_since). Returns {results, total, next_cursor}; send next_cursor back as
        `cursor` for the next page."""
        from remotes.sync import remote_query

        body = _query_body(entity, filters, limit, cursor)
        return _query_result(_call(lambda: remote_query(remote=_remote(repo_url), query=body)))

    @server.tool()
    def cross_repo_create_issue(
        repo_url: str,
        title: str,
        description: str = "",
        priority: int | None = None,
        labels: list[str] | None = None,
        discovered_from: str | None = None,
        auto_approve: bool = False,
    ) -> Request:
        """Ask another repository to create an issue. Its policy decides: carried out at once, or waiting for
        its maintainers (status pending). `discovered_from`: the local issue that needs it; it becomes blocked
        by the new issue. Returns the request (request_id, status, approval_url, result); follow a pending one
        with request_status."""
        from requests_app.services import request_send

        data = {"title": title, "description": description, "priority": priority, "labels": labels or []}
        request = _call(
            lambda: request_send(
                remote=_remote(repo_url),
                operation="create_issue",
                data=data,
                requester=actor,
                auto_approve=auto_approve,
                origin=discovered_from,
            )
        )
        return _request_summary(request)

    @server.tool()
    def request_status(request_id: str) -> Request:
        """A request or delegation, in or out, as this node knows it now. An outgoing one still pending is
        first asked about at the other repository."""
        from requests_app.models import CrossRepoRequest
        from requests_app.services import request_poll

        def read():
            request = CrossRepoRequest.objects.filter(request_id=request_id).order_by("direction").first()
            if request is None:
                raise CrossRepoRequest.DoesNotExist(f"no request {request_id!r}: request_list shows them all")
            if request.direction == "outgoing" and request.status in ("pending", "approved"):
                request_poll(request=request)
                request.refresh_from_db()
            return request

        return _request_summary(_call(read))

    @server.tool()
    def request_list(
        direction: Literal["incoming", "outgoing"] | None = None,
        status: Literal["pending", "approved", "completed", "rejected", "failed", "cancelled"] | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """Requests and delegations between this node and others, newest first: ours to them (outgoing) and
        theirs to us (incoming). Use it to find a request_id again."""
        from requests_app.models import CrossRepoRequest

        def rows():
            qs = CrossRepoRequest.objects.all()
            if direction:
                qs = qs.filter(direction=direction)
            if status:
                qs = qs.filter(status=status)
            return [_request_summary(r).model_dump() for r in qs[: _positive(limit, "limit")]]

        found = _call(rows)
        return {"requests": found, "count": len(found)}

    @server.tool()
    def cross_repo_watch(repo_url: str, watch_config: dict[str, Any]) -> dict[str, Any]:
        """Subscribe to another repository's changes: watch_config is the seed's `watch`, e.g.
        {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}}. Events come to this node by
        signed webhook (issues this repository references are watched without asking)."""
        from subscriptions import outgoing
        from subscriptions.selectors import subscription_summary

        def watch():
            row = outgoing.subscription_create(remote=_remote(repo_url), watch=watch_config, since=None)
            outgoing.subscription_push(subscription_id=row.subscription_id)
            row.refresh_from_db()
            if row.delivery_status == "dead":  # refused for good: nothing will come (the CLI exits 1 too)
                raise ToolError(f"the watch was refused: {row.last_error}")
            return subscription_summary(row)

        return _call(watch)

    @server.tool()
    def cross_repo_events(since: int = 0, limit: int = 100) -> dict[str, Any]:
        """The changes other repositories sent this node (on its watches, and on the remote issues its own
        issues reference), oldest first, after the cursor `since` (0: from the start). Returns {events, cursor};
        send `cursor` back as `since` to get only newer ones."""
        from django.core.exceptions import ValidationError

        from subscriptions.models import ReceivedEvent

        def read():
            if since < 0:
                raise ValidationError({"since": "a cursor this tool gave out, or 0 for the start"})
            page = ReceivedEvent.objects.filter(pk__gt=since).order_by("pk")
            rows = list(page[: min(_positive(limit, "limit"), 500)])
            events = [{"from": r.from_repo, "received_at": r.received_at.isoformat(), **(r.event or {})} for r in rows]
            if rows:
                return {"events": events, "cursor": rows[-1].pk}
            head = ReceivedEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            return {"events": [], "cursor": min(since, head)}  # never a cursor past what exists

        return _call(read)

    @server.tool()
    def cross_repo_delegate(
        repo_url: str,
        type: Literal["spec", "issue"],
        title: str,
        description: str = "",
        requirements: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        from_id: str | None = None,
    ) -> Request:
        """Hand another repository a task it accepts as a spec or issue of its own (the seed's delegate).
        `from_id`: the local spec or issue it comes from (linked both ways once accepted). Follow it with
        request_status."""
        from requests_app.delegation import task_for
        from requests_app.services import delegation_send

        def send():
            task = task_for(
                kind=type,
                title=title,
                description=description or None,
                requirements=requirements,
                context=context,
                origin=from_id,
            )
            return delegation_send(remote=_remote(repo_url), task=task, requester=actor)

        return _request_summary(_call(send))

    @server.tool()
    def issue_list(
        status: list[str] | str | None = None,
        priority: list[int] | None = None,
        tags: list[str] | None = None,
        search: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """This repository's issues, oldest first (archived ones left out)."""
        from tracker.selectors import entity_list, entity_summary

        statuses = [status] if isinstance(status, str) else status

        def rows():
            qs = entity_list(kind="issue", status=statuses, priority=priority, tags=tags, search=search)
            return [entity_summary(e) for e in qs[: _positive(limit, "limit")]]

        found = _call(rows)
        return {"issues": found, "count": len(found)}

    @server.tool()
    def issue_show(id: str) -> dict[str, Any]:
        """One issue with its relationships, its blockers (local and in other repositories, with their cached
        status and freshness) and what references it."""
        return _call(lambda: _detail("issue", id))

    @server.tool()
    def issue_create(
        title: str,
        description: str = "",
        priority: int = 2,
        tags: list[str] | None = None,
        status: str = "open",
        parent: str | None = None,
    ) -> dict[str, Any]:
        """Create an issue in this repository (written to .sudocode/issues.jsonl)."""
        from tracker import services

        def create():
            entity = services.issue_create(
                title=title, content=description, priority=priority, tags=tags or [], status=status,
                parent=parent, actor=actor,
            )  # fmt: skip
            return _detail("issue", entity.uuid)

        return _call(create)

    @server.tool()
    def issue_update(
        id: str,
        title: str | None = None,
        description: str | None = None,
        status: str | None = None,
        priority: int | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change an issue of this repository; fields left out stay as they are."""
        from tracker import services

        fields = {
            "title": title,
            "content": description,
            "status": status,
            "priority": priority,
            "tags": tags,
        }

        def update():
            entity = services.issue_update(issue=id, actor=actor, **{k: v for k, v in fields.items() if v is not None})
            return _detail("issue", entity.uuid)

        return _call(update)

    @server.tool()
    def why_blocked(id: str) -> dict[str, Any]:
        """What blocks an issue, local and remote, with each blocker's cached status."""
        from remotes.blocking import why_blocked as explain

        return _call(lambda: explain(entity=id))

    @server.tool()
    def remote_list() -> dict[str, Any]:
        """The repositories this node federates with: identity, trust level, endpoint, sync state."""
        from remotes.models import RemoteRepo
        from remotes.selectors import remote_summary

        return {"remotes": _call(lambda: [remote_summary(r) for r in RemoteRepo.objects.all()])}

    @server.resource("sudocode://issue/{id}", mime_type="application/json")
    def issue_resource(id: str) -> str:
        """An issue of this repository, as issue_show gives it."""
        return _resource("issue", id)

    @server.resource("sudocode://spec/{id}", mime_type="application/json")
    def spec_resource(id: str) -> str:
        """A spec of this repository with its relationships."""
        return _resource("spec", id)

    return server


# --- the HTTP door: agents of other repositories -------------------------------------------------------------


def build_remote_server() -> MCPServer:
    """The MCP server mounted at /mcp: each call is judged as the remote whose key the HTTP request carries."""
    server = MCPServer(
        name="sudocode-federation-node",
        instructions="A sudocode federation node, seen from another repository: discover it, query its issues "
        "and specs, ask it for an issue or hand it a task (its policy or its maintainers decide), and follow "
        "such a request. Present your repository's API key for this node as a bearer token.",
        version="1.0",
    )

    @server.tool()
    def discover(ctx: Context) -> dict[str, Any]:
        """What this node is and can do, and the trust level it gives the caller (the discover_response)."""
        from federation import services

        caller, base = _remote_caller(ctx)
        return _call(lambda: services.answer_discover(caller=caller, rest_base=f"{base}/api/v1"))

    @server.tool()
    def query(
        ctx: Context,
        entity: Literal["issue", "spec"] = "issue",
        filters: dict[str, Any] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> QueryResult:
        """This node's issues or specs, as much of each as the caller may see (the query message)."""
        from federation import services
        from protocol import messages

        caller, _ = _remote_caller(ctx)
        body = _query_body(entity, filters, limit, cursor)
        return _query_result(_call(lambda: services.answer_query(caller=caller, message=messages.parse_query(body))))

    @server.tool()
    def request_issue(
        ctx: Context,
        title: str,
        request_id: str,
        description: str | None = None,
        priority: int | None = None,
        labels: list[str] | None = None,
        requester: str | None = None,
        auto_approve: bool = False,
    ) -> dict[str, Any]:
        """Ask this node to create an issue (the mutate message, create_issue). `request_id` is your idempotency
        key, made once per request (e.g. "req-" and 12 random hex digits; up to 64 letters, digits, '.', '_',
        ':' or '-', starting with a letter or digit): the same id again is the same request and gets its first
        answer, whatever else is sent with it. Returns the mutate_response (status pending_approval,
        completed, ...; `decision` says which rule decided)."""
        data = {"title": title, "description": description, "priority": priority, "labels": labels}
        message = {
            "type": "mutate",
            "operation": "create_issue",
            "data": {k: v for k, v in data.items() if v is not None},
            "metadata": {"request_id": request_id, "requester": requester, "auto_approve": auto_approve},
        }
        return _receive(ctx, message)

    @server.tool()
    def delegate(
        ctx: Context,
        type: Literal["spec", "issue"],
        title: str,
        request_id: str,
        description: str | None = None,
        requirements: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        requester: str | None = None,
    ) -> dict[str, Any]:
        """Hand this node a task it accepts as a spec or issue of its own (the delegate message). `request_id`:
        your idempotency key, as for request_issue. Returns the delegate_response."""
        task = {"type": type, "title": title, "description": description, "requirements": requirements or {}}
        message = {
            "type": "delegate",
            "task": {**{k: v for k, v in task.items() if v is not None}, "context": context or {}},
            "metadata": {"request_id": request_id, "requester": requester},
        }
        return _receive(ctx, message)

    @server.tool()
    def request_status(ctx: Context, request_id: str) -> dict[str, Any]:
        """A request the caller made here, as its mutate_response or delegate_response now."""
        from requests_app.models import CrossRepoRequest
        from requests_app.selectors import response_for

        caller, _ = _remote_caller(ctx)

        def read():
            found = CrossRepoRequest.objects.filter(request_id=request_id, direction="incoming").first()
            if found is None or not caller.remote or caller.identity != found.from_repo:
                raise CrossRepoRequest.DoesNotExist(f"no request {request_id!r} from {caller}")
            return response_for(found)

        return _call(read)

    return server


@asynccontextmanager
async def _watching_resources(bus) -> AsyncIterator[None]:
    """Publish a ResourceUpdated for each entity event after the server started, for as long as it runs."""
    import anyio
    from asgiref.sync import sync_to_async
    from mcp.server.subscriptions import ResourceUpdated

    def changed_since(seq: int) -> tuple[int, list[str]]:
        from django.db import close_old_connections

        from events.selectors import events_after, head_seq

        close_old_connections()
        if seq < 0:
            return head_seq(), []
        events = events_after(seq, limit=500)
        uris = [f"sudocode://{e.entity_kind}/{e.entity_id}" for e in events if e.entity_kind in ("issue", "spec")]
        return (events[-1].seq if events else seq), list(dict.fromkeys(uris))

    async def watch() -> None:
        seq, _ = await sync_to_async(changed_since, thread_sensitive=False)(-1)
        while True:
            await anyio.sleep(WATCH_SECONDS)
            seq, uris = await sync_to_async(changed_since, thread_sensitive=False)(seq)
            for uri in uris:
                await bus.publish(ResourceUpdated(uri=uri))

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        yield
        group.cancel_scope.cancel()


def _remote_caller(ctx) -> tuple[Any, str]:
    """(the Caller the HTTP request's bearer key names, the node's base URL)."""
    from remotes.auth import bearer_token, caller_for_token

    request = ctx.request_context.request
    headers = request.headers if request is not None else {}
    base = str(request.base_url).rstrip("/") if request is not None else ""
    presented = headers.get("authorization")
    caller = _call(lambda: caller_for_token(bearer_token(presented)))
    if presented and caller.remote is None:  # REST treats it as anonymous; an agent is better told
        raise ToolError(
            "the key presented is not one this node issued (send `Authorization: Bearer <key>`, the key this node's "
            "`sudocode-fed remote add` printed for your repository), or send none to act as an anonymous caller"
        )
    return caller, base


def _receive(ctx, message: dict[str, Any]) -> dict[str, Any]:
    from protocol import messages
    from requests_app.services import request_receive

    caller, base = _remote_caller(ctx)

    def receive():
        parsed = messages.parse_message({**message, "from": caller.identity or "anonymous/caller"})
        body, _status = request_receive(caller=caller, message=parsed, correlation_id=uuid.uuid4().hex, base_url=base)
        return body

    return _call(receive)


# --- what every tool shares ----------------------------------------------------------------------------------


def _remote(url: str):
    from remotes.selectors import remote_get

    return remote_get(url=url)


def _query_body(entity: str, filters: dict[str, Any] | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """The seed's bare query body."""
    body: dict[str, Any] = {"entity": entity, "filters": filters or {}, "limit": limit}
    if cursor:
        body["cursor"] = cursor
    return body


def _query_result(page: dict[str, Any]) -> QueryResult:
    meta = page.get("metadata") or {}
    results = page.get("results") or []
    return QueryResult(results=results, total=meta.get("total", len(results)), next_cursor=meta.get("next_cursor"))


def _positive(value: int, name: str) -> int:
    from django.core.exceptions import ValidationError

    if value < 1:
        raise ValidationError({name: f"must be at least 1, got {value}"})
    return value


def _resource(kind: str, ref: str) -> str:
    from tracker.models import Entity

    try:
        return json.dumps(_detail(kind, ref), default=str)
    except Entity.DoesNotExist as exc:
        raise ResourceNotFoundError(str(exc)) from None


def _detail(kind: str, ref: str) -> dict[str, Any]:
    from remotes.sync import entity_detail_with_cross_repo
    from tracker.selectors import entity_get

    return entity_detail_with_cross_repo(entity=entity_get(kind=kind, ref=ref))


def _request_summary(request) -> Request:
    from requests_app.selectors import request_summary

    summary = request_summary(request)
    return Request(
        **{k: v for k, v in summary.items() if k in Request.model_fields}, created=(request.result or {}).get("created")
    )


def _call(work):
    """Run `work` (Django, in the SDK's worker thread) and turn what it raises into a tool error whose text is
    the reason the REST API or the CLI would give."""
    from django.core.exceptions import ObjectDoesNotExist, ValidationError
    from django.db import close_old_connections

    from federation.services import QueryError
    from protocol.messages import MessageError
    from remotes.client import RemoteError
    from remotes.policy import PermissionDenied, RateLimited
    from tracker.sync import DataDamaged

    close_old_connections()
    try:
        return work()
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ToolError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        raise ToolError(" ".join(exc.messages)) from None
    except ObjectDoesNotExist as exc:
        raise ToolError(f"not found: {exc}") from None
    except MessageError as exc:
        problems = "; ".join(f"{e['path'] or 'message'}: {e['message']}" for e in exc.errors)
        raise ToolError(f"invalid: {problems}") from None
    except QueryError as exc:
        raise ToolError(f"invalid: {exc.path}: {exc.message}") from None
    except RateLimited as exc:
        raise ToolError(f"rate limited: {exc} (retry after {exc.retry_after} s)") from None
    except PermissionDenied as exc:
        raise ToolError(f"forbidden: {exc}") from None
    except DataDamaged as exc:
        raise ToolError(f"this repository's data cannot be read: {exc.short} (retry in {exc.retry_after} s)") from None
    except RemoteError as exc:
        raise ToolError(f"the remote refused or did not answer: {exc}") from None
