"""GET /api/v1/health: 200 when the node can do its work; 503 naming what is wrong when its background worker
is not alive or a JSONL file cannot be read (issue 10, fault 6)."""

from __future__ import annotations

import os
import time

import pytest
from django.test import Client

from federation_site import workers
from federation_site.node import RepoLayout

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def heartbeat(node_repo, monkeypatch):
    monkeypatch.setenv(workers.WORKER_ENV, "supervised")
    return RepoLayout(node_repo).worker_heartbeat_path


def health():
    response = Client().get("/api/v1/health")
    return response.status_code, response.json()


def test_a_worker_never_seen_is_a_503_saying_so(heartbeat):
    status, body = health()
    assert status == 503 and body["status"] == "degraded"
    assert body["worker"] == {"expected": True, "alive": False, "last_seen_seconds": None}
    assert "background worker is not alive (never seen)" in body["problems"][0]


def test_a_fresh_heartbeat_is_ok_and_a_stale_one_is_not(heartbeat):
    workers.heartbeat(RepoLayout(heartbeat.parents[2]))
    status, body = health()
    assert (status, body["status"], body["worker"]["alive"], body["problems"]) == (200, "ok", True, [])

    old = time.time() - 30
    os.utime(heartbeat, (old, old))
    status, body = health()
    assert status == 503 and "last seen 30 s ago" in body["problems"][0]


def test_a_node_served_without_a_worker_does_not_count_it(heartbeat, monkeypatch):
    monkeypatch.setenv(workers.WORKER_ENV, "none")
    status, body = health()
    assert status == 200 and body["worker"]["expected"] is False


def test_staff_see_a_banner_while_the_worker_is_down(heartbeat, admin_client):
    page = admin_client.get("/").content.decode()
    assert "The background worker is not running" in page
    workers.heartbeat(RepoLayout(heartbeat.parents[2]))
    assert "The background worker is not running" not in admin_client.get("/").content.decode()
