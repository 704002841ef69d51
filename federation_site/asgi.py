import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.settings")

# Django must be set up before anything imports models (the WebSocket consumer does).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agents.asgi import PATH as MCP_PATH  # noqa: E402
from agents.asgi import a2a_http_app, is_a2a_path, mcp_http_app  # noqa: E402
from audit.services import BATCH_READS_ENV, batch_reads  # noqa: E402
from federation.fastdoor import asgi_answer, is_fast  # noqa: E402
from federation_site import logs  # noqa: E402
from subscriptions.routing import websocket_urlpatterns  # noqa: E402


async def http(scope, receive, send):
    """Django, except the agents' doors (agents/asgi.py): /mcp (MCP), and the A2A card, /a2a and /a2a/rest; and
    the fast door (federation/fastdoor.py): GET /api/v1/federation/info and POST /api/v1/federation/query, when
    `is_fast` says Django's middleware would add nothing to them (the same implementation as their DRF views).
    Every line logged while answering carries the request's correlation id (federation_site/logs.py): the
    caller's X-Correlation-ID, else a new one, which the federation endpoints answer with. Not for /mcp: the
    MCP SDK runs its tools in tasks of the session manager that the first request started, which would keep
    that request's context for good."""
    if scope["path"] == MCP_PATH or scope["path"].startswith(MCP_PATH + "/"):
        await mcp_http_app(scope, receive, send)
        return
    with logs.bound(correlation_id=logs.correlation_id_of(scope.get("headers") or ())):
        if is_fast(scope):
            await asgi_answer(scope, receive, send)
        elif is_a2a_path(scope["path"]):
            await a2a_http_app(scope, receive, send)
        else:
            await django_asgi_app(scope, receive, send)


# No origin check in front of the WebSocket: remote agents send no Origin and authenticate with their key. The
# session (the dashboard's live pages) counts only from this node's own origin; subscriptions.consumers checks.
application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)

# `serve` asks its web processes to audit reads in batches (at most 0.1 s late, written at exit too).
if os.environ.get(BATCH_READS_ENV) == "1":
    batch_reads()

# Everything loaded so far lives as long as the process: keep it out of the garbage collector's full passes,
# which otherwise cost ~90 ms every few dozen requests (measured by benchmarks/bench_query.py).
gc.freeze()
