"""Reads and the shapes a request is shown in: the mutate_response a requester gets (by HTTP answer, status
poll or callback), the whole record (the seed's cross_repo_requests row), and who may see which requests."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from federation_site import identity
from protocol import messages
from remotes.policy import Caller
from requests_app.models import CrossRepoRequest, Delivery, Direction, RequestStatus
from requests_app.states import APPROVED, CANCELLED, COMPLETED, FAILED, PENDING, REJECTED

PAGE_LIMIT, PAGE_MAX_LIMIT = 50, 100


def response_for(request: CrossRepoRequest, *, record: bool = False) -> dict:
    """The mutate_response (a delegate_response for a delegation) describing `request` now: its answer, its
    status poll, its callback. `record`: with the whole request under `record` (`request_record`), as a status
    poll and a callback carry it."""
    created = (request.result or {}).get("created")
    decision = messages.Decision(**request.decision) if request.decision else None
    whole = request_record(request) if record else None
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
        ) | _with_record(whole)
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
    return messages.dump(response) | _with_record(whole)


def _with_record(whole: dict | None) -> dict:
    # Beside the dumped response, not through it: the record keeps its unknown (null) fields.
    if whole is None:
        return {}
    messages.RequestRecord(**whole)  # what the other side's parser will take
    return {"record": whole}


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


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def request_record(request: CrossRepoRequest) -> dict:
    """The whole request as this node holds it: the seed's cross_repo_requests columns (request_id, direction,
    from_repo, to_repo, request_type, payload, status, requires_approval, approved_by, approved_at,
    rejection_reason, result, created_at, updated_at, completed_at) plus approval_url (while pending),
    requester, decision and the last error. Timestamps ISO 8601; what is unknown is null."""
    return {
        "request_id": request.request_id,
        "direction": request.direction,
        "from_repo": request.from_repo,
        "to_repo": request.to_repo,
        "request_type": request.request_type,
        "payload": request.payload,
        "status": request.status,
        "requires_approval": request.requires_approval,
        "approved_by": request.approved_by or None,
        "approved_at": _iso(request.approved_at),
        "rejection_reason": request.rejection_reason or None,
        "result": request.result,
        "created_at": _iso(request.created_at),
        "updated_at": _iso(request.updated_at),
        "completed_at": _iso(request.completed_at),
        "approval_url": (request.approval_url or None) if request.status == PENDING else None,
        "requester": request.requester or None,
        "decision": request.decision,
        "error": request.last_error or None,
    }


def _visible(*, caller: Caller, staff: bool):
    """The requests a viewer may see: staff all of them; a remote (by its key) the requests it sent us."""
    if staff:
        return CrossRepoRequest.objects.all()
    if caller.remote is None:
        return CrossRepoRequest.objects.none()
    return CrossRepoRequest.objects.filter(direction=Direction.INCOMING, from_repo=caller.identity)


def request_get(*, request_id: str, caller: Caller, staff: bool, direction: str | None = None) -> CrossRepoRequest:
    """One request as `caller` (or staff) may see it: `direction` picks the side when this node holds both
    (default: the incoming one, else the outgoing one). Raises ValidationError on `direction` for a value that
    is not incoming or outgoing, and CrossRepoRequest.DoesNotExist when there is none the viewer may see (a
    remote does not learn that another's request exists)."""
    if direction is not None and direction not in Direction.values:
        raise ValidationError({"direction": f"{direction[:40]!r} is not one of incoming, outgoing"})
    found = _visible(caller=caller, staff=staff).filter(request_id=request_id)
    if direction is not None:
        found = found.filter(direction=direction)
    request = found.order_by("direction").first()  # "incoming" sorts first
    if request is None:
        raise CrossRepoRequest.DoesNotExist(f"no request {request_id!r}")
    return request


def requests_page(
    *,
    caller: Caller,
    staff: bool,
    direction: str | None = None,
    status: str | None = None,
    remote: str | None = None,
    cursor: str | None = None,
    limit: int = PAGE_LIMIT,
) -> dict:
    """The requests the viewer may see (`_visible`), newest first, narrowed to `direction`, `status` and the
    other side's identity (`remote`), one page at a time: `{"results": [request_record], "next_cursor"}`
    (`next_cursor` is null on the last page; pass it back as `cursor` for the next one). Raises ValidationError
    naming `direction`, `status`, `limit` or `cursor` for a value it cannot take."""
    if direction and direction not in Direction.values:
        raise ValidationError({"direction": f"{direction[:40]!r} is not one of {', '.join(Direction.values)}"})
    if status and status not in RequestStatus.values:
        raise ValidationError({"status": f"{status[:40]!r} is not one of {', '.join(RequestStatus.values)}"})
    if not 1 <= limit <= PAGE_MAX_LIMIT:
        raise ValidationError({"limit": f"expected 1 to {PAGE_MAX_LIMIT}, got {limit}"})
    rows = _visible(caller=caller, staff=staff)
    if direction:
        rows = rows.filter(direction=direction)
    if status:
        rows = rows.filter(status=status)
    if remote:
        other = remote.strip().rstrip("/")
        rows = rows.filter(
            Q(direction=Direction.INCOMING, from_repo__iexact=other)
            | Q(direction=Direction.OUTGOING, to_repo__iexact=other)
        )
    after = _decode_cursor(cursor)
    if after is not None:
        created_at, pk = after
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    page = list(rows.order_by("-created_at", "-pk")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return {
        "results": [request_record(r) for r in page],
        "next_cursor": _encode_cursor(page[-1]) if more else None,
    }


def _encode_cursor(last: CrossRepoRequest) -> str:
    raw = json.dumps([last.created_at.isoformat(), last.pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    try:
        created_at, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = parse_datetime(created_at) if isinstance(created_at, str) else None
        if moment is None or not isinstance(pk, int) or isinstance(pk, bool):
            raise TypeError
    except (ValueError, TypeError, binascii.Error):
        raise ValidationError({"cursor": "not a cursor this node gave out: start again without one"}) from None
    return moment, pk


def approval_queue_depth() -> int:
    """The approval queue: incoming requests waiting for a human (one count on the status index)."""
    return CrossRepoRequest.objects.filter(direction=Direction.INCOMING, status=PENDING, requires_approval=True).count()


def request_gauges() -> dict[str, Any]:
    """What /metrics shows of requests, read now: the approval queue (incoming requests waiting for a human)
    and the deliveries by kind and status (`{(kind, status): n}`, every row not yet delivered)."""
    queue = approval_queue_depth()
    rows = (
        Delivery.objects.exclude(status=Delivery.Status.DELIVERED)
        .values_list("kind", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {"approval_queue": queue, "deliveries": {(kind, status): n for kind, status, n in rows}}


def request_that_created(*, entity_uuid: str) -> CrossRepoRequest | None:
    """The incoming request (a mutation or a delegation) whose approval created this node's entity `entity_uuid`:
    its `result.created.uuid` (requests_app.services._execute records it), or None."""
    return (
        CrossRepoRequest.objects.filter(direction=Direction.INCOMING, result__created__uuid=entity_uuid)
        .order_by("-created_at")
        .first()
    )


def requests_that_created(*, canonical_refs: list[str]) -> dict[str, CrossRepoRequest]:
    """Our outgoing requests that created the remote entities `canonical_refs` ("org/repo#id"), by that ref: the
    other side of request_that_created, from the `created` the remote's answer or callback carried."""
    if not canonical_refs:
        return {}
    rows = CrossRepoRequest.objects.filter(
        direction=Direction.OUTGOING, result__created__canonical_ref__in=canonical_refs
    ).order_by("created_at")
    return {row.result["created"]["canonical_ref"]: row for row in rows}


def request_series(frame: dict) -> dict:
    """The approval queue over a window of points (`frame`: audit.selectors.series_window), for the metrics
    page: `{"arrived": [n], "approved": [n], "rejected": [n], "approval_rate": [percent of the decisions of the
    point, or null without any], "decision_seconds": [mean time from arrival to decision of the point's
    decisions, or null], "queue_depth": [requests waiting at the end of the point]}`.

    Counts incoming requests that needed a human (`requires_approval`), as the approval queue and its metrics do.
    A request's decision is its `approved_at` (approved) or `completed_at` (rejected); a cancelled one leaves
    the queue at its `completed_at` without a decision. One query: the requests that arrived before the window
    ends and were still waiting when it began."""
    starts, period = frame["starts"], frame["period_seconds"]
    since, until = frame["since"], frame["until"]
    points = len(starts)
    rows = (
        CrossRepoRequest.objects.filter(direction=Direction.INCOMING, requires_approval=True, created_at__lt=until)
        .filter(Q(status=PENDING) | Q(approved_at__gte=since) | Q(completed_at__gte=since))
        .values_list("created_at", "status", "approved_at", "completed_at")
    )

    def at(moment: datetime | None) -> int | None:
        if moment is None or moment < since or moment >= until:
            return None
        return int((moment - since).total_seconds()) // period

    arrived, approved, rejected = [0] * points, [0] * points, [0] * points
    waited: list[list[float]] = [[] for _ in range(points)]
    depth_change = [0] * points  # +1 in the point a request joins the queue, -1 in the one it leaves
    for created_at, status, approved_at, completed_at in rows:
        left, decided = None, None
        if approved_at is not None:
            left, decided = approved_at, approved
        elif status == REJECTED:
            left, decided = completed_at, rejected
        elif status != PENDING:
            left = completed_at or created_at  # cancelled (or failed before a decision): gone, undecided
        if left is not None and left < since:
            continue
        joined = at(created_at)
        if joined is not None:
            arrived[joined] += 1
        depth_change[0 if created_at < since else joined] += 1
        gone = at(left)
        if gone is not None:
            depth_change[gone] -= 1
            if decided is not None:
                decided[gone] += 1
                waited[gone].append((left - created_at).total_seconds())
    depth, queue_depth = 0, []
    for change in depth_change:
        depth += change
        queue_depth.append(depth)
    return {
        "arrived": arrived,
        "approved": approved,
        "rejected": rejected,
        "approval_rate": [
            round(100 * a / (a + r), 1) if a + r else None for a, r in zip(approved, rejected, strict=True)
        ],
        "decision_seconds": [round(sum(w) / len(w), 1) if w else None for w in waited],
        "queue_depth": queue_depth,
    }
