"""Writing the audit log. Every cross-repo operation, in or out, leaves one row; services call these."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditLog
from federation_site import files, metrics

logger = logging.getLogger("sudocode.audit")
_MAX_SUMMARY = 2000  # characters of JSON kept per payload/result: enough to follow a call, never a whole body


def _summary(value: Any) -> Any:
    if value is None:
        return None
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
    # INFO even when it failed: the CLI (which logs warnings) reports a failure itself, in its own words.
    if logger.isEnabledFor(logging.INFO):
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
        logger.info(f"{direction} {operation} {status}", extra={k: v for k, v in fields.items() if v is not None})
    return row


ARCHIVE_GITIGNORE = "audit-archive/"  # the line in .sudocode/.gitignore that keeps archives out of git
_DELETE_BATCH = 900  # ids per DELETE: under SQLite's 999 variables


def audit_prune(*, before: datetime, archive_dir: Path, dry_run: bool = False) -> dict[str, Any]:
    """Remove the audit rows older than `before`, after exporting them to a new JSONL file in `archive_dir`
    (one row per line, every column; timestamps ISO 8601 UTC), written atomically: the file appears whole or not
    at all, and rows are deleted only once it is on disk, in one transaction. `archive_dir`'s parent
    .gitignore gets ARCHIVE_GITIGNORE. `dry_run` only counts. Returns {"count", "oldest", "newest", "archive"}
    (the archive's path, None when nothing went). Source of the rule: issue 15 item 8 (retention, 90 days by
    default: `retention.audit_days`)."""
    rows = AuditLog.objects.filter(timestamp__lt=before)
    count = rows.count()
    summary: dict[str, Any] = {"count": count, "oldest": None, "newest": None, "archive": None}
    if count:
        first = rows.order_by("timestamp").values_list("timestamp", flat=True).first()
        last = rows.order_by("-timestamp").values_list("timestamp", flat=True).first()
        summary.update(oldest=first.isoformat(), newest=last.isoformat())
    if dry_run or not count:
        return summary
    archive_dir = Path(archive_dir)
    files.ensure_lines(archive_dir.parent / ".gitignore", [ARCHIVE_GITIGNORE], header="sudocode federation: archives")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = archive_dir / f"audit-{stamp}-{secrets.token_hex(3)}.jsonl"
    pruned: list[str] = []
    try:
        with transaction.atomic():
            # Only the rows written to the file are deleted: a row that turned old meanwhile waits for the next run.
            files.write_atomic_chunks(path, _archive_lines(rows.order_by("timestamp", "log_id"), pruned))
            for start in range(0, len(pruned), _DELETE_BATCH):
                AuditLog.objects.filter(log_id__in=pruned[start : start + _DELETE_BATCH]).delete()
    except BaseException:
        path.unlink(missing_ok=True)  # the rows stay: no archive may hold rows the log still has
        raise
    summary.update(count=len(pruned), archive=str(path))
    logger.info("audit rows archived and pruned", extra={"count": len(pruned), "archive": str(path)})
    return summary


def _archive_lines(rows, pruned: list[str]) -> Iterator[bytes]:
    for row in rows.values().iterator(chunk_size=2000):
        row["timestamp"] = row["timestamp"].astimezone(UTC).isoformat()
        pruned.append(row["log_id"])
        yield (json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
