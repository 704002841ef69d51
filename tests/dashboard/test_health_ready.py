"""GET /health (liveness: the process answers) and GET /health/ready (readiness: database, broker, worker
heartbeat, JSONL importable, config valid), 503 naming each reason when degraded (issue 15, item 7)."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError
from django.test import Client

from dashboard import health
from federation_site import workers
from federation_site.config import default_config, write_config
from federation_site.node import RepoLayout

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = ["database", "broker", "worker", "jsonl", "config"]


@pytest.fixture
def ready_node(node_repo, monkeypatch, settings, tmp_path):
    """A node with a good config, its own broker folders and a fresh worker heartbeat: ready."""
    monkeypatch.setenv(workers.WORKER_ENV, "supervised")
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path / "celery" / "queue"),
        "data_folder_out": str(tmp_path / "celery" / "queue"),
    }
    write_config(
        node_repo / ".sudocode" / "federation.config.json",
        default_config(url="github.com/org/frontend", display_name="Frontend"),
    )
    workers.heartbeat(RepoLayout(node_repo))
    return node_repo


def ready() -> tuple[int, dict]:
    response = Client().get("/health/ready")
    return response.status_code, response.json()


def test_a_ready_node_answers_200_with_every_check_ok(ready_node):
    status, body = ready()
    assert status == 200, body
    assert body["status"] == "ok" and body["problems"] == []
    assert body["checks"] == dict.fromkeys(CHECKS, "ok")
    assert list(body["checks"]) == CHECKS


def test_liveness_is_200_even_while_the_node_is_degraded(node_repo, monkeypatch):
    monkeypatch.setenv(workers.WORKER_ENV, "supervised")  # never seen: not ready
    assert Client().get("/health/ready").status_code == 503
    response = Client().get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_an_absent_worker_is_a_503_saying_so(ready_node):
    RepoLayout(ready_node).worker_heartbeat_path.unlink()
    status, body = ready()
    assert status == 503 and body["status"] == "degraded"
    assert body["checks"]["worker"].startswith("the background worker is not alive (never seen)")
    assert body["problems"] == [body["checks"]["worker"]]
    assert {name: reason for name, reason in body["checks"].items() if name != "worker"} == dict.fromkeys(
        ["database", "broker", "jsonl", "config"], "ok"
    )


def test_a_refused_config_edit_is_a_503_naming_the_problem(ready_node):
    assert ready()[0] == 200  # the good config is loaded
    path = ready_node / ".sudocode" / "federation.config.json"
    config = json.loads(path.read_text())
    config["trust_levels"] = "everyone"
    path.write_text(json.dumps(config))
    status, body = ready()
    assert status == 503
    assert "trust_levels" in body["checks"]["config"]
    assert "the last good config is in force" in body["checks"]["config"]
    assert body["problems"] == [body["checks"]["config"]]


def test_damaged_data_is_a_503_naming_the_file_and_line(ready_node):
    issue = {"id": "i-1", "uuid": "u-1", "title": "One", "status": "open", "priority": 2, "content": ""}
    (ready_node / ".sudocode" / "issues.jsonl").write_text(
        "\n".join(["<<<<<<< HEAD", json.dumps(issue), "=======", json.dumps(issue), ">>>>>>> feature", ""])
    )
    status, body = ready()
    assert status == 503
    assert body["checks"]["jsonl"].startswith("issues.jsonl:1: unresolved git merge conflict")
    assert body["problems"] == [body["checks"]["jsonl"]]


def test_a_broker_that_cannot_take_messages_is_a_503(ready_node, settings, tmp_path):
    (tmp_path / "a-file").write_text("")
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_out": str(tmp_path / "a-file" / "queue")}
    status, body = ready()
    assert status == 503 and body["checks"]["broker"].startswith("the broker's folders cannot be made")


def test_a_redis_broker_that_does_not_answer_is_named(ready_node, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    assert workers.broker_problem().startswith("the broker (Redis at 127.0.0.1:1) does not answer")


def test_a_database_that_does_not_answer_is_a_503(ready_node, monkeypatch):
    class Broken:
        def cursor(self):
            raise DatabaseError("unable to open database file")

    monkeypatch.setattr(health, "connection", Broken())
    status, body = ready()
    assert status == 503
    assert body["checks"]["database"] == "the database does not answer (unable to open database file)"


def test_the_api_health_endpoint_gives_the_same_answer(ready_node):
    RepoLayout(ready_node).worker_heartbeat_path.unlink()
    api = Client().get("/api/v1/health")
    assert api.status_code == 503 and api.json()["checks"] == ready()[1]["checks"]
