"""The scale-out profile of the WebSocket: two daphne processes serving one repository and one PostgreSQL
database, woken through one Redis channel layer. An event committed through one process reaches a client
connected to the other.

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 6379 (skips without them, fails under
FEDERATION_REQUIRE_SERVICES=1, as tests/requests_app/test_scale_out.py).
"""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
import requests

from tests.nodes import Node, free_port
from tests.requests_app.test_scale_out import REDIS, pg_database, require  # noqa: F401 (pg_database: a fixture)

pytestmark = pytest.mark.slow


def _second_process(node: Node, name: str) -> Node:
    """Another daphne process for the same repository (and so the same database and channel layer)."""
    twin = copy.copy(node)
    twin.port = free_port()
    twin.proc = None
    twin.access_log = node.access_log.with_name(f"{name}-access.log")
    twin.log_path = node.log_path.with_name(f"{name}-node.log")
    return twin


def test_an_event_committed_through_one_process_reaches_a_socket_on_the_other_through_redis(
    tmp_path,
    pg_database,  # noqa: F811
):
    require(REDIS, "Redis")
    from websockets.sync.client import connect

    profile = {
        "DATABASE_URL": pg_database,
        "CHANNEL_LAYER_URL": f"redis://127.0.0.1:6379/{8 + uuid.uuid4().int % 8}",
        "CHANNEL_LAYER_PREFIX": f"test-{uuid.uuid4().hex[:10]}",
        # No outbox polling: a wake-up can only come through Redis, so the test proves that path.
        "WEBSOCKET_POLL_SECONDS": "0",
    }
    first = Node(tmp_path, "api-service", env=profile, worker=False)
    added = first.cli("remote", "add", "github.com/org/frontend", "--trust", "trusted", "--no-discover")
    assert added.code == 0, added.err
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    config = first.config()
    remote = next(r for r in config["remote_repos"] if r["url"] == "github.com/org/frontend")
    remote.setdefault("permissions", {}).setdefault("mutate", {})["allowed"] = True  # carried out at once
    first.write_config(config)

    first.start()  # migrates the database; then the second process starts on it
    second = _second_process(first, "api-service-2").start()
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with connect(f"ws://127.0.0.1:{first.port}/api/v1/ws", additional_headers=headers) as ws:
            ws.send(json.dumps({"type": "subscribe", "watch": {"entity_type": "issue"}}))
            subscribed = json.loads(ws.recv(timeout=10))
            assert subscribed["type"] == "subscribed"

            started = time.monotonic()
            answer = requests.post(
                f"{second.api}/federation/mutate",
                json={
                    "type": "mutate",
                    "from": "github.com/org/frontend",
                    "operation": "create_issue",
                    "data": {"title": "Made through the second process", "labels": ["api"]},
                    "metadata": {"request_id": "req-ws-scale-1", "requester": "test"},
                },
                headers=headers,
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "completed", answer.json()
            message = json.loads(ws.recv(timeout=10))
            elapsed = time.monotonic() - started
            assert message["type"] == "event", message
            assert message["event"]["type"] == "issue_created"
            assert message["event"]["seq"] > subscribed["head_seq"]  # after the request's own (local) events
            assert message["event"]["entity"]["title"] == "Made through the second process"
            assert elapsed < 10
    finally:
        second.stop()
        first.stop()
