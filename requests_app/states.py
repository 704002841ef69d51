"""A request's states and the moves between them, in one place. `transition` is the only way a request
changes state: a conditional update (so two approvers clicking at once cannot both win) plus its audit row."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_complete, audit_record
from events.services import record_local
from federation_site import metrics
from requests_app import signals
from requests_app.models import CrossRepoRequest, RequestStatus

PENDING, APPROVED, REJECTED, COMPLETED, FAILED, CANCELLED = (
    RequestStatus.PENDING,
    RequestStatus.APPROVED,
    RequestStatus.REJECTED,
    RequestStatus.COMPLETED,
    RequestStatus.FAILED,
    RequestStatus.CANCELLED,
)

# pending -> approved -> completed | failed; pending -> rejected | cancelled (by its requester); pending ->
# completed | failed (no human needed, or an outgoing request learning its outcome). Rejected, completed, failed
# and cancelled are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED, COMPLETED, FAILED, CANCELLED}),
    APPROVED: frozenset({COMPLETED, FAILED}),
    REJECTED: frozenset(),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}
FINAL = frozenset({REJECTED, COMPLETED, FAILED, CANCELLED})

# The audit operation each move is recorded as.
_OPERATION = {APPROVED: "approve", REJECTED: "reject", COMPLETED: "complete", FAILED: "fail", CANCELLED: "cancel"}


class InvalidTransition(Exception):
    pass


def transition(request: CrossRepoRequest, to: str, *, actor: str, **fields: Any) -> bool:
    """Move `request` to `to` if it is still in the state we read. Returns False when another process moved
    it first (the caller then re-reads it); raises InvalidTransition for a move the table forbids."""
    current = request.status
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(f"request {request.request_id} is {current}; it cannot become {to}")
    now = timezone.now()
    changes = {"status": to, "updated_at": now, **fields}
    if to in FINAL:
        changes["completed_at"] = now
    # One transaction: the move, its audit row and its event (the live approval queue) exist together or not.
    with transaction.atomic():
        moved = CrossRepoRequest.objects.filter(pk=request.pk, status=current).update(**changes) == 1
        if not moved:
            return False
        for key, value in changes.items():
            setattr(request, key, value)
        audit_record(
            operation=_OPERATION[to],
            direction=request.direction,
            local_repo=request.to_repo if request.direction == "incoming" else request.from_repo,
            remote_repo=request.other_repo,
            status="failed" if to == FAILED else "success",
            request_id=request.request_id,
            correlation_id=request.correlation_id,
            payload={"by": actor, "from": current, "to": to},
            result=request.result if to == COMPLETED else None,
            error=(request.rejection_reason or request.last_error) if to in (REJECTED, FAILED) else "",
        )
        if to in FINAL and current in (PENDING, APPROVED):
            # The "pending" row written when the request arrived (requests_app.services.request_receive) now
            # says how it ended, so the log shows no request pending forever.
            audit_complete(
                request_id=request.request_id,
                operation="delegate" if request.is_delegation else "mutate",
                direction=request.direction,
                # A maintainer's rejection (or the requester's cancel) is the call answered, not an error: only
                # a request that failed is a failed call (the error rate, the alerts and the metrics agree).
                status="failed" if to == FAILED else "success",
                result={
                    "status": to,
                    **({"created": (request.result or {}).get("created")} if to == COMPLETED else {}),
                    **({"reason": request.rejection_reason or "no reason given"} if to == REJECTED else {}),
                },
                error=f"failed: {request.last_error or 'no reason given'}" if to == FAILED else "",
            )
        request_event(request, type="request_updated", status_from=current)
        signals.request_changed.send(sender=CrossRepoRequest, request=request, status_from=current)
    if (
        current == PENDING
        and to in (APPROVED, REJECTED)
        and request.requires_approval
        and request.direction == "incoming"
    ):
        # The approval queue's wait: only requests a human had to decide (auto-approved ones never queued).
        metrics.decision_observe(decision=to, seconds=(now - request.created_at).total_seconds())
    return True


def request_event(request: CrossRepoRequest, *, type: str, status_from: str | None) -> None:
    """A local-scope event (only this node's staff hear it: the live approval queue) for a request that
    arrived (`request_created`) or moved (`request_updated`). Inside the transaction of the change."""
    record_local(
        type=type,
        kind="request",
        uuid_=str(request.pk),
        id_=request.request_id,
        changes={"status": {"from": status_from, "to": request.status}},
        state={"status": request.status, "direction": request.direction, "from_repo": request.from_repo},
    )
