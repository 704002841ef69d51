"""Writing the audit log. Every cross-repo operation, in or out, leaves one row; services call these."""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from audit.models import AuditLog
from federation_site import metrics

logger = logging.getLogger("sudocode.audit")
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
    """Write the audit row of one cross-repo operation, count it (and its duration) in the node's metrics, and log
    it: one line per operation, with its correlation id, remote and request id (JSON under `serve`)."""
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
    metrics.call_observe(
        operation=operation, remote=row.remote_repo, direction=direction, outcome=status, duration_ms=duration_ms
    )
    level = logging.WARNING if status == "failed" else logging.INFO
    if logger.isEnabledFor(level):
        fields = {
            "operation": operation,
            "direction": direction,
            "remote": row.remote_repo,
            "status": status,
            "duration_ms": row.duration_ms,
            "correlation_id": row.correlation_id or None,
            "request_id": request_id or None,
            "audit_log_id": row.log_id,
        }
        if error:
            fields["error"] = error[:500]
        logger.log(level, f"{direction} {operation} {status}", extra={k: v for k, v in fields.items() if v is not None})
    return row
