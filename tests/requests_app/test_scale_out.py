"""The scale-out profile: a node on PostgreSQL with Redis as the Celery broker, end to end.

These need the services this machine (and CI) starts: PostgreSQL on 127.0.0.1:5432 and Redis on 6379. Without
them the tests skip, except under FEDERATION_REQUIRE_SERVICES=1 (.ci/run), where a missing service fails.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
import requests

from tests.nodes import Node, link

pytestmark = pytest.mark.slow

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def require(address: tuple[str, int], what: str) -> None:
    try:
        socket.create_connection(address, 2).close()
    except OSError:
        message = f"{what} does not answer at {address[0]}:{address[1]}"
        if os.environ.get("FEDERATION_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def pg_database():
    require(PG, "PostgreSQL")
    import psycopg

    name = f"fed_scaleout_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_node_on_postgresql_with_a_redis_broker_takes_requests_and_notifies(tmp_path, pg_database, receiver):
    require(REDIS, "Redis")
    url, received = receiver.url, receiver.received
    db = 8 + uuid.uuid4().int % 8  # a Redis database of its own, so parallel runs don't share a queue
    profile = {"DATABASE_URL": pg_database, "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{db}"}
    api = Node(tmp_path, "api-service", env=profile)
    frontend = Node(tmp_path, "frontend", worker=False)
    config = api.config()
    config["notifications"] = {"channels": [{"type": "slack", "webhook_url": url}]}
    api.write_config(config)
    status = api.cli_json("status")
    assert status["database"].startswith("postgresql:")
    api.start()
    try:
        key = link(frontend, api)
        message = {
            "type": "mutate",
            "from": frontend.identity,
            "operation": "create_issue",
            "data": {"title": "Scale-out request", "labels": ["api"]},
            "metadata": {"request_id": "req-scale-1", "requester": "bench"},
        }
        answer = requests.post(
            f"{api.api}/federation/mutate", json=message, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert answer.json()["status"] == "pending_approval"
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [r["request_id"] for r in received] == ["req-scale-1"], "the worker (via Redis) sent no notification"
        pending = api.cli_json("requests", "list", "--status", "pending")
        assert [r["request_id"] for r in pending] == ["req-scale-1"]
    finally:
        api.stop()
