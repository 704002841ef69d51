"""Writing the audit log. Every cross-repo operation, in or out, leaves one row; services call these."""

from __future__ import annotations

from contextvars import ContextVar
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


# The verified signature of the incoming message being handled (set by remotes.auth for the request; a context
# variable, so each request or task sees its own). Incoming rows written while it is set keep it.
received_signature: ContextVar[dict | None] = ContextVar("received_signature", default=None)


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
        signature=received_signature.get() if direction == "incoming" else None,
    )
    metrics.call_observe(
        operation=operation, remote=row.remote_repo, direction=direction, outcome=status, duration_ms=duration_ms
    )
    return row
