"""The request record on both sides, between two real nodes: frontend asks api-service for an issue; while it
waits and once it is decided, GET /api/v1/federation/requests/<id> shows the same record on api-service
(incoming) and on frontend (outgoing): who approved it and when, the rejection reason, the result, the approval
page while pending. Each node's staff read them over HTTP Basic, and list them with the filters."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from tests.nodes import Node
from tests.requests_app.test_use_case_1 import (
    PASSWORD,
    STAFF,
    eventually,
    request_id_in,
    staffed_pair,
)

pytestmark = pytest.mark.slow

AUTH = (STAFF, PASSWORD)


@dataclass
class Pair:
    frontend: Node
    api: Node

    def ask(self, title: str) -> str:
        result = self.frontend.cli("remote", "create-issue", self.api.identity, "--title", title, "--priority", "2")
        assert result.code == 0, result.err
        return request_id_in(result.out)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with staffed_pair(tmp_path_factory.mktemp("request-record")) as (frontend, api):
        yield Pair(frontend, api)


def record(node: Node, request_id: str, direction: str) -> dict:
    response = requests.get(
        f"{node.api}/federation/requests/{request_id}", params={"direction": direction}, auth=AUTH, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["record"]


def listed(node: Node, **params: str) -> list[str]:
    response = requests.get(f"{node.api}/federation/requests", params=params, auth=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return [r["request_id"] for r in response.json()["results"]]


def decide(node: Node, request_id: str, action: str, **body: str) -> None:
    response = requests.post(f"{node.api}/federation/requests/{request_id}/{action}", json=body, auth=AUTH, timeout=30)
    assert response.status_code == 200, response.text


SHARED = ("request_id", "from_repo", "to_repo", "request_type", "approved_by", "approved_at", "rejection_reason")


def test_an_approved_request_has_the_same_record_on_both_sides(pair):
    request_id = pair.ask("Add user profile endpoint")
    theirs = record(pair.api, request_id, "incoming")
    assert (theirs["status"], theirs["from_repo"], theirs["approved_by"]) == ("pending", pair.frontend.identity, None)
    ours = eventually(
        lambda: (r := record(pair.frontend, request_id, "outgoing"))["approval_url"] and r,
        what="frontend to hold api-service's approval page",
    )
    assert (ours["direction"], ours["status"], ours["to_repo"]) == ("outgoing", "pending", pair.api.identity)
    assert ours["approval_url"] == theirs["approval_url"] and f"/approvals/{request_id}" in ours["approval_url"]
    assert ours["payload"]["data"]["title"] == theirs["payload"]["data"]["title"] == "Add user profile endpoint"

    decide(pair.api, request_id, "approve")
    theirs = record(pair.api, request_id, "incoming")
    assert (theirs["status"], theirs["approved_by"], theirs["approval_url"]) == ("completed", STAFF, None)
    ours = eventually(
        lambda: (r := record(pair.frontend, request_id, "outgoing"))["status"] == "completed" and r,
        what="frontend to learn the request was completed",
    )
    assert {k: ours[k] for k in SHARED} == {k: theirs[k] for k in SHARED}
    assert ours["result"]["created"] == theirs["result"]["created"]
    assert ours["completed_at"] is not None and ours["approval_url"] is None

    assert request_id in listed(pair.api, direction="incoming", status="completed", remote=pair.frontend.identity)
    assert request_id in listed(pair.frontend, direction="outgoing", status="completed", remote=pair.api.identity)
    assert request_id not in listed(pair.frontend, direction="incoming")


def test_a_rejected_request_has_the_reason_on_both_sides(pair):
    request_id = pair.ask("Rewrite everything in Rust")
    decide(pair.api, request_id, "reject", reason="Out of scope for this quarter")
    ours = eventually(
        lambda: (r := record(pair.frontend, request_id, "outgoing"))["status"] == "rejected" and r,
        what="frontend to learn the request was rejected",
    )
    assert (ours["rejection_reason"], ours["approved_by"]) == ("Out of scope for this quarter", STAFF)
    assert ours["completed_at"] is not None
    assert request_id in listed(pair.frontend, status="rejected")
    assert record(pair.api, request_id, "incoming")["rejection_reason"] == "Out of scope for this quarter"
