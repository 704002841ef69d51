"""Writing the audit log. Every cross-repo operation, in or out, leaves one row; services call these."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from audit.models import AuditLog
from federation_site import metrics

_MAX_SUMMARY = 2000  # characters of JSON kept per payload/result: enough to follow a call, never a whole body


def _summary(value: Any) -> Any:
    if value is None:
        return None
    import json

    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= _MAX_SUMMARY:
        return value
    return {"truncated": True, "size": len(text), "head": text[:_MAX_SUMMARY]}


def audit_record(
    *,
    operation: str,
    direction: str,
    local_repo: str,
    remote_repo: str,
    status: str,
    payload: Any = None,
    result: Any = None,
    error: str = "",
    request_id: str = "",
    correlation_id: str = "",
    duration_ms: float | None = None,
) -> AuditLog:
    """Write the audit row of one cross-repo operation and count it (and its duration) in the node's metrics."""
    row = AuditLog.objects.create(
        operation_type=operation,
        direction=direction,
        local_repo=local_repo,
        remote_repo=remote_repo or "anonymous",
        status=status,
        payload=_summary(payload),
        result=_summary(result),
        error_message=error[:2000],
        request_id=request_id,
        correlation_id=correlation_id[:128],
        timestamp=timezone.now(),
        duration_ms=None if duration_ms is None else int(round(duration_ms)),
    )
    if status != AuditLog.Status.PENDING:  # a pending row is counted once it has its outcome (audit_complete)
        metrics.call_observe(
            operation=operation, remote=row.remote_repo, direction=direction, outcome=status, duration_ms=duration_ms
        )
    return row


def audit_complete(
    *, request_id: str, operation: str, direction: str, status: str, result: Any = None, error: str = ""
) -> int:
    """Complete the `pending` row written when a request arrived (record intent, then outcome: STYLE.md 9) with
    how it ended: `status` success or failed, its result or error; and count it in the metrics then, with that
    outcome (audit_record does not count a pending row), so counter and log still agree row for row. Returns how
    many rows it completed (0 when there was no pending row)."""
    pending = AuditLog.objects.filter(
        request_id=request_id, operation_type=operation, direction=direction, status=AuditLog.Status.PENDING
    )
    remotes = list(pending.values_list("remote_repo", flat=True))
    done = pending.update(status=status, result=_summary(result), error_message=error[:2000])
    for remote in remotes[:done]:
        metrics.call_observe(operation=operation, remote=remote, direction=direction, outcome=status, duration_ms=None)
    return done
