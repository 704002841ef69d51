"""Reads and the shapes a request is shown in: the mutate_response a requester gets (by HTTP answer, status
poll or callback)."""

from __future__ import annotations

from django.utils import timezone

from federation_site import identity
from protocol import messages
from requests_app.models import CrossRepoRequest
from requests_app.states import APPROVED, CANCELLED, COMPLETED, FAILED, PENDING, REJECTED


def response_for(request: CrossRepoRequest) -> dict:
    """The mutate_response (a delegate_response for a delegation) describing `request` now: its answer, its
    status poll, its callback."""
    created = (request.result or {}).get("created")
    decision = messages.Decision(**request.decision) if request.decision else None
    if request.is_delegation:
        status = {PENDING: "pending_acceptance", APPROVED: "approved", COMPLETED: "accepted"}
        result = request.result or {}
        return messages.dump(
            messages.DelegateResponse(
                from_=request.to_repo or None,
                to=request.from_repo or None,
                timestamp=timezone.now(),
                status=status.get(request.status, request.status),
                request_id=request.request_id,
                approval_url=request.approval_url if request.status == PENDING else None,
                message=_message(request),
                created=messages.DelegateCreated(**created) if created else None,
                assignee=result.get("assignee"),
                estimated_completion=result.get("estimated_completion"),
                reason=request.rejection_reason or request.last_error or None,
                decision=decision,
            )
        )
    status = {PENDING: "pending_approval", APPROVED: "approved"}.get(request.status, request.status)
    response = messages.MutateResponse(
        type="mutate_response",
        from_=request.to_repo or None,
        to=request.from_repo or None,
        timestamp=timezone.now(),
        status=status,
        request_id=request.request_id,
        approval_url=request.approval_url if request.status == PENDING else None,
        message=_message(request),
        created=messages.MutateCreated(**created) if created else None,
        reason=request.rejection_reason or request.last_error or None,
        decision=decision,
    )
    return messages.dump(response)


def _message(request: CrossRepoRequest) -> str:
    name = identity.describe()["display_name"]
    if request.is_delegation:
        return {
            PENDING: f"Delegation waiting for {name} maintainers to accept it",
            APPROVED: "Accepted; being created",
            COMPLETED: "Accepted",
            REJECTED: f"Rejected by {name} maintainers",
            FAILED: "Could not be carried out",
            CANCELLED: "Withdrawn by the delegator",
        }[request.status]
    return {
        PENDING: f"Request queued for review by {name} maintainers",
        APPROVED: "Approved; being carried out",
        COMPLETED: "Completed",
        REJECTED: f"Rejected by {name} maintainers",
        FAILED: "Could not be carried out",
        CANCELLED: "Withdrawn by the requester",
    }[request.status]


def request_summary(request: CrossRepoRequest) -> dict:
    """A request or delegation as the CLI's --format json and the MCP tools show it: ids, sides, status, the
    data's title, priority and labels, the decision, the result, the error, and when."""
    return {
        "request_id": request.request_id,
        "direction": request.direction,
        "from": request.from_repo,
        "to": request.to_repo,
        "type": request.request_type,
        "status": request.status,
        "title": request.data.get("title") or request.data.get("id"),
        "requester": request.requester,
        "priority": request.data.get("priority"),
        "labels": request.data.get("labels") or [],
        "approval_url": request.approval_url or None,
        "approved_by": request.approved_by or None,
        "rejection_reason": request.rejection_reason or None,
        "result": request.result,
        "decision": request.decision,
        "error": request.last_error or None,
        "created_at": request.created_at.isoformat(),
        "updated_at": request.updated_at.isoformat(),
    }
