"""The streamable HTTP transport of the remote MCP door, mounted at /mcp by federation_site.asgi.

The SDK's session manager needs a task group that lives as long as the server, which Starlette would start in its
lifespan; daphne sends no lifespan events, so the first request starts it, in a task of its own on the server's
event loop. Stateless mode with JSON answers: every POST carries its own bearer key, and the node keeps no MCP
session state between requests (a restart loses nothing, several daphne processes serve alike).
"""

from __future__ import annotations

import asyncio
from typing import Any

PATH = "/mcp"


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
