"""The streamable HTTP transport of the remote MCP door, mounted at /mcp by federation_site.asgi.

The SDK's session manager needs a task group that lives as long as the server, which Starlette would start in its
lifespan; daphne sends no lifespan events, so the first request starts it, in a task of its own on the server's
event loop. Stateless mode with JSON answers: every POST carries its own bearer key, and the node keeps no MCP
session state between requests (a restart loses nothing, several daphne processes serve alike).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from federation_site import logs
from remotes.a2a_client import CARD_PATH

PATH = "/mcp"
# The A2A door's paths (agents.a2a_server): the Agent Card, JSON-RPC, and HTTP+JSON under REST_PATH.
A2A_CARD_PATH = CARD_PATH  # where remotes.a2a_client looks for another node's card
A2A_JSONRPC_PATH = "/a2a"
A2A_REST_PATH = "/a2a/rest"


class McpHttpApp:
    """ASGI app for POST /mcp (and the GET / DELETE the transport answers with 405 in stateless mode)."""

    def __init__(self) -> None:
        self._manager: Any = None
        self._ready: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None

    async def _start(self) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings

        from agents.mcp_server import build_remote_server

        server = build_remote_server()
        # Agents of other repositories call from anywhere: the bearer key authenticates them, not the Host.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self._manager = StreamableHTTPSessionManager(
            app=server._lowlevel_server, stateless=True, json_response=True, security_settings=security
        )
        self._ready = asyncio.Event()
        ready = self._ready

        async def run() -> None:
            async with self._manager.run():
                ready.set()
                await asyncio.Event().wait()  # until the process ends

        self._runner = asyncio.get_running_loop().create_task(run())
        await ready.wait()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._ready is None:
            await self._start()
        else:
            await self._ready.wait()
        await self._manager.handle_request(scope, receive, send)


mcp_http_app = McpHttpApp()


# --- A2A 1.0 ----------------------------------------------------------------------------------------------


class A2AHttpApp:
    """ASGI app for the A2A door (agents.a2a_server): the Agent Card, JSON-RPC at /a2a and HTTP+JSON under
    /a2a/rest, with the SDK's Starlette routes around our RequestHandler. Built on first use."""

    def __init__(self) -> None:
        self._app: Any = None

    def _build(self) -> Any:
        from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes, create_rest_routes
        from django.conf import settings
        from starlette.applications import Starlette
        from starlette.routing import Route

        from agents import a2a_server
        from agents.a2a_conformance import conformance_handler

        class ContextBuilder(DefaultServerCallContextBuilder):
            """What a handler needs of the HTTP request: the bearer key (the caller is looked up in the
            handler, off the event loop), this node's base URL, the client's address (anonymous quotas)."""

            def build(self, request):
                context = super().build(request)
                context.state["authorization"] = request.headers.get("authorization")
                context.state["base_url"] = str(request.base_url).rstrip("/")
                context.state["client_address"] = request.client.host if request.client else ""
                if "caller" in request.scope.get("state", {}):  # looked up by _signature_gate already
                    context.state["caller"] = request.scope["state"]["caller"]
                return context

        conformance = None
        if settings.A2A_CONFORMANCE:
            conformance = conformance_handler(a2a_server.agent_card("http://127.0.0.1"))
        handler = a2a_server.FederationRequestHandler(conformance=conformance)
        builder = ContextBuilder()
        routes = [
            Route(A2A_CARD_PATH, card_endpoint, methods=["GET"]),
            *create_jsonrpc_routes(handler, A2A_JSONRPC_PATH, context_builder=builder),
            *create_jsonrpc_routes(handler, A2A_JSONRPC_PATH + "/", context_builder=builder),
            *create_rest_routes(handler, context_builder=builder, path_prefix=A2A_REST_PATH),
        ]
        return Starlette(routes=routes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._build()
        path = scope["path"]
        if logs.a2a_debug_enabled():
            receive, send = _debug_logged(scope, receive, send)
        if path.startswith(A2A_REST_PATH + "/"):
            send = _json_content_type(send)
        elif path.rstrip("/") == A2A_JSONRPC_PATH and scope["method"] == "POST" and not _is_json(scope):
            await _content_type_not_supported(scope, receive, send)
            return
        if scope["method"] == "POST":
            receive = await _signature_gate(scope, receive, send)
            if receive is None:
                return
        await self._app(scope, receive, send)


def _debug_logged(scope: dict, receive: Any, send: Any) -> tuple[Any, Any]:
    """`serve --debug-a2a`: `receive` and `send` that log the whole request and the whole answer, once each,
    redacted (federation_site.logs.a2a_debug)."""
    url = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
    request_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    received: list[bytes] = []
    answer: dict = {"body": []}

    async def logged_receive() -> dict:
        message = await receive()
        if message["type"] == "http.request":
            received.append(message.get("body", b""))
            if not message.get("more_body"):
                body = _as_json(b"".join(received))
                logs.a2a_debug("in", "request", url=f"{scope['method']} {url}", headers=request_headers, body=body)
        return message

    async def logged_send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            answer["body"].append(message.get("body", b""))
            if not message.get("more_body"):
                body = _as_json(b"".join(answer["body"]))
                logs.a2a_debug(
                    "out", "response", url=f"{answer.get('status')} {url}", headers=answer.get("headers"), body=body
                )
        await send(message)

    return logged_receive, logged_send


def _as_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")


async def _signature_gate(scope: dict, receive: Any, send: Any) -> Any:
    """The RFC 9421 check of an A2A message (issue 17, remotes.auth.signature_check), as the REST door does it:
    a remote whose config requires signatures gets 401 for an unsigned or wrongly signed message; a verified
    signature is kept with the audit rows of the call. Returns the `receive` that replays the body, or None when
    the 401 was sent."""
    from asgiref.sync import sync_to_async
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from audit.services import received_signature
    from remotes.auth import bearer_token, caller_for_token, signature_check
    from remotes.signatures import SignatureProblem

    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    body = b"".join(chunks)
    request = Request(scope)
    headers = dict(request.headers)

    def check():
        caller = caller_for_token(bearer_token(headers.get("authorization")))
        # Looked up once: a JWT is good for one use, so the handler takes this caller (ContextBuilder).
        scope.setdefault("state", {})["caller"] = caller
        return signature_check(caller, method="POST", url=str(request.url), headers=headers, body=body)

    try:
        verified = await sync_to_async(check)()
    except SignatureProblem as exc:
        await JSONResponse({"error": "unauthorized", "detail": str(exc)}, status_code=401)(scope, receive, send)
        return None
    received_signature.set(verified.as_record() if verified else None)
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# What a2a-sdk 1.3 leaves to its user (the conformance kit's MUST requirements, ../shared/tools/README.md):
# HTTP+JSON answers are `application/json` (the SDK says application/a2a+json), and a JSON-RPC request that is
# not JSON by its Content-Type is a ContentTypeNotSupportedError (-32005), not a parse error.
_JSON_TYPES = ("application/json", "application/a2a+json")


def _is_json(scope: dict) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower() in _JSON_TYPES
    return True  # none given: read it as JSON, as the SDK does


def _json_content_type(send: Any) -> Any:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                (name, b"application/json" if name == b"content-type" and value == b"application/a2a+json" else value)
                for name, value in message.get("headers", [])
            ]
        await send(message)

    return wrapped


async def _content_type_not_supported(scope: dict, receive: Any, send: Any) -> None:
    from a2a.server.request_handlers.response_helpers import build_error_response
    from a2a.types import ContentTypeNotSupportedError
    from starlette.responses import JSONResponse

    error = ContentTypeNotSupportedError("send the JSON-RPC request as Content-Type: application/json")
    await JSONResponse(build_error_response(None, error))(scope, receive, send)


async def card_endpoint(request: Any) -> Any:
    """GET /.well-known/agent-card.json: the card for the host the caller used, with an ETag and a max-age."""
    import hashlib
    import json
    from email.utils import formatdate

    from a2a.server.request_handlers.response_helpers import agent_card_to_dict
    from asgiref.sync import sync_to_async
    from starlette.responses import JSONResponse, Response

    from agents.a2a_server import agent_card, card_last_modified

    card = await sync_to_async(agent_card)(str(request.base_url))
    body = agent_card_to_dict(card)
    etag = '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=300"}
    modified = card_last_modified()
    if modified is not None:
        headers["Last-Modified"] = formatdate(modified, usegmt=True)
    if etag in (request.headers.get("if-none-match") or ""):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body, headers=headers)


def is_a2a_path(path: str) -> bool:
    return path == A2A_CARD_PATH or path == A2A_JSONRPC_PATH or path.startswith(A2A_JSONRPC_PATH + "/")


a2a_http_app = A2AHttpApp()
