"""Reading the audit log (CLI `audit list`, the dashboard's audit page)."""

from __future__ import annotations

from django.db.models import QuerySet

from audit.models import AuditLog


def audit_query(
    *,
    direction: str | None = None,
    operation: str | None = None,
    status: str | None = None,
    remote: str | None = None,
    request_id: str | None = None,
) -> QuerySet[AuditLog]:
    qs = AuditLog.objects.all()
    if direction:
        qs = qs.filter(direction=direction)
    if operation:
        qs = qs.filter(operation_type=operation)
    if status:
        qs = qs.filter(status=status)
    if remote:
        qs = qs.filter(remote_repo__icontains=remote)
    if request_id:
        qs = qs.filter(request_id=request_id)
    return qs.order_by("-timestamp")


def audit_entries(*, limit: int = 50, **filters) -> list[dict]:
    return [
        {
            "log_id": e.log_id,
            "timestamp": e.timestamp.isoformat(),
            "direction": e.direction,
            "operation": e.operation_type,
            "local_repo": e.local_repo,
            "remote_repo": e.remote_repo,
            "status": e.status,
            "request_id": e.request_id or None,
            "correlation_id": e.correlation_id or None,
            "duration_ms": e.duration_ms,
            "error": e.error_message or None,
            "payload": e.payload,
            "result": e.result,
        }
        for e in audit_query(**filters)[:limit]
    ]
