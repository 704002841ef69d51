"""Two replicas of one node (issue 16's scale-out profile): two `serve` processes on two ports, each with its own
Celery worker and beat, sharing one repository, one PostgreSQL database, one Redis broker and channel layer.

Requests that race across the replicas are carried out once (the same request id sent to both makes one issue),
concurrent creates through both lose nothing, both answer queries alike, and a webhook subscriber hears each event
exactly once although two workers could send it.

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 6379 (skips without them, fails under
FEDERATION_REQUIRE_SERVICES=1, as tests/requests_app/test_scale_out.py).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.nodes import Node, eventually
from tests.requests_app.test_scale_out import PG, REDIS, require
from tests.subscriptions.test_websocket_scale_out import _second_process

pytestmark = pytest.mark.slow

FRONTEND = "github.com/org/frontend"


class Hook:
    """A subscriber's node, as far as the test needs one: records the event id of every webhook sent to
    /webhooks, answers 200 to that and to anything else (the request callbacks of the creates)."""

    def __init__(self) -> None:
        self.event_ids: list[str] = []
        event_ids = self.event_ids

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/webhooks":
                    event_ids.append(self.headers["X-Sudocode-Event-Id"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    require(PG, "PostgreSQL")
    require(REDIS, "Redis")
    import psycopg

    name = f"fed_replicas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    redis_db = 8 + uuid.uuid4().int % 8
    profile = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "CHANNEL_LAYER_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "CHANNEL_LAYER_PREFIX": f"test-{uuid.uuid4().hex[:10]}",
    }
    hook = Hook()
    first = Node(tmp_path_factory.mktemp("replicas"), "api-service", env=profile)
    # The subscriber's declared endpoint is the hook's origin, so its callback URL is one an admin vouched for.
    added = first.cli("remote", "add", FRONTEND, "--trust", "trusted", "--endpoint", hook.origin, "--no-discover")
    assert added.code == 0, added.err
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    config = first.config()
    remote = next(r for r in config["remote_repos"] if r["url"] == FRONTEND)
    # Carried out at once, and more of them than the default hourly limit.
    remote.setdefault("permissions", {})["mutate"] = {"allowed": True, "mutations_per_hour": 1000}
    first.write_config(config)
    first.start(timeout=60)  # migrates the database; then the second replica starts on it
    second = _second_process(first, "api-service-2").start(timeout=60)
    try:
        yield first, second, {"Authorization": f"Bearer {key}"}, hook
    finally:
        second.stop()
        first.stop()
        hook.server.shutdown()
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create(node: Node, headers: dict, title: str, request_id: str) -> requests.Response:
    message = {
        "type": "mutate",
        "from": FRONTEND,
        "operation": "create_issue",
        "data": {"title": title, "labels": ["api"]},
        "metadata": {"request_id": request_id, "requester": "test"},
    }
    return requests.post(f"{node.api}/federation/mutate", json=message, headers=headers, timeout=60)


def issues_in_file(node: Node) -> list[dict]:
    lines = (node.repo / ".sudocode" / "issues.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_same_request_sent_to_both_replicas_at_once_creates_one_issue(replicas):
    first, second, headers, _ = replicas
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: create((first, second)[i % 2], headers, "Raced", "req-race-1"), range(16)))
    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers if a.status_code != 200]
    results = {json.dumps(a.json().get("result"), sort_keys=True) for a in answers}
    assert len(results) == 1, f"the replicas answered the same request differently: {results}"
    assert [i["title"] for i in issues_in_file(first)].count("Raced") == 1


def test_concurrent_creates_through_both_replicas_all_land_in_the_file(replicas):
    first, second, headers, _ = replicas
    titles = [f"Parallel {n}" for n in range(20)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: create((first, second)[n % 2], headers, titles[n], f"req-par-{n}"), range(20))
        )
    assert [a.status_code for a in answers] == [200] * 20, [a.text[:3000] for a in answers if a.status_code != 200]
    assert {a.json().get("status") for a in answers} == {"completed"}, [a.text for a in answers]
    in_file = issues_in_file(first)
    assert sorted(i["title"] for i in in_file if i["title"].startswith("Parallel ")) == sorted(titles)
    assert len({i["id"] for i in in_file}) == len(in_file), "two issues share an id"


def test_both_replicas_answer_a_query_alike(replicas):
    first, second, headers, _ = replicas
    query = {"type": "query", "from": FRONTEND, "query": {"entity": "issue", "filters": {"status": ["open"]}}}
    answers = [
        requests.post(f"{node.api}/federation/query", json=query, headers=headers, timeout=30).json()
        for node in (first, second)
    ]
    ids = [sorted(r["id"] for r in answer["results"]) for answer in answers]
    assert ids[0] == ids[1] and len(ids[0]) >= 21


def test_a_webhook_subscriber_hears_each_event_once_from_two_workers(replicas):
    first, second, headers, hook = replicas
    subscribe = {
        "type": "subscribe",
        "from": FRONTEND,
        "subscription_id": "sub-replicas",
        "watch": {"entity_type": "issue", "filters": {"labels": ["webhooked"]}},
        "callback": {"url": f"{hook.origin}/webhooks", "auth": {"type": "bearer", "token": "whk-replicas"}},
    }
    answer = requests.post(f"{first.api}/federation/subscribe", json=subscribe, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    for n in range(6):
        message = {
            "type": "mutate",
            "from": FRONTEND,
            "operation": "create_issue",
            "data": {"title": f"Webhooked {n}", "labels": ["webhooked"]},
            "metadata": {"request_id": f"req-hook-{n}", "requester": "test"},
        }
        node = (first, second)[n % 2]
        posted = requests.post(f"{node.api}/federation/mutate", json=message, headers=headers, timeout=60)
        assert posted.json()["status"] == "completed", posted.text

    eventually(lambda: len(set(hook.event_ids)) >= 6, timeout=60, what="six events at the hook")

    def settled() -> bool:
        listed = first.cli_json("subscriptions", "list", "--direction", "incoming")
        row = next(s for s in listed if s["subscription_id"] == "sub-replicas")
        return row["delivery_status"] == "idle" and row["event_count"] >= 6

    # Once the subscription's cursor is idle past every event, nothing is left for either worker to send.
    eventually(settled, timeout=60, what="the subscription's deliveries settled")
    repeated = {event_id: n for event_id, n in Counter(hook.event_ids).items() if n > 1}
    assert not repeated, f"events sent more than once: {repeated}"
