"""The agent doors' latency next to REST (issue 12): one query answered by a real node, sent as
- `POST /api/v1/federation/query` (REST, a keep-alive `requests.Session`),
- the `query` tool of the node's MCP door at `/mcp` (the official MCP client over streamable HTTP, one session),
- SendMessage carrying the query message over A2A 1.0 (the official `a2a-sdk` client, JSON-RPC and HTTP+JSON),
- and, for a local agent, the `issue_list` tool of `sudocode-fed mcp` over stdio (the official client).

The node is `sudocode-fed serve --no-worker` on a fresh repository holding one corpus data set (default: the
largest); the caller is a remote at trust level verified. Every call is timed one by one after a warm-up. Prints
one JSON document on stdout; progress goes to stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_agents.py [--calls N] [--dataset NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.test_settings")

import requests  # noqa: E402
from common import corpus_dir, largest_dataset, percentile, progress  # noqa: E402

from tests.conftest import cli_env  # noqa: E402
from tests.nodes import Node  # noqa: E402

QUERY = {"entity": "issue", "filters": {"status": "open"}, "limit": 50}


def figures(samples: list[float]) -> dict:
    return {
        "calls": len(samples),
        "p50_ms": round(percentile(samples, 0.5), 2),
        "p90_ms": round(percentile(samples, 0.9), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
    }


def rest(node: Node, key: str, calls: int) -> list[float]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    out = []
    for i in range(calls + 10):
        started = time.perf_counter()
        answer = session.post(f"{node.api}/federation/query", json=QUERY, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        answer.raise_for_status()
        if i >= 10:
            out.append(elapsed)
    return out


async def mcp_http(node: Node, key: str, calls: int) -> tuple[list[float], int]:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    out = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        streamable_http_client(f"{node.base}/mcp", http_client=http) as streams,
        ClientSession(*streams) as session,
    ):
        await session.initialize()
        for i in range(calls + 10):
            started = time.perf_counter()
            result = await session.call_tool("query", QUERY)
            elapsed = (time.perf_counter() - started) * 1000
            assert not result.is_error, result.content
            if i >= 10:
                out.append(elapsed)
        return out, len(result.structured_content["results"])


async def a2a(node: Node, key: str, calls: int, binding: str) -> tuple[list[float], int]:
    import httpx
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
    from a2a.types import Message, Part, Role, SendMessageRequest
    from google.protobuf.json_format import MessageToDict, ParseDict
    from google.protobuf.struct_pb2 import Value

    body = ParseDict({"type": "query", "query": QUERY}, Value())
    out = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        card = await A2ACardResolver(http, node.base).get_agent_card()
        config = ClientConfig(streaming=False, httpx_client=http, supported_protocol_bindings=[binding])
        client = ClientFactory(config).create(card)
        for i in range(calls + 10):
            request = SendMessageRequest(
                message=Message(role=Role.ROLE_USER, message_id=f"bench-{i}", parts=[Part(data=body)])
            )
            started = time.perf_counter()
            [answer] = [event async for event in client.send_message(request)]
            elapsed = (time.perf_counter() - started) * 1000
            if i >= 10:
                out.append(elapsed)
        page = MessageToDict(answer.message.parts[0].data)
        await client.close()
    return out, len(page["results"])


async def mcp_stdio(node: Node, calls: int) -> list[float]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sudocode_cli.main", "--repo", str(node.repo), "mcp"], env=cli_env()
    )
    out = []
    async with stdio_client(params) as streams, ClientSession(*streams) as session:
        await session.initialize()
        for i in range(calls + 10):
            started = time.perf_counter()
            result = await session.call_tool("issue_list", {"status": ["open"], "limit": 50})
            elapsed = (time.perf_counter() - started) * 1000
            assert not result.is_error, result.content
            if i >= 10:
                out.append(elapsed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per door (default: %(default)s)")
    parser.add_argument("--dataset", help="corpus data set (default: the one with the most issues)")
    args = parser.parse_args()
    dataset = args.dataset or largest_dataset(corpus_dir())
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(Path(tmp), "api-service", dataset=dataset, worker=False)
        node.start()
        try:
            added = node.cli("remote", "add", "github.com/org/bench-agent", "--trust", "verified", "--no-discover")
            key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
            config = node.config()
            config["rate_limits"]["per_repo"]["queries_per_minute"] = 10**6
            config["policies"]["incoming_requests"]["query"]["rate_limit"]["requests_per_minute"] = 10**6
            config["rate_limits"]["global"]["cross_repo_bandwidth_mb_per_day"] = 10**6
            node.write_config(config)
            progress(f"REST: {args.calls} queries ...")
            rest_ms = rest(node, key, args.calls)
            progress(f"MCP over HTTP: {args.calls} query tool calls ...")
            http_ms, results = asyncio.run(mcp_http(node, key, args.calls))
            progress(f"A2A JSON-RPC: {args.calls} SendMessage (query) ...")
            a2a_jsonrpc_ms, a2a_results = asyncio.run(a2a(node, key, args.calls, "JSONRPC"))
            assert a2a_results == results, (a2a_results, results)
            progress(f"A2A HTTP+JSON: {args.calls} SendMessage (query) ...")
            a2a_rest_ms, _ = asyncio.run(a2a(node, key, args.calls, "HTTP+JSON"))
            progress(f"MCP over stdio: {args.calls} issue_list tool calls ...")
            stdio_ms = asyncio.run(mcp_stdio(node, args.calls))
        finally:
            node.stop()
    print(
        json.dumps(
            {
                "benchmark": "one query through each door of a node",
                "dataset": dataset,
                "query": QUERY,
                "results_per_answer": results,
                "rest_federation_query": figures(rest_ms),
                "mcp_http_query_tool": figures(http_ms),
                "a2a_jsonrpc_send_message_query": figures(a2a_jsonrpc_ms),
                "a2a_http_json_send_message_query": figures(a2a_rest_ms),
                "mcp_stdio_issue_list_tool": figures(stdio_ms),
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
