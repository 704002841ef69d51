"""Incoming requests on one node, called in-process: the trust-level decision, idempotency, the approval
dashboard, notifications, rate limits and the audit trail."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditLog
from federation_site.config import default_config, write_config
from remotes import services as remote_services
from requests_app.models import CrossRepoRequest, Delivery
from tests.conftest import git

pytestmark = pytest.mark.django_db(transaction=True)

MUTATE = "/api/v1/federation/mutate"


@pytest.fixture
def node(node_repo, receiver):
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["git"]["auto_commit"] = True
    config["notifications"] = {
        "channels": [
            {"type": "slack", "webhook_url": receiver.url, "events": ["request_pending_approval"]},
            {"type": "email", "to": ["leads@example.com"], "events": ["request_pending_approval"]},
        ]
    }
    config["remote_repos"] = [
        {"url": "github.com/org/bot", "trust_level": "trusted", "permissions": {"mutate": {"allowed": True}}},
        {
            "url": "github.com/org/limited",
            "trust_level": "verified",
            "permissions": {"mutate": {"allowed": True, "mutations_per_hour": 2}},
        },
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    git(node_repo, "add", "-A")
    git(node_repo, "commit", "-qm", "init")
    keys = {}
    remote_services.remotes_reconcile()
    from remotes.models import RemoteRepo

    for url in ("github.com/org/bot", "github.com/org/limited"):
        keys[url] = remote_services.remote_rotate_key(remote=RemoteRepo.objects.get(url=url))
    for url, level in (("github.com/org/frontend", "verified"), ("github.com/org/stranger", "untrusted")):
        _, keys[url] = remote_services.remote_add(url=url, actor="t", trust_level=level, discover=False)
    return SimpleNamespace(repo=node_repo, keys=keys)


def mutate_message(sender: str, request_id: str, title: str = "Add user profile endpoint", **data) -> dict:
    return {
        "type": "mutate",
        "from": sender,
        "to": "github.com/org/api-service",
        "operation": "create_issue",
        "data": {
            "title": title,
            "description": "Frontend needs GET /api/v1/users/:id",
            "priority": 2,
            "labels": ["api", "frontend-request"],
            "relationships": [{"type": "discovered-from", "remote_ref": "org/frontend#issue-100"}],
            **data,
        },
        "metadata": {"request_id": request_id, "requester": "claude-code-agent"},
    }


def send(node, sender: str, message: dict):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys[sender]}")
    return client.post(MUTATE, message, format="json")


def issues(node) -> list[dict]:
    path = node.repo / ".sudocode" / "issues.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_verified_remote_waits_for_a_human_and_maintainers_are_notified(node, receiver):
    response = send(node, "github.com/org/frontend", mutate_message("github.com/org/frontend", "req-abc123"))
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "pending_approval" and body["request_id"] == "req-abc123"
    assert body["approval_url"] == "http://testserver/approvals/req-abc123"
    assert issues(node) == []
    [slack] = receiver.received
    assert slack["request_id"] == "req-abc123" and "Add user profile endpoint" in slack["text"]
    assert "http://testserver/approvals/req-abc123" in slack["text"]
    assert slack["decision"]["outcome"] == "human" and "Policy: no auto-approve rule matched" in slack["text"]
    [email] = mail.outbox
    assert email.to == ["leads@example.com"] and "req-abc123" in email.subject


def test_the_deciding_rule_is_in_the_answer_the_audit_log_and_its_notify_heads_the_notification(node, receiver):
    path = node.repo / ".sudocode" / "federation.config.json"
    config = json.loads(path.read_text())
    config["policies"]["incoming_requests"]["mutate"]["require_approval"][0]["notify"] = ["@team-leads", "@oncall"]
    write_config(path, config)
    response = send(node, "github.com/org/bot", mutate_message("github.com/org/bot", "req-urgent", priority=1))
    body = response.json()
    assert body["status"] == "pending_approval"
    rule = "policies.incoming_requests.mutate.require_approval[0]"
    assert body["decision"] == {
        "outcome": "human",
        "rule": rule,
        "condition": "priority <= 1 || labels.includes('breaking-change')",
        "reason": f"{rule} requires a human: priority <= 1 || labels.includes('breaking-change') holds",
    }
    [slack] = receiver.received
    assert slack["text"].startswith("@team-leads @oncall [req-urgent]") and slack["mentions"] == [
        "@team-leads",
        "@oncall",
    ]
    logged = AuditLog.objects.get(request_id="req-urgent", operation_type="mutate")
    assert logged.payload["decision"]["rule"] == rule
    assert CrossRepoRequest.objects.get(request_id="req-urgent").decision["outcome"] == "human"


def test_an_untrusted_caller_cannot_ask_and_nothing_is_recorded(node):
    response = send(node, "github.com/org/stranger", mutate_message("github.com/org/stranger", "req-1"))
    assert response.status_code == 403
    assert "untrusted" in response.json()["detail"]
    anonymous = APIClient().post(MUTATE, mutate_message("github.com/org/x", "req-2"), format="json")
    assert anonymous.status_code == 403
    assert not CrossRepoRequest.objects.exists()


def test_a_trusted_remote_allowed_to_mutate_is_completed_at_once_and_committed(node):
    response = send(node, "github.com/org/bot", mutate_message("github.com/org/bot", "req-auto-1"))
    body = response.json()
    assert body["status"] == "completed"
    created = body["created"]
    [record] = issues(node)
    assert created["id"] == record["id"] and created["canonical_ref"] == f"org/api-service#{record['id']}"
    assert record["title"] == "Add user profile endpoint" and record["tags"] == ["api", "frontend-request"]
    assert {(r["type"], r["canonical_ref"]) for r in record["remote_relationships"]} == {
        ("discovered-from", "org/frontend#issue-100"),
        ("blocks", "org/frontend#issue-100"),
    }
    log = git(node.repo, "log", "-1", "--format=%B")
    assert "req-auto-1" in log and "claude-code-agent" in log and "github.com/org/bot" in log


def test_the_same_request_twice_is_one_request_one_issue_one_answer(node):
    message = mutate_message("github.com/org/bot", "req-twice")
    first = send(node, "github.com/org/bot", message).json()
    second = send(node, "github.com/org/bot", message).json()
    assert first["created"] == second["created"]
    assert len(issues(node)) == 1
    assert CrossRepoRequest.objects.filter(request_id="req-twice").count() == 1


def test_a_request_carried_out_by_two_processes_at_once_is_answered_with_its_outcome_and_called_back_once(node):
    # Under load an auto-approved create may wait for the file lock longer than ABANDONED_AFTER, and the periodic
    # resume carries it out too. The slower of the two must answer `completed` with the entity (it used to
    # answer `approved`: its own transition lost and it answered from its stale copy).
    from requests_app import services as request_services

    first = send(node, "github.com/org/bot", mutate_message("github.com/org/bot", "req-raced")).json()
    request = CrossRepoRequest.objects.get(request_id="req-raced")
    callbacks = Delivery.objects.filter(request=request, kind=Delivery.Kind.CALLBACK).count()
    request.status = "approved"  # this process's copy, read before the other process completed it
    request_services._execute(request)
    assert request.status == "completed" and request.result["created"] == first["created"]
    assert len(issues(node)) == 1
    assert Delivery.objects.filter(request=request, kind=Delivery.Kind.CALLBACK).count() == callbacks


def test_an_entity_another_process_created_for_the_request_first_is_the_answer_not_a_failure(node):
    from requests_app import services as request_services
    from tracker import services as tracker

    entity_uuid = "7b0f7c51-4a57-4c1a-9a37-0d6c1f0b9a11"

    def create_racing_the_other_process():
        other = tracker.issue_create(uuid=entity_uuid, title="Made by the other process", actor="resume")
        assert other.uuid == entity_uuid
        return tracker.issue_create(uuid=entity_uuid, title="Made by the other process", actor="original")

    entity = request_services._created_once(entity_uuid, create_racing_the_other_process)
    assert entity.uuid == entity_uuid and len(issues(node)) == 1
    with pytest.raises(ValidationError):  # any other refusal is still the request's failure
        request_services._created_once(
            "9c1d6a0e-0a57-4c1a-9a37-0d6c1f0b9a12", lambda: tracker.issue_create(title="", actor="x")
        )


def test_a_request_id_taken_by_another_repository_is_a_conflict(node):
    send(node, "github.com/org/bot", mutate_message("github.com/org/bot", "req-shared"))
    response = send(node, "github.com/org/frontend", mutate_message("github.com/org/frontend", "req-shared"))
    assert response.status_code == 409


def test_rate_limits_answer_429_with_retry_after(node):
    for i in range(2):
        assert (
            send(node, "github.com/org/limited", mutate_message("github.com/org/limited", f"req-l{i}")).status_code
            == 200
        )
    response = send(node, "github.com/org/limited", mutate_message("github.com/org/limited", "req-l3"))
    assert response.status_code == 429
    assert 3000 < int(response["Retry-After"]) <= 3600
    assert "mutations_per_hour" in response.json()["detail"]


@pytest.fixture
def staff():
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    page = client.get("/admin/login/")
    token = page.cookies[settings.CSRF_COOKIE_NAME].value
    client.post("/admin/login/", {"username": "maintainer", "password": "pw", "csrfmiddlewaretoken": token})
    return client


def csrf(client: Client) -> str:
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def test_a_maintainer_approves_in_the_dashboard_and_the_issue_is_created_once(node, staff):
    send(node, "github.com/org/frontend", mutate_message("github.com/org/frontend", "req-dash"))
    queue = staff.get("/approvals/")
    assert queue.status_code == 200
    page = queue.content.decode()
    assert "req-dash" in page and "claude-code-agent" in page and "verified" in page and "frontend-request" in page

    refused = staff.post("/approvals/req-dash/approve")  # no CSRF token: refused
    assert refused.status_code == 403
    assert staff.post("/approvals/req-dash/approve", {"csrfmiddlewaretoken": csrf(staff)}).status_code == 302
    assert staff.post("/approvals/req-dash/approve", {"csrfmiddlewaretoken": csrf(staff)}).status_code == 302

    assert len(issues(node)) == 1
    request = CrossRepoRequest.objects.get(request_id="req-dash")
    assert (request.status, request.approved_by) == ("completed", "maintainer")
    assert "req-dash" in git(node.repo, "log", "-1", "--format=%B")
    operations = list(AuditLog.objects.filter(request_id="req-dash").values_list("operation_type", flat=True))
    assert sorted(operations) == ["approve", "complete", "mutate"]


def test_a_maintainer_rejects_with_a_reason(node, staff):
    send(node, "github.com/org/frontend", mutate_message("github.com/org/frontend", "req-no"))
    no_reason = staff.post("/approvals/req-no/reject", {"csrfmiddlewaretoken": csrf(staff), "reason": " "})
    assert no_reason.status_code == 302
    assert CrossRepoRequest.objects.get(request_id="req-no").status == "pending"
    staff.post("/approvals/req-no/reject", {"csrfmiddlewaretoken": csrf(staff), "reason": "Out of scope"})
    request = CrossRepoRequest.objects.get(request_id="req-no")
    assert (request.status, request.rejection_reason) == ("rejected", "Out of scope")
    assert issues(node) == []
    # The requester hears it: a callback delivery (dead here, as frontend has no endpoint: it will poll).
    status = APIClient()
    status.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys['github.com/org/frontend']}")
    assert status.get("/api/v1/federation/requests/req-no").json()["status"] == "rejected"
    assert Delivery.objects.get(kind="callback").event == "request_rejected"


def test_only_the_requester_sees_a_request(node):
    send(node, "github.com/org/frontend", mutate_message("github.com/org/frontend", "req-mine"))
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys['github.com/org/bot']}")
    assert other.get("/api/v1/federation/requests/req-mine").status_code == 404
    assert APIClient().get("/api/v1/federation/requests/req-mine").status_code == 404


def test_remote_content_is_shown_as_text_in_the_dashboard(node, staff):
    evil = "<script>alert(1)</script>"
    send(
        node,
        "github.com/org/frontend",
        mutate_message("github.com/org/frontend", "req-xss", title=evil, description=evil, labels=[evil]),
    )
    for url in ("/approvals/", "/approvals/req-xss"):
        page = staff.get(url).content.decode()
        assert "<script>alert(1)" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_dashboard_is_for_staff_only(node):
    assert Client().get("/approvals/").status_code == 302
    assert Client().post("/approvals/req-x/approve").status_code in (302, 403)


def test_a_request_approved_but_never_carried_out_is_carried_out_once_later(node):
    from datetime import timedelta

    from django.utils import timezone

    from requests_app import services as request_services
    from requests_app.states import transition

    send(node, "github.com/org/frontend", mutate_message("github.com/org/frontend", "req-died"))
    request = CrossRepoRequest.objects.get(request_id="req-died")
    transition(request, "approved", actor="maintainer", approved_by="maintainer")  # ...and the process died
    assert request_services.requests_resume() == 0  # too recent: maybe still being carried out
    CrossRepoRequest.objects.filter(pk=request.pk).update(updated_at=timezone.now() - timedelta(seconds=30))

    assert request_services.requests_resume() == 1
    assert request_services.requests_resume() == 0
    request.refresh_from_db()
    assert request.status == "completed" and len(issues(node)) == 1
    # Carried out again anyway (the resume and a slow original both ran): still one issue, the same one.
    CrossRepoRequest.objects.filter(pk=request.pk).update(status="approved", updated_at=timezone.now() - timedelta(1))
    assert request_services.requests_resume() == 1
    assert len(issues(node)) == 1
    assert CrossRepoRequest.objects.get(pk=request.pk).result == request.result


def test_an_auto_approved_request_left_pending_by_a_dead_process_is_carried_out_later(node):
    from datetime import timedelta

    from django.utils import timezone

    from requests_app import services as request_services

    send(node, "github.com/org/frontend", mutate_message("github.com/org/frontend", "req-half"))
    # As if the policy had approved it and the process died before recording the approval:
    CrossRepoRequest.objects.filter(request_id="req-half").update(
        requires_approval=False, updated_at=timezone.now() - timedelta(seconds=30)
    )
    assert request_services.requests_resume() == 1
    request = CrossRepoRequest.objects.get(request_id="req-half")
    assert (request.status, request.approved_by) == ("completed", "policy") and len(issues(node)) == 1


def test_a_send_refused_for_a_quota_waits_as_long_as_the_other_node_says(node):
    from datetime import timedelta

    from django.utils import timezone

    from remotes.client import RemoteUnreachable
    from requests_app.services import _retry_later

    request = CrossRepoRequest(request_id="req-later", created_at=timezone.now())
    busy = RemoteUnreachable(
        "POST http://b/api/v1/federation/mutate: HTTP 429",
        url="http://b",
        status=429,
        body={"error": "rate_limited", "detail": "reached mutations_per_hour (10); try again in 3074 s",
              "retry_after": 3074},
    )  # fmt: skip
    error, when = _retry_later(request, busy)
    assert "reached mutations_per_hour (10); try again in 3074 s" in error
    assert timedelta(seconds=3070) < when - timezone.now() <= timedelta(seconds=3074)
    error, when = _retry_later(request, RemoteUnreachable("connection refused", url="http://b"))
    assert error == "connection refused" and when - timezone.now() <= timedelta(seconds=6)


def test_an_auto_approved_request_the_periodic_resume_took_up_first_is_answered_with_its_outcome(node, monkeypatch):
    """Under load the arrival can wait seconds for the database, so the periodic resume may see the new row as
    abandoned and carry it out before the arrival does: the sender must still get `completed` and one issue
    (it once got `pending`, which the CLI showed as 'Pending acceptance')."""
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from requests_app import services as request_services

    real, raced = request_services.transition, []

    def resume_first(request, to, **fields):
        if to == "approved" and not raced:
            raced.append(request.request_id)
            with time_machine.travel(timezone.now() + timedelta(seconds=30)):
                assert request_services.requests_resume() == 1
        return real(request, to, **fields)

    monkeypatch.setattr(request_services, "transition", resume_first)
    body = send(node, "github.com/org/bot", mutate_message("github.com/org/bot", "req-raced")).json()

    assert raced == ["req-raced"]
    assert body["status"] == "completed", body
    [record] = issues(node)
    assert body["created"]["id"] == record["id"]


def test_an_answer_that_arrives_after_the_callback_shows_the_outcome_the_callback_recorded(node):
    """The other node's callback (through our web process) can record the outcome before the answer to our own
    send reaches the process that sent it (`remote delegate`): that process must show the outcome, not the
    'pending' it read before sending (it once printed 'Pending acceptance' for an accepted delegation)."""
    from django.utils import timezone

    from protocol import messages
    from requests_app.services import _apply_outcome

    now = timezone.now()
    CrossRepoRequest.objects.create(
        request_id="req-sent-1", direction="outgoing", from_repo="github.com/org/api-service",
        to_repo="github.com/org/frontend", request_type="create_issue", payload={"data": {"title": "x"}},
        requires_approval=True, created_at=now, updated_at=now, sent=True,
    )  # fmt: skip
    answer = messages.parse_response({
        "type": "mutate_response", "request_id": "req-sent-1", "status": "completed",
        "created": {"id": "issue-900", "uuid": "u-900", "canonical_ref": "org/frontend#issue-900"},
        "decision": {"outcome": "approve", "rule": "permissions.mutate", "reason": "allowed"},
    })  # fmt: skip
    sender = CrossRepoRequest.objects.get(request_id="req-sent-1")  # read before sending: pending
    _apply_outcome(CrossRepoRequest.objects.get(request_id="req-sent-1"), answer)  # the callback, first

    _apply_outcome(sender, answer)  # then the answer to the send itself

    assert sender.status == "completed"
    assert sender.result["created"]["canonical_ref"] == "org/frontend#issue-900"
    assert sender.decision["rule"] == "permissions.mutate"
