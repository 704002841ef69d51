"""Auto-approved creates arriving together at two web processes (`serve --workers 2`, one SQLite database, one
issues.jsonl): each is carried out in one writer's turn at the file (tracker.sync.write_batch). None is lost or
made twice, each caller gets its own entity, the same request sent twice at once is one entity with one answer,
and the file and the database agree line for line."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.nodes import Node
from tracker import jsonl

pytestmark = pytest.mark.slow

SENDER = "github.com/org/frontend"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("batch"), "api-service", worker=False, workers=2)
    added = node.cli("remote", "add", SENDER, "--trust", "trusted", "--no-discover")
    assert added.code == 0, added.err
    node.key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    config = node.config()
    config["rate_limits"]["per_repo"]["mutations_per_hour"] = 10_000
    config["git"]["commit_remote_changes"] = False
    remote = next(r for r in config["remote_repos"] if r["url"] == SENDER)
    remote.setdefault("permissions", {})["mutate"] = {"allowed": True}  # auto-approved: carried out at once
    node.write_config(config)
    assert node.cli("issue", "create", "Already here").code == 0
    node.start()
    yield node
    node.stop()


def _message(request_id: str, title: str) -> dict:
    return {
        "type": "mutate",
        "from": SENDER,
        "to": "github.com/org/api-service",
        "operation": "create_issue",
        "data": {"title": title, "description": "from the batch test", "priority": 2, "labels": ["batch"]},
        "metadata": {"request_id": request_id, "requester": "test"},
    }


def _send(node: Node, message: dict) -> dict:
    # A new connection each time, so the kernel spreads the requests over both processes.
    reply = requests.post(
        f"{node.api}/federation/mutate", json=message, headers={"Authorization": f"Bearer {node.key}"}, timeout=120
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_creates_sent_together_to_two_processes_are_each_made_once_and_answered_with_their_own_entity(node):
    distinct = [(f"req-{uuid.uuid4().hex[:12]}", f"Batch {n}") for n in range(40)]
    twice = [(f"req-{uuid.uuid4().hex[:12]}", f"Twice {n}") for n in range(8)]
    sends = distinct + twice + twice  # each of `twice` sent again at the same time
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda sent: _send(node, _message(*sent)), sends))

    assert {a["status"] for a in answers} == {"completed"}, [a for a in answers if a["status"] != "completed"][:2]
    by_request: dict[str, dict] = {}
    for (request_id, _title), answer in zip(sends, answers, strict=True):
        assert answer["request_id"] == request_id
        # The same request twice: one entity, the same answer.
        assert by_request.setdefault(request_id, answer["created"]) == answer["created"]
    created = list(by_request.values())
    assert len({c["uuid"] for c in created}) == len({c["id"] for c in created}) == 48

    # The file: every line parses, in sudocode's order, each entity once.
    lines = (node.repo / ".sudocode" / "issues.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [jsonl.sort_key(r) for r in records] == sorted(jsonl.sort_key(r) for r in records)
    titles = sorted(r["title"] for r in records)
    assert titles == sorted(["Already here", *(t for _, t in distinct), *(t for _, t in twice)])
    file_entities = {r["uuid"]: r["id"] for r in records}
    assert len(file_entities) == len(records) == 49
    assert {c["uuid"]: c["id"] for c in created}.items() <= file_entities.items()

    # The database: the same entities, each request once, completed with the entity its caller was told of.
    with node.db() as db:
        rows = dict(db.execute("SELECT uuid, sudocode_id FROM tracker_entity WHERE kind = 'issue'").fetchall())
        requests_ = db.execute(
            "SELECT request_id, status, result FROM cross_repo_requests WHERE direction = 'incoming'"
        ).fetchall()
    assert rows == file_entities
    assert len(requests_) == 48
    for request_id, status, result in requests_:
        assert status == "completed"
        assert json.loads(result)["created"]["uuid"] == by_request[request_id]["uuid"]
