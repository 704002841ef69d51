"""The audit row a request leaves when it arrives ("incoming mutate pending") says how it ended once it ends:
requests_app.states.transition completes it through audit.services.audit_complete."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_record
from requests_app.models import CrossRepoRequest
from requests_app.states import APPROVED, COMPLETED, REJECTED, transition

pytestmark = pytest.mark.django_db


def arrived(request_id: str, *, delegate: bool = False) -> CrossRepoRequest:
    now = timezone.now()
    request = CrossRepoRequest.objects.create(
        request_id=request_id,
        direction="incoming",
        from_repo="github.com/org/frontend",
        to_repo="github.com/org/api-service",
        request_type="delegate" if delegate else "create_issue",
        payload={"data": {"title": "x"}},
        created_at=now,
        updated_at=now,
    )
    audit_record(
        operation="delegate" if delegate else "mutate",
        direction="incoming",
        local_repo=request.to_repo,
        remote_repo=request.from_repo,
        status="pending",
        request_id=request_id,
    )
    return request


def row(request_id: str, operation: str = "mutate") -> AuditLog:
    return AuditLog.objects.get(request_id=request_id, operation_type=operation)


def test_an_approved_request_completes_its_pending_row(db):
    request = arrived("req-1")
    transition(request, APPROVED, actor="ana", approved_by="ana")
    assert row("req-1").status == "pending"  # approved is not an end: the issue is still being created

    created = {"id": "i-ab12", "canonical_ref": "org/api-service#i-ab12"}
    transition(request, COMPLETED, actor="node", result={"created": created})

    done = row("req-1")
    assert (done.status, done.error_message) == ("success", "")
    assert done.result == {"status": "completed", "created": created}
    assert AuditLog.objects.filter(request_id="req-1", operation_type="complete").count() == 1


def test_a_rejected_delegation_completes_its_row_with_the_reason(db):
    request = arrived("del-1", delegate=True)

    transition(request, REJECTED, actor="ana", rejection_reason="Out of scope")

    done = row("del-1", "delegate")
    # Answered, not an error: a maintainer's rejection is no failed call (the error rate and alerts agree).
    assert (done.status, done.error_message, done.result) == (
        "success",
        "",
        {"status": "rejected", "reason": "Out of scope"},
    )
    assert not AuditLog.objects.filter(status="pending").exists()
