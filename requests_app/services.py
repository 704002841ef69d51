"""Requests for work between nodes: receiving one (incoming), deciding and carrying it out, and asking another
node for one (outgoing) and learning its outcome. Both sides keep the request under the same request_id.

Incoming: `request_receive` (the mutate endpoint) -> policy -> pending (a maintainer decides with
`request_approve` / `request_reject`) or carried out at once -> the entity is written through the tracker and
committed -> the requester is called back (a Delivery row, sent by the worker).
Outgoing: `request_send` records the request, then sends it; the callback (`outcome_receive`) or the poller
(`request_poll`) brings the outcome, and a completed request adds the cross-repo blocker to the local issue.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import audit_record
from federation_site import identity, node
from protocol import messages
from remotes.models import RemoteRepo
from remotes.policy import Caller, PermissionDenied
from remotes.services import kind_of_id
from requests_app import delegation, delivery, policy
from requests_app.models import CrossRepoRequest, Direction, RequestType
from requests_app.selectors import response_for
from requests_app.states import (
    APPROVED,
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL,
    PENDING,
    REJECTED,
    request_event,
    transition,
)
from tracker import services as tracker
from tracker import sync as tracker_sync
from tracker.models import Entity

logger = logging.getLogger(__name__)

# The requester's issue is blocked by what it asked for when it says the new entity was discovered from it.
_BLOCKS_ORIGIN = ("discovered-from", "blocks")
_WAIT_FOR_AUTO = 10.0  # seconds a duplicate of an auto-approved request waits for the first one to finish
# An approved request not carried out this long after its approval was abandoned (its process died): carry it
# out again. Safe even when it was not: the entity's uuid comes from the request, so it is created once.
ABANDONED_AFTER = timedelta(seconds=5)
_ENTITY_NAMESPACE = uuid.UUID("5d4f3c1e-2b7a-4c9e-8f10-6a1d2e3b4c5d")


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex[:12]}"


# --- incoming ---------------------------------------------------------------------------------------------


def request_receive(
    *,
    caller: Caller,
    message: messages.MutateMessage | messages.DelegateMessage,
    correlation_id: str,
    base_url: str,
) -> tuple[dict, int]:
    """Record an incoming mutate or delegate message and answer it: (mutate_response or delegate_response,
    HTTP status). The same request_id sent again (a retry, a duplicate delivery) gets the same answer and creates
    nothing more, before any quota is counted: a retry never gets 429. Raises PermissionDenied, RateLimited,
    and tracker.sync.DataDamaged while a JSONL file cannot be read."""
    cfg = node.config()
    request_id = message.metadata.request_id
    existing = CrossRepoRequest.objects.filter(request_id=request_id, direction=Direction.INCOMING).first()
    if existing is not None:
        return _answer_duplicate(existing, caller)
    # A file a human must fix first: refuse before recording anything, so the sender's retry is the request.
    tracker_sync.ensure_writable()
    delegate = isinstance(message, messages.DelegateMessage)
    operation = RequestType.DELEGATE if delegate else message.operation
    data = messages.dump(message.task if delegate else message.data)
    try:
        if delegate:
            delegation.chain_check(data)
        decision = policy.evaluate(caller, operation, data, cfg, metadata=messages.dump(message.metadata))
    except (PermissionDenied, policy.RateLimited) as exc:
        # The same request sent twice at once: the copy that lost the race is answered like a retry.
        again = CrossRepoRequest.objects.filter(request_id=request_id, direction=Direction.INCOMING).first()
        if again is not None:
            return _answer_duplicate(again, caller)
        audit_record(  # a refusal is audited too, whichever door the message came through
            operation="delegate" if delegate else "mutate",
            direction="incoming",
            local_repo=identity.local_url(),
            remote_repo=caller.identity,
            status="failed",
            request_id=request_id,
            correlation_id=correlation_id,
            payload={"operation": operation, "title": data.get("title")},
            error=str(exc),
        )
        raise
    now = timezone.now()
    # Carried out at once: the request's row, its approval, the entity and the outcome are one writer's turn at the
    # file (tracker.sync.write_batch), one transaction committed before the answer, so one BEGIN, one COMMIT and
    # one wake-up of the outbox's listeners instead of four.
    turn = tracker_sync.write_batch(_kind_written(operation, data)) if decision.auto else nullcontext()
    with turn:
        try:
            with transaction.atomic():
                request = CrossRepoRequest.objects.create(
                    request_id=request_id,
                    direction=Direction.INCOMING,
                    from_repo=caller.identity,
                    to_repo=identity.local_url(),
                    request_type=operation,
                    payload=messages.dump(message),
                    requires_approval=not decision.auto,
                    requester=message.metadata.requester or "",
                    correlation_id=correlation_id,
                    approval_url=f"{base_url.rstrip('/')}/approvals/{request_id}",
                    decision=decision.as_json(),
                    created_at=now,
                    updated_at=now,
                )
                audit_record(
                    operation="delegate" if delegate else "mutate",
                    direction="incoming",
                    local_repo=request.to_repo,
                    remote_repo=caller.identity,
                    status="pending",
                    request_id=request_id,
                    correlation_id=correlation_id,
                    payload={"operation": operation, "title": data.get("title"), "decision": decision.as_json()},
                )
                request_event(request, type="request_created", status_from=None)
        except IntegrityError:  # the same request arrived twice at once: the other one is recorded
            request = None
        if request is not None and decision.auto:
            transition(
                request, APPROVED, actor=f"policy: {decision.rule}", approved_by="policy", approved_at=timezone.now()
            )
            _execute(request)
            if decision.notify:
                delivery.queue_notifications(request, "request_auto_approved", mentions=decision.notify)
    if request is None:  # answered outside the file's lock: the other copy may need it to finish
        return _answer_duplicate(
            CrossRepoRequest.objects.get(request_id=request_id, direction=Direction.INCOMING), caller
        )
    if not decision.auto:
        event = "delegation_pending_acceptance" if delegate else "request_pending_approval"
        delivery.queue_notifications(request, event, mentions=decision.notify)
    return response_for(request), 200


def _kind_written(operation: str, data: dict) -> str:
    """Which file carrying out an incoming request writes: a spec's for create_spec and a spec's delegation,
    else the issues' (create_issue, update_issue, an issue's delegation)."""
    if operation == RequestType.CREATE_SPEC or (operation == RequestType.DELEGATE and data.get("type") == "spec"):
        return "spec"
    return "issue"


def _answer_duplicate(request: CrossRepoRequest, caller: Caller) -> tuple[dict, int]:
    if request.from_repo != caller.identity:
        return {
            "error": "conflict",
            "detail": f"request_id {request.request_id} is already used by another repository; choose a new one",
        }, 409
    deadline = time.monotonic() + _WAIT_FOR_AUTO
    while not request.requires_approval and request.status not in FINAL and time.monotonic() < deadline:
        if request.status in (APPROVED, PENDING) and request_resume(request=request):
            break  # the first copy's process died before carrying it out: done now
        time.sleep(0.05)  # the first copy is being carried out right now: answer with its outcome
        request.refresh_from_db()
    return response_for(request), 200


def request_resume(*, request: CrossRepoRequest) -> bool:
    """Carry out, once, an incoming request its process left half-way ABANDONED_AFTER ago or more: approved
    but not carried out, or auto-approved by policy but recorded only as pending. A conditional update claims
    it. Returns whether this call carried it out. Called by a duplicate of the request (the sender's retry) and
    by the periodic `resume_approved`."""
    stale = request.updated_at <= timezone.now() - ABANDONED_AFTER
    auto_pending = request.status == PENDING and not request.requires_approval
    if not stale or request.direction != Direction.INCOMING or not (request.status == APPROVED or auto_pending):
        return False
    claimed = CrossRepoRequest.objects.filter(
        pk=request.pk, status=request.status, updated_at=request.updated_at
    ).update(updated_at=timezone.now())
    if claimed != 1:
        return False
    request.refresh_from_db()
    logger.warning("carrying out %s again: it was left %s by a process that died", request.request_id, request.status)
    if request.status == PENDING and not transition(
        request, APPROVED, actor="policy (resumed)", approved_by="policy", approved_at=timezone.now()
    ):
        return False
    _execute(request)
    return True


def requests_resume() -> int:
    """Periodic: every abandoned request (see request_resume). Returns how many were carried out."""
    cutoff = timezone.now() - ABANDONED_AFTER
    half_done = Q(status=APPROVED) | Q(status=PENDING, requires_approval=False)
    abandoned = CrossRepoRequest.objects.filter(half_done, direction=Direction.INCOMING, updated_at__lte=cutoff)
    return sum(request_resume(request=r) for r in abandoned.order_by("updated_at")[:100])


def request_get(*, request_id: str, direction: str = Direction.INCOMING) -> CrossRepoRequest:
    request = CrossRepoRequest.objects.filter(request_id=request_id, direction=direction).first()
    if request is None:
        raise CrossRepoRequest.DoesNotExist(f"no {direction} request {request_id!r}")
    return request


def request_approve(
    *, request_id: str, actor: str, assignee: str | None = None, estimated_completion: str | None = None
) -> CrossRepoRequest:
    """A maintainer says yes (for a delegation: accepts it): the entity is created (once, however often this is
    called) and the requester is called back. `estimated_completion` (ISO 8601) is kept with the result (a
    delegation's answer carries it, seed: delegate_response; `blocked_by` shows it to other nodes); `assignee`
    (delegations only) is the new issue's."""
    request = request_get(request_id=request_id)
    if request.status == PENDING:
        tracker_sync.ensure_writable()  # DataDamaged: it stays pending until the file is fixed
        promise = _promise(request, assignee, estimated_completion)
        if transition(request, APPROVED, actor=actor, approved_by=actor, approved_at=timezone.now(), **promise):
            _execute(request)
            return request
        request.refresh_from_db()
    if request.status in (APPROVED, COMPLETED):
        return request  # approved twice (two clicks, two maintainers): one creation, same outcome
    raise ValidationError({"status": f"request {request_id} is {request.status}; only a pending one can be approved"})


def _promise(request: CrossRepoRequest, assignee: str | None, estimated_completion: str | None) -> dict:
    """What approving promises, kept in `result` until the entity exists: an estimated completion (any request;
    other nodes' why-blocked shows it) and, for a delegation, an assignee."""
    if not (assignee or estimated_completion):
        return {}
    if assignee and not request.is_delegation:
        raise ValidationError({"assignee": "only a delegation takes an assignee"})
    promise: dict[str, Any] = {}
    if assignee:
        promise["assignee"] = assignee.strip()
    if estimated_completion:
        try:
            when = messages.timestamp_text(estimated_completion)
        except ValueError as exc:
            raise ValidationError({"estimated_completion": str(exc)}) from None
        promise["estimated_completion"] = when
    return {"result": promise}


def request_reject(*, request_id: str, actor: str, reason: str) -> CrossRepoRequest:
    if not reason.strip():
        raise ValidationError({"reason": "say why, for the requester"})
    request = request_get(request_id=request_id)
    if request.status == REJECTED:
        return request
    if request.status != PENDING or not transition(
        request, REJECTED, actor=actor, approved_by=actor, rejection_reason=reason.strip()
    ):
        request.refresh_from_db()
        raise ValidationError(
            {"status": f"request {request_id} is {request.status}; only a pending one can be rejected"}
        )
    delivery.queue_callback(request)
    return request


def request_cancel(*, request_id: str, caller: Caller) -> CrossRepoRequest:
    """The requester withdraws its incoming request while it waits for a maintainer (A2A CancelTask).
    CrossRepoRequest.DoesNotExist when `caller` did not send it (another's request is not shown to exist);
    ValidationError naming `status` once it is decided. Cancelling twice is not an error."""
    request = request_get(request_id=request_id)
    if caller.remote is None or request.from_repo != caller.identity:
        raise CrossRepoRequest.DoesNotExist(f"no request {request_id!r} from {caller}")
    if request.status == CANCELLED:
        return request
    if request.status != PENDING or not transition(request, CANCELLED, actor=caller.identity):
        request.refresh_from_db()
        raise ValidationError(
            {"status": f"request {request_id} is {request.status}; only a pending one can be cancelled"}
        )
    return request


def _execute(request: CrossRepoRequest) -> None:
    """Carry out an approved incoming request through the tracker (write-through and git commit)."""
    data = request.data
    actor = f"{request.requester or 'a remote agent'} via {request.from_repo} (request {request.request_id})"
    entity_uuid = str(uuid.uuid5(_ENTITY_NAMESPACE, f"{request.from_repo} {request.request_id}"))
    promise = {k: v for k, v in (request.result or {}).items() if k in ("assignee", "estimated_completion")}
    try:
        if request.is_delegation:
            entity = _accept(request, actor=actor, entity_uuid=entity_uuid, assignee=promise.get("assignee"))
        else:
            entity = _mutate(
                request.request_type,
                data,
                actor=actor,
                remote_relationships=_remote_relationships(request),
                entity_uuid=entity_uuid,
            )
    except (ValidationError, ObjectDoesNotExist) as exc:
        reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        moved = transition(request, FAILED, actor="node", last_error=reason, result={"error": reason})
    else:
        created = {
            "id": entity.sudocode_id,
            "uuid": entity.uuid,
            "type": entity.kind,
            "canonical_ref": identity.canonical_ref(entity.sudocode_id),
            "url": request.approval_url.split("/approvals/")[0] + f"/{entity.kind}s/{entity.sudocode_id}",
        }
        moved = transition(request, COMPLETED, actor="node", result={"created": created, **promise})
    if not moved:
        # Another process carried it out too (request_resume took it for abandoned while this one waited for the
        # file lock) and recorded the outcome first: answer with that outcome; its callback is queued already.
        request.refresh_from_db()
        return
    delivery.queue_callback(request)


def _created_once(entity_uuid: str, create: Any) -> Entity:
    """`create()` the entity of a request, or the one another process created for it first: the uuid comes from
    the request, so the tracker refuses a second one (a ValidationError at `uuid`) and the first is the answer."""
    try:
        return create()
    except ValidationError as exc:
        existing = Entity.objects.filter(uuid=entity_uuid).first()
        if existing is None or "uuid" not in getattr(exc, "error_dict", {}):
            raise
        return existing


def _accept(request: CrossRepoRequest, *, actor: str, entity_uuid: str, assignee: str | None) -> Entity:
    """Create the spec or issue a delegation asks for, with its provenance (requests_app.delegation)."""
    fields = delegation.created_fields(request, actor)
    if request.data["type"] == "spec":
        return _created_once(entity_uuid, lambda: tracker.spec_create(uuid=entity_uuid, **fields))
    return _created_once(
        entity_uuid, lambda: tracker.issue_create(uuid=entity_uuid, assignee=assignee or None, **fields)
    )


def _mutate(operation: str, data: dict, *, actor: str, remote_relationships: list[dict], entity_uuid: str) -> Entity:
    create = {RequestType.CREATE_ISSUE: tracker.issue_create, RequestType.CREATE_SPEC: tracker.spec_create}
    if operation in create:
        return _created_once(
            entity_uuid,
            lambda: create[operation](
                uuid=entity_uuid,
                title=data["title"],
                content=data.get("description") or "",
                priority=2 if data.get("priority") is None else data["priority"],
                tags=data.get("labels") or [],
                actor=actor,
                remote_relationships=remote_relationships,
                from_remote=True,
            ),
        )
    fields: dict[str, Any] = {}
    for key, target in (
        ("title", "title"),
        ("description", "content"),
        ("status", "status"),
        ("priority", "priority"),
        ("labels", "tags"),
    ):
        if data.get(key) is not None:
            fields[target] = data[key]
    return tracker.issue_update(
        issue=data["id"], actor=actor, add_remote_relationships=remote_relationships, from_remote=True, **fields
    )


def _remote_relationships(request: CrossRepoRequest) -> list[dict]:
    """The request's relationships, seen from the new entity: kept as the seed's remote_relationships, plus
    `blocks` on the requester's issue when the new entity was discovered from it."""
    out = []
    for rel in request.data.get("relationships") or []:
        repo_path, _, remote_id = rel["remote_ref"].partition("#")
        repo = request.from_repo if identity.repo_path(request.from_repo) == repo_path else repo_path
        base = {
            "remote_repo": repo,
            "remote_entity_type": kind_of_id(remote_id),
            "remote_id": remote_id,
            "canonical_ref": rel["remote_ref"],
        }
        out.append({"type": rel["type"], **base})
        if rel["type"] in _BLOCKS_ORIGIN and rel["type"] != "blocks":
            out.append({"type": "blocks", **base})
    return out


# --- outgoing ---------------------------------------------------------------------------------------------


def request_send(
    *,
    remote: RemoteRepo,
    operation: str,
    data: dict,
    requester: str,
    auto_approve: bool = False,
    origin: str | None = None,
) -> CrossRepoRequest:
    """Ask `remote` for work. The request is recorded first, so it is never lost: if `remote` does not
    answer, the poller sends it again later (the request_id makes that safe)."""
    if origin:
        local = Entity.objects.filter(sudocode_id=origin).first()
        if local is None:
            raise ValidationError({"discovered_from": f"no issue or spec {origin!r} in this repository"})
        data = {
            **data,
            "relationships": [
                *(data.get("relationships") or []),
                {"type": "discovered-from", "remote_ref": identity.canonical_ref(origin)},
            ],
        }
    message = {
        "type": "mutate",
        "from": identity.local_url(),
        "to": remote.url,
        "timestamp": timezone.now(),
        "operation": operation,
        "data": {k: v for k, v in data.items() if v not in (None, [], "")},
        "metadata": {"request_id": new_request_id(), "requester": requester, "auto_approve": auto_approve},
    }
    return _record_outgoing(remote, operation, message)


def delegation_send(*, remote: RemoteRepo, task: dict, requester: str, auto_approve: bool = False) -> CrossRepoRequest:
    """Hand `task` (requests_app.delegation.task_for) to `remote`. Recorded first and sent again until the
    remote has it, like request_send; the answer (accepted, with the new entity) comes by callback or poll.
    ValidationError when the task's chain already passed through `remote` (it would refuse it as a cycle)."""
    back = [ref for ref in (task.get("context") or {}).get("chain") or [] if ref.partition("#")[0] == remote.repo_path]
    if back:
        raise ValidationError(
            {"url": f"the task came through {remote.url} already ({back[0]}): handing it back would be a cycle"}
        )
    message = {
        "type": "delegate",
        "from": identity.local_url(),
        "to": remote.url,
        "timestamp": timezone.now(),
        "task": task,
        "metadata": {
            "request_id": f"del-{uuid.uuid4().hex[:12]}",
            "requester": requester,
            "auto_approve": auto_approve,
        },
    }
    return _record_outgoing(remote, RequestType.DELEGATE, message)


def _record_outgoing(remote: RemoteRepo, operation: str, message: dict) -> CrossRepoRequest:
    try:
        parsed = messages.parse_message(message)
    except messages.MessageError as exc:
        first = exc.errors[0]
        raise ValidationError({first["path"] or "message": first["message"]}) from None
    now = timezone.now()
    with transaction.atomic():
        request = CrossRepoRequest.objects.create(
            request_id=parsed.metadata.request_id,
            direction=Direction.OUTGOING,
            from_repo=identity.local_url(),
            to_repo=remote.url,
            request_type=operation,
            payload=messages.dump(parsed),
            requires_approval=not parsed.metadata.auto_approve,
            requester=parsed.metadata.requester or "",
            correlation_id=uuid.uuid4().hex,
            created_at=now,
            updated_at=now,
            sent=False,
            next_poll_at=now,
        )
        request_event(request, type="request_created", status_from=None)
    _send(request)
    return request


def _send(request: CrossRepoRequest) -> None:
    from remotes.client import RemoteError, RemoteRejected
    from remotes.sync import audited_call, client_for

    remote = RemoteRepo.objects.filter(url=request.to_repo).first()
    if remote is None:
        transition(request, FAILED, actor="node", last_error=f"{request.to_repo} is no longer a remote")
        return
    kind = "delegate" if request.is_delegation else "mutate"
    try:
        response = audited_call(
            remote,
            kind,
            # No retries inside the call: this row is retried by the poller, after what Retry-After asks.
            lambda: client_for(remote, kind, retries=0).post(
                f"/federation/{kind}", request.payload, correlation_id=request.correlation_id
            ),
            payload={"operation": request.request_type, "title": request.data.get("title")},
            request_id=request.request_id,
        )
    except RemoteRejected as exc:  # refused for good (403 untrusted, 400 invalid, 409 id taken)
        CrossRepoRequest.objects.filter(pk=request.pk).update(sent=True)
        transition(request, FAILED, actor=remote.url, last_error=str(exc), sent=True)
        return
    except RemoteError as exc:  # not reached, or busy: the poller sends it again
        error, next_poll = _retry_later(request, exc)
        CrossRepoRequest.objects.filter(pk=request.pk).update(last_error=error, next_poll_at=next_poll)
        request.last_error = error
        return
    CrossRepoRequest.objects.filter(pk=request.pk).update(sent=True, last_error="")
    request.sent = True
    _apply_outcome(request, messages.parse_response(response.data))


def outcome_receive(
    *, caller: Caller, response: messages.MutateResponse | messages.DelegateResponse
) -> CrossRepoRequest:
    """A callback: the node we asked tells us what became of our request."""
    request = CrossRepoRequest.objects.filter(request_id=response.request_id, direction=Direction.OUTGOING).first()
    if request is None or request.to_repo != caller.identity:
        raise CrossRepoRequest.DoesNotExist(f"no request {response.request_id} was sent to {caller}")
    audit_record(
        operation="callback",
        direction="incoming",
        local_repo=request.from_repo,
        remote_repo=caller.identity,
        status="success",
        request_id=request.request_id,
        correlation_id=request.correlation_id,
        payload={"status": response.status},
    )
    _apply_outcome(request, response)
    return request


def request_poll(*, request: CrossRepoRequest) -> None:
    """Ask the other node what became of an outgoing request (a lost callback cannot strand it)."""
    from remotes.client import RemoteError, RemoteRejected
    from remotes.sync import audited_call, client_for

    if not request.sent:
        _send(request)
        return
    remote = RemoteRepo.objects.filter(url=request.to_repo).first()
    if remote is None:
        return
    try:
        response = audited_call(
            remote,
            "poll",
            lambda: client_for(remote, "mutate", retries=0).get(
                f"/federation/requests/{request.request_id}", correlation_id=request.correlation_id
            ),
            request_id=request.request_id,
        )
    except (RemoteRejected, RemoteError) as exc:
        error, next_poll = _retry_later(request, exc)
        CrossRepoRequest.objects.filter(pk=request.pk).update(last_error=error, next_poll_at=next_poll)
        return
    _apply_outcome(request, messages.parse_response(response.data))


def _retry_later(request: CrossRepoRequest, exc: Exception) -> tuple[str, Any]:
    """(what to show as the request's last error, when to try again) after a failed send or poll: the other
    node's own words and its Retry-After when it gave them (a 429: its quota), the probe time when its circuit
    breaker is open (remotes.breaker), else our backoff."""
    from remotes.breaker import CircuitOpen

    if isinstance(exc, CircuitOpen):
        return str(exc)[:2000], exc.retry_at
    body = getattr(exc, "body", None)
    detail = body.get("detail") if isinstance(body, dict) else None
    error = f"{exc} ({detail})" if detail else str(exc)
    retry_after = body.get("retry_after") if isinstance(body, dict) else None
    if isinstance(retry_after, int) and retry_after > 0:
        return error[:2000], timezone.now() + timedelta(seconds=min(retry_after, 86400))
    return error[:2000], _next_poll(request)


def _next_poll(request: CrossRepoRequest):
    age = (timezone.now() - request.created_at).total_seconds()
    return timezone.now() + timedelta(seconds=min(300, max(5, age / 10)))


def _apply_outcome(request: CrossRepoRequest, response: messages.MutateResponse | messages.DelegateResponse) -> None:
    """Bring our copy of an outgoing request in line with what the other node says. A completed creation
    that was discovered from one of our issues makes that issue blocked by the new remote entity; an accepted
    delegation links the entity it came from to the one the delegate created (`delegated-to`)."""
    fields: dict[str, Any] = {}
    if response.approval_url and response.approval_url != request.approval_url:
        fields["approval_url"] = response.approval_url
    fields.update(_approval_of(request, response.record))
    if response.decision is not None:
        fields["decision"] = messages.dump(response.decision)
    if isinstance(response, messages.DelegateResponse) and response.status == "accepted":
        created = messages.dump(response.created) if response.created else None
        promise = {k: v for k, v in messages.dump(response).items() if k in ("assignee", "estimated_completion")}
        if transition(request, COMPLETED, actor=request.to_repo, result={"created": created, **promise}, **fields):
            _link_delegator(request, created)
        else:
            _outcome_applied_elsewhere(request)
        return
    if response.status in ("pending_approval", "approved", "pending_acceptance") or request.status in FINAL:
        fields["next_poll_at"] = _next_poll(request)
        CrossRepoRequest.objects.filter(pk=request.pk).update(**fields)
        for key, value in fields.items():
            setattr(request, key, value)
        return
    moved = True
    if response.status == "completed":
        created = messages.dump(response.created) if response.created else None
        result = {"created": created, **_promised_in(response.record)}
        moved = transition(request, COMPLETED, actor=request.to_repo, result=result, **fields)
        if moved and created:
            _block_origin(request, created)
    elif response.status == "rejected":
        moved = transition(request, REJECTED, actor=request.to_repo, rejection_reason=response.reason or "", **fields)
    elif response.status == "failed":
        moved = transition(request, FAILED, actor=request.to_repo, last_error=response.reason or "", **fields)
    elif response.status == "cancelled":  # withdrawn at the other node by whoever holds our key (A2A CancelTask)
        moved = transition(request, CANCELLED, actor=request.to_repo, **fields)
    if not moved:
        _outcome_applied_elsewhere(request)


def _outcome_applied_elsewhere(request: CrossRepoRequest) -> None:
    """Our copy lost the race to record the outcome: another process (the other node's callback, a poll)
    recorded it first. Re-read it, so the caller (`remote delegate`, `remote create-issue`) shows that outcome,
    not the 'pending' it read before sending."""
    request.refresh_from_db()


def _promised_in(record: messages.RequestRecord | None) -> dict[str, Any]:
    """The estimated completion the other node's maintainer gave approving our request (its record's result),
    kept with our copy: why-blocked shows it for the entity the request created."""
    result = getattr(record, "result", None) if record is not None else None
    when = result.get("estimated_completion") if isinstance(result, dict) else None
    return {"estimated_completion": when} if isinstance(when, str) and when else {}


def _approval_of(request: CrossRepoRequest, record: messages.RequestRecord | None) -> dict[str, Any]:
    """Who approved our request over there and when, from the other node's record, so our copy is whole."""
    if record is None:
        return {}
    approved_at = _parse_moment(record.approved_at)
    fields: dict[str, Any] = {}
    if record.approved_by and record.approved_by != request.approved_by:
        fields["approved_by"] = record.approved_by[:200]
    if approved_at is not None and approved_at != request.approved_at:
        fields["approved_at"] = approved_at
    return fields


def _parse_moment(text: str | None):
    try:
        moment = parse_datetime(text) if text else None
    except ValueError:
        return None
    return moment if moment is not None and timezone.is_aware(moment) else None


def _link_delegator(request: CrossRepoRequest, created: dict | None) -> None:
    link = delegation.origin_link(request, created) if created else None
    if link is None:
        return
    entity, relationship = link
    tracker.entity_link_remote(
        ref=entity.uuid,
        relationships=[relationship],
        actor=f"{request.to_repo} (delegation {request.request_id})",
        from_remote=True,
    )


def _block_origin(request: CrossRepoRequest, created: dict) -> None:
    origins = [
        r["remote_ref"].partition("#")[2]
        for r in request.data.get("relationships") or []
        if r.get("type") in _BLOCKS_ORIGIN and r["remote_ref"].startswith(f"{identity.repo_path(request.from_repo)}#")
    ]
    for origin in origins:
        local = Entity.objects.filter(sudocode_id=origin, kind="issue").first()
        if local is None:
            continue
        blocker = {
            "type": "blocked-by",
            "remote_repo": request.to_repo,
            "remote_entity_type": created.get("type"),
            "remote_id": created["id"],
            "remote_uuid": created.get("uuid"),
            "canonical_ref": created["canonical_ref"],
        }
        status = {"status": "blocked"} if local.status == "open" else {}
        tracker.issue_update(
            issue=local.uuid,
            actor=f"{request.to_repo} (request {request.request_id})",
            add_remote_relationships=[blocker],
            from_remote=True,
            **status,
        )
