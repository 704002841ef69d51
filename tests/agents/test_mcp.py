"""The MCP door (issue 12) with the official MCP client (`mcp.ClientSession` over stdio, spawning
`sudocode-fed mcp`): the seed's Use Case 1 played through tools alone between two real nodes, a delegation
through `cross_repo_delegate`, and errors an agent can act on."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from tests.conftest import cli_env
from tests.nodes import Node, eventually, link
from tests.requests_app.test_use_case_1 import decide, staff_session, start_together, stop_together

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "maintainer", "a-long-enough-password-1"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp")
    frontend = Node(root, "frontend")
    api = Node(root, "api-service")
    config = frontend.config()
    config["endpoints"] = {"rest": frontend.api}  # where api-service calls back (a watch asks it to)
    frontend.write_config(config)
    try:
        start_together(frontend, api)
        api.create_staff(STAFF, PASSWORD)
        link(frontend, api, trust="verified")
        yield frontend, api
    finally:
        stop_together(frontend, api)


@asynccontextmanager
async def agent(node: Node):
    """An MCP client session with `sudocode-fed mcp` running in `node`'s repository, as a coding agent has."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sudocode_cli.main", "--repo", str(node.repo), "mcp"],
        env=cli_env(**node.env),
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    async with stdio_client(params) as streams, ClientSession(*streams) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments) -> dict:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


def test_the_tools_and_their_schemas(nodes):
    frontend, _ = nodes

    async def scenario():
        async with agent(frontend) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert {"cross_repo_query", "cross_repo_create_issue", "cross_repo_watch", "cross_repo_delegate",
                    "cross_repo_events", "request_status", "issue_list", "issue_show", "issue_create",
                    "issue_update", "why_blocked", "remote_list"} <= set(tools)  # fmt: skip
            query = tools["cross_repo_query"]
            assert {"repo_url", "entity", "filters"} <= set(query.input_schema["properties"])
            assert set(query.output_schema["properties"]) >= {"results", "total", "next_cursor"}
            create = tools["cross_repo_create_issue"]
            assert {"repo_url", "title", "description", "auto_approve"} <= set(create.input_schema["properties"])
            assert {"request_id", "status", "approval_url"} <= set(create.output_schema["properties"])

    asyncio.run(scenario())


def test_use_case_1_through_mcp_tools_alone(nodes):
    frontend, api = nodes
    assert api.cli("issue", "create", "Add OAuth token endpoint", "--tags", "api").code == 0

    async def scenario():
        async with agent(frontend) as session:
            # The agent finds the work frontend needs, and what api-service already has open.
            page = await call(session, "issue_create", title="Add user profile page")
            origin = page["id"]
            found = await call(session, "cross_repo_query", repo_url=api.identity, entity="issue",
                               filters={"status": "open"})  # fmt: skip
            assert "Add OAuth token endpoint" in {r["title"] for r in found["results"]}

            # It asks api-service for the endpoint; api-service's policy sends it to a maintainer.
            asked = await call(session, "cross_repo_create_issue", repo_url=api.identity,
                               title="Add user profile endpoint", description="Frontend needs GET /users/:id",
                               labels=["api"], discovered_from=origin)  # fmt: skip
            assert asked["status"] == "pending" and asked["direction"] == "outgoing"
            assert asked["approval_url"].endswith(f"/approvals/{asked['request_id']}")
            assert asked["decision"]["outcome"] == "human"

            # A maintainer approves in the dashboard; the agent follows the request until it is done.
            maintainer = await asyncio.to_thread(staff_session, api)
            answer = await asyncio.to_thread(decide, maintainer, api, asked["request_id"], "approve")
            assert answer.status_code == 302

            async def completed():
                for _ in range(60):
                    status = await call(session, "request_status", request_id=asked["request_id"])
                    if status["status"] == "completed":
                        return status
                    await asyncio.sleep(0.3)
                raise AssertionError(f"still {status['status']}")

            done = await completed()
            created = done["created"]
            assert created["canonical_ref"].startswith("org/api-service#")

            # Its issue is now blocked by the new remote issue; it watches that issue (already watched by itself).
            shown = await call(session, "issue_show", id=origin)
            assert shown["status"] == "blocked"
            watch = {"entity_type": "issue", "filters": {"ids": [created["id"]]}}
            watched = await call(session, "cross_repo_watch", repo_url=api.identity, watch_config=watch)
            assert watched["delivery_status"] == "confirmed"

            # api-service closes it; the agent sees its issue unblock, with no sync.
            assert api.cli("issue", "close", created["id"]).code == 0

            async def unblocked():
                for _ in range(60):
                    shown = await call(session, "issue_show", id=origin)
                    if shown["status"] == "open":
                        return shown
                    await asyncio.sleep(0.3)
                raise AssertionError("the issue stayed blocked")

            await unblocked()
            why = await call(session, "why_blocked", id=origin)
            assert why["blocked"] is False
            seen = await call(session, "cross_repo_events", since=0)
            closing = [e for e in seen["events"] if e["entity"]["id"] == created["id"]]
            assert closing and closing[-1]["changes"]["status"]["to"] == "closed"
            assert closing[-1]["from"] == api.identity and closing[-1]["type"] == "issue_updated"
            later = await call(session, "cross_repo_events", since=seen["cursor"])
            assert later["events"] == [] and later["cursor"] == seen["cursor"]

            # The same issue as a resource.
            resource = await session.read_resource(f"sudocode://issue/{origin}")
            assert json.loads(resource.contents[0].text)["id"] == origin

    asyncio.run(scenario())


def test_use_case_2_through_cross_repo_delegate(nodes):
    frontend, api = nodes
    spec = frontend.cli_json("spec", "create", "Design system")["id"]

    async def scenario():
        async with agent(frontend) as session:
            sent = await call(session, "cross_repo_delegate", repo_url=api.identity, type="spec",
                              title="Component tokens", context={"urgency": "low"}, from_id=spec)  # fmt: skip
            assert sent["type"] == "delegate" and sent["status"] == "pending"
            return sent["request_id"]

    request_id = asyncio.run(scenario())
    accepted = api.cli("delegate", "accept", request_id)
    assert accepted.code == 0, accepted.err

    def linked():
        rels = json.loads(frontend.cli("spec", "show", spec, "--format", "json").out).get("cross_repo") or []
        return [r for r in rels if r["type"] == "delegated-to"]

    eventually(linked, what="the delegator's spec linking to the accepted one", timeout=20)


def test_errors_say_what_to_do(nodes):
    frontend, api = nodes

    async def scenario():
        async with agent(frontend) as session:
            unknown = await refused(session, "cross_repo_query", repo_url="github.com/org/nowhere")
            assert "no remote 'github.com/org/nowhere'" in unknown and "remote list" in unknown
            bad = await refused(session, "issue_create", title="   ")
            assert "title" in bad
            missing = await refused(session, "issue_show", id="i-none")
            assert "not found" in missing
            # api-service does not let frontend filter on what its policy refuses: the remote's 400, verbatim.
            odd = await refused(session, "cross_repo_query", repo_url=api.identity, filters={"colour": "red"})
            assert "colour" in odd
            with pytest.raises(MCPError, match="i-none"):
                await session.read_resource("sudocode://issue/i-none")
            negative = await refused(session, "cross_repo_events", since=-1)
            assert "since" in negative
            ahead = await call(session, "cross_repo_events", since=10**6)
            assert ahead["events"] == [] and ahead["cursor"] < 10**6  # never a cursor past what exists
            listed = await call(session, "request_list", direction="outgoing")
            assert listed["count"] >= 1 and all(r["direction"] == "outgoing" for r in listed["requests"])
            one_status = await call(session, "issue_list", status="open")  # a single status is taken too
            assert all(i["status"] == "open" for i in one_status["issues"])

    asyncio.run(scenario())


def test_a_listening_agent_hears_when_an_issue_resource_changes(nodes):
    from mcp.client import Client
    from mcp.shared.subscriptions import ResourceUpdated

    frontend, _ = nodes
    created = frontend.cli_json("issue", "create", "Watched by the agent", "--format", "json")
    uri = f"sudocode://issue/{created['id']}"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sudocode_cli.main", "--repo", str(frontend.repo), "mcp"],
        env=cli_env(**frontend.env),
        cwd=str(Path(__file__).resolve().parents[2]),
    )

    async def scenario():
        async with Client(params) as client, client.listen(resource_subscriptions=[uri]) as subscription:
            assert uri in subscription.honored.resource_subscriptions
            # Another process (a maintainer's CLI) changes the issue; the agent is told, and reads it again.
            changed = await asyncio.to_thread(frontend.cli, "issue", "update", created["id"], "--status", "in_progress")
            assert changed.code == 0, changed
            event = await asyncio.wait_for(anext(aiter(subscription)), timeout=20)
            assert isinstance(event, ResourceUpdated) and event.uri == uri
            read = await client.read_resource(uri)
            assert json.loads(read.contents[0].text)["status"] == "in_progress"

    asyncio.run(scenario())


# --- the HTTP door at /mcp: agents of other repositories, judged as their repository -------------------------


@asynccontextmanager
async def remote_agent(node: Node, key: str | None):
    """An MCP client session over streamable HTTP to `node`'s /mcp, presenting `key` (a remote's API key)."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{node.base}/mcp", http_client=http) as streams,
        ClientSession(*streams) as session,
    ):
        await session.initialize()
        yield session


def test_a_remote_agent_over_http_can_do_what_its_repository_may(nodes):
    frontend, api = nodes
    added = api.cli("remote", "add", "github.com/org/agent-repo", "--trust", "verified", "--no-discover")
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    assert api.cli("issue", "create", "Visible to agents", "--tags", "mcp-http").code == 0

    async def scenario():
        async with remote_agent(api, key) as session:
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"discover", "query", "request_issue", "delegate", "request_status"} <= tools
            found = await call(session, "discover")
            assert found["capabilities"]["trust_level"] == "verified"
            assert found["capabilities"]["operations"] == [
                "discover", "query_issues", "query_specs", "create_issues", "create_specs", "update_issues",
                "delegate", "subscribe",
            ]  # fmt: skip
            page = await call(session, "query", entity="issue", filters={"labels": ["mcp-http"]})
            assert [r["title"] for r in page["results"]] == ["Visible to agents"]
            asked = await call(session, "request_issue", title="Agent's request", request_id="req-mcp-http-1")
            assert asked["status"] == "pending_approval" and asked["decision"]["outcome"] == "human"
            again = await call(session, "request_issue", title="Agent's request", request_id="req-mcp-http-1")
            assert again["request_id"] == asked["request_id"]  # idempotent, like the REST door
            status = await call(session, "request_status", request_id="req-mcp-http-1")
            assert status["status"] == "pending_approval"
            cursor = await refused(session, "query", entity="issue", cursor="zz")
            assert cursor.endswith("invalid: query.cursor: not a cursor this node gave out") or "query.cursor" in cursor
        async with remote_agent(api, "sfk_not-a-key-of-this-node") as stranger:
            unknown = await refused(stranger, "discover")
            assert "the key presented is not one this node issued" in unknown
        async with remote_agent(api, None) as anonymous:
            seen = await call(anonymous, "discover")
            assert seen["capabilities"]["operations"] == ["discover", "query_issues", "query_specs"]
            answer = await refused(anonymous, "request_issue", title="Nope", request_id="req-mcp-http-2")
            assert "forbidden: an anonymous caller" in answer
            hidden = await refused(anonymous, "request_status", request_id="req-mcp-http-1")
            assert "not found" in hidden

    asyncio.run(scenario())
    pending = api.cli_json("requests", "list", "--direction", "incoming")
    assert [r["from"] for r in pending if r["request_id"] == "req-mcp-http-1"] == ["github.com/org/agent-repo"]


def test_the_same_forbidden_request_through_every_door_gets_the_same_refusal_and_an_audit_row(nodes):
    import requests

    _, api = nodes
    added = api.cli("remote", "add", "github.com/org/stranger", "--trust", "untrusted", "--no-discover")
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    reason = "github.com/org/stranger has trust level untrusted, which cannot request changes"
    message = {
        "type": "mutate",
        "from": "github.com/org/stranger",
        "operation": "create_issue",
        "data": {"title": "Let me in"},
        "metadata": {"request_id": "req-door-rest"},
    }
    headers = {"Authorization": f"Bearer {key}"}
    rest = requests.post(f"{api.api}/federation/mutate", json=message, headers=headers, timeout=10)
    assert rest.status_code == 403 and reason in rest.json()["detail"]
    a2a = requests.post(
        f"{api.api}/federation/a2a",
        json={**message, "metadata": {"request_id": "req-door-a2a"}},
        headers=headers,
        timeout=10,
    )
    assert a2a.status_code == 403 and reason in a2a.json()["detail"]

    async def over_mcp():
        async with remote_agent(api, key) as session:
            return await refused(session, "request_issue", title="Let me in", request_id="req-door-mcp")

    assert reason in asyncio.run(over_mcp())

    async def over_a2a_protocol():  # A2A 1.0 through the official client: an agent message with the REST body
        from tests.agents.test_a2a import a2a_client, data_message, data_of, send

        async with a2a_client(api, key) as client:
            [answer] = await send(client, data_message({**message, "metadata": {"request_id": "req-door-a2a-1"}}))
            return data_of(answer.message)

    refused_body = asyncio.run(over_a2a_protocol())
    assert refused_body["error"] == "forbidden" and reason in refused_body["detail"]
    audit = api.cli_json("audit", "list", "--remote", "github.com/org/stranger", "--operation", "mutate")
    refusals = {row["request_id"]: row for row in audit}
    for request_id in ("req-door-rest", "req-door-a2a", "req-door-mcp", "req-door-a2a-1"):
        assert refusals[request_id]["status"] == "failed" and reason in refusals[request_id]["error"]

    # The fourth door: the CLI of a repository api-service trusts no more (the last test here: it demotes frontend).
    frontend, _ = nodes
    assert api.cli("remote", "trust", frontend.identity, "untrusted").code == 0
    sent = frontend.cli_json("remote", "create-issue", api.identity, "--title", "Let me in", "--format", "json")
    cli_reason = f"{frontend.identity} has trust level untrusted, which cannot request changes"
    assert sent["status"] == "failed" and cli_reason in sent["error"], sent
    audit = api.cli_json("audit", "list", "--remote", frontend.identity, "--operation", "mutate")
    assert [row["status"] for row in audit if cli_reason in (row["error"] or "")] == ["failed"]
