"""The request record on one node, called in-process: GET /api/v1/federation/requests/<id> answers the
mutate_response the requester polls for (its parser still accepts it) with the whole record under `record`, and
GET /api/v1/federation/requests lists records a page at a time; staff see every request, a remote only its own."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from federation_site.config import default_config, write_config
from protocol import messages
from remotes import services as remote_services
from requests_app import services
from requests_app.models import CrossRepoRequest

pytestmark = pytest.mark.django_db(transaction=True)

REQUESTS = "/api/v1/federation/requests"
FRONTEND, OTHER = "github.com/org/frontend", "github.com/org/other"
SEED_FIELDS = {
    "request_id",
    "direction",
    "from_repo",
    "to_repo",
    "request_type",
    "payload",
    "status",
    "requires_approval",
    "approved_by",
    "approved_at",
    "rejection_reason",
    "result",
    "created_at",
    "updated_at",
    "completed_at",
}


@pytest.fixture
def node(node_repo):
    write_config(
        node_repo / ".sudocode" / "federation.config.json",
        default_config(url="github.com/org/api-service", display_name="API Service"),
    )
    keys = {}
    for url in (FRONTEND, OTHER):
        _, keys[url] = remote_services.remote_add(url=url, actor="t", trust_level="verified", discover=False)
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True)
    return SimpleNamespace(repo=node_repo, keys=keys)


def as_remote(node, url: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys[url]}")
    return client


def as_staff() -> Client:
    return Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"maintainer:pw").decode())


def ask(node, sender: str, request_id: str, title: str = "Add user profile endpoint") -> dict:
    message = {
        "type": "mutate",
        "from": sender,
        "to": "github.com/org/api-service",
        "operation": "create_issue",
        "data": {"title": title, "priority": 2, "labels": ["api"]},
        "metadata": {"request_id": request_id, "requester": "claude-code-agent"},
    }
    response = as_remote(node, sender).post("/api/v1/federation/mutate", message, format="json")
    assert response.status_code == 200, response.content
    return message


def test_a_pending_request_shows_its_whole_record_and_the_poller_still_parses_it(node):
    message = ask(node, FRONTEND, "req-rec-1")
    body = as_remote(node, FRONTEND).get(f"{REQUESTS}/req-rec-1").json()
    assert (body["type"], body["status"]) == ("mutate_response", "pending_approval")
    record = body["record"]
    assert SEED_FIELDS <= set(record)
    assert {k: record[k] for k in ("direction", "from_repo", "request_type", "status", "requires_approval")} == {
        "direction": "incoming",
        "from_repo": FRONTEND,
        "request_type": "create_issue",
        "status": "pending",
        "requires_approval": True,
    }
    # The message as received (with the defaults the parser filled in).
    assert record["payload"]["data"] == {**message["data"], "relationships": []}
    assert record["payload"]["metadata"]["request_id"] == "req-rec-1"
    assert record["approval_url"] == body["approval_url"] and "/approvals/req-rec-1" in record["approval_url"]
    assert (record["approved_by"], record["approved_at"], record["completed_at"], record["result"]) == (
        None,
        None,
        None,
        None,
    )
    # The requester's poller (requests_app.services.request_poll) reads the same body.
    parsed = messages.parse_response(body)
    assert isinstance(parsed, messages.MutateResponse) and parsed.record.request_id == "req-rec-1"


def test_an_approved_request_records_who_approved_when_and_the_result(node):
    ask(node, FRONTEND, "req-rec-2")
    before = timezone.now()
    services.request_approve(request_id="req-rec-2", actor="maintainer")
    record = as_remote(node, FRONTEND).get(f"{REQUESTS}/req-rec-2").json()["record"]
    assert (record["status"], record["approved_by"], record["approval_url"]) == ("completed", "maintainer", None)
    assert record["approved_at"] >= before.isoformat() and record["completed_at"] >= record["approved_at"]
    assert record["result"]["created"]["canonical_ref"].startswith("org/api-service#")


def test_a_rejected_request_records_the_reason(node):
    ask(node, FRONTEND, "req-rec-3")
    services.request_reject(request_id="req-rec-3", actor="maintainer", reason="Out of scope")
    body = as_remote(node, FRONTEND).get(f"{REQUESTS}/req-rec-3").json()
    assert (body["status"], body["record"]["rejection_reason"]) == ("rejected", "Out of scope")
    assert body["record"]["completed_at"] is not None


def test_a_remote_sees_only_its_own_requests_and_staff_see_all(node):
    ask(node, FRONTEND, "req-mine")
    assert as_remote(node, OTHER).get(f"{REQUESTS}/req-mine").status_code == 404
    assert APIClient().get(f"{REQUESTS}/req-mine").status_code == 404
    assert as_remote(node, FRONTEND).get(f"{REQUESTS}/req-mine?direction=outgoing").status_code == 404
    assert as_staff().get(f"{REQUESTS}/req-mine").json()["record"]["from_repo"] == FRONTEND
    assert as_staff().get(f"{REQUESTS}/req-mine?direction=sideways").status_code == 400

    ask(node, OTHER, "req-theirs")
    mine = as_remote(node, FRONTEND).get(REQUESTS).json()["results"]
    assert [r["request_id"] for r in mine] == ["req-mine"]
    assert {r["request_id"] for r in as_staff().get(REQUESTS).json()["results"]} == {"req-mine", "req-theirs"}
    refused = APIClient().get(REQUESTS)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"


def test_staff_see_an_outgoing_request_by_its_id(node):
    now = timezone.now()
    CrossRepoRequest.objects.create(
        request_id="req-out",
        direction="outgoing",
        from_repo="github.com/org/api-service",
        to_repo=OTHER,
        request_type="create_issue",
        payload={"type": "mutate", "data": {"title": "x"}},
        approval_url="https://other.dev/approvals/req-out",
        created_at=now,
        updated_at=now,
    )
    body = as_staff().get(f"{REQUESTS}/req-out").json()
    assert body["record"]["direction"] == "outgoing" and body["record"]["to_repo"] == OTHER
    assert body["approval_url"] == body["record"]["approval_url"] == "https://other.dev/approvals/req-out"
    assert as_staff().get(f"{REQUESTS}/req-out?direction=incoming").status_code == 404


def test_the_list_filters_and_pages_with_a_cursor(node):
    for i in range(5):
        ask(node, FRONTEND if i % 2 == 0 else OTHER, f"req-page-{i}")
    services.request_reject(request_id="req-page-0", actor="maintainer", reason="no")
    staff = as_staff()

    seen, cursor = [], None
    while True:
        page = staff.get(REQUESTS, {"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["results"]) <= 2
        seen += [r["request_id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"req-page-{i}" for i in reversed(range(5))]  # newest first, each once

    def ids(**params) -> list[str]:
        return [r["request_id"] for r in staff.get(REQUESTS, params).json()["results"]]

    assert ids(remote=FRONTEND) == ["req-page-4", "req-page-2", "req-page-0"]
    assert ids(remote=OTHER, status="pending") == ["req-page-3", "req-page-1"]
    assert ids(status="rejected") == ["req-page-0"]
    assert ids(direction="outgoing") == []
    assert ids(direction="incoming", status="pending", remote=FRONTEND.upper()) == ["req-page-4", "req-page-2"]


BAD_PARAMS = [
    ({"direction": "sideways"}, "direction"),
    ({"status": "done"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(b'["yesterday", 1]').decode()}, "cursor"),
    ({"cursor": "é"}, "cursor"),
]


@pytest.mark.parametrize(("params", "field"), BAD_PARAMS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_PARAMS)])
def test_a_bad_list_parameter_is_a_400_naming_it(node, params, field):
    response = as_staff().get(REQUESTS, params)
    assert response.status_code == 400, response.content
    assert [e["path"] for e in response.json()["errors"]] == [field]


def test_the_callback_carries_the_record_but_not_the_payload(node):
    from requests_app.models import Delivery

    ask(node, FRONTEND, "req-cb")
    services.request_approve(request_id="req-cb", actor="maintainer")
    body = Delivery.objects.get(kind="callback", request__request_id="req-cb").body
    assert (body["status"], body["record"]["approved_by"], body["record"]["status"]) == (
        "completed",
        "maintainer",
        "completed",
    )
    assert "payload" not in body["record"]
    assert messages.parse_response(body).record.approved_at == body["record"]["approved_at"]
