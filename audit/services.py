"""Writing the audit log. Every cross-repo operation, in or out, leaves one row; services call these.

Reads (queries, discovers) may be audited off the request path: `audit_record_later` queues the row, and a
thread of the process writes the queue in one transaction at most `BATCH_SECONDS` later, and at exit. Only
the web processes turn that on (`batch_reads`, from federation_site.asgi when `serve` asks); everywhere
else, and for every mutation, the row is written before the answer.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from django.utils import timezone

from audit.models import AuditLog
from federation_site import metrics

_MAX_SUMMARY = 2000  # characters of JSON kept per payload/result: enough to follow a call, never a whole body
BATCH_READS_ENV = "SUDOCODE_AUDIT_BATCH_READS"  # "1": federation_site.asgi calls batch_reads (set by `serve`)
BATCH_SECONDS = 0.1  # a queued row is written within this long
BATCH_MAX_QUEUED = 10_000  # past this many waiting rows, a read writes its own row at once (no row is dropped)
logger = logging.getLogger(__name__)


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
    row = _row(
        operation=operation,
        direction=direction,
        local_repo=local_repo,
        remote_repo=remote_repo,
        status=status,
        payload=payload,
        result=result,
        error=error,
        request_id=request_id,
        correlation_id=correlation_id,
        duration_ms=duration_ms,
    )
    row.save(force_insert=True)
    metrics.call_observe(
        operation=operation, remote=row.remote_repo, direction=direction, outcome=status, duration_ms=duration_ms
    )
    return row


def audit_record_later(**fields: Any) -> None:
    """`audit_record` for a read: the row is queued and written with others within `BATCH_SECONDS` (at once
    when batching is off, or the queue is full). Counted in the metrics now. Takes audit_record's keywords."""
    batcher = _batcher
    if batcher is None:
        audit_record(**fields)
        return
    row = _row(**fields)
    if not batcher.add(row):
        row.save(force_insert=True)
    metrics.call_observe(
        operation=row.operation_type,
        remote=row.remote_repo,
        direction=row.direction,
        outcome=row.status,
        duration_ms=fields.get("duration_ms"),
    )


def batch_reads() -> None:
    """Audit reads in batches in this process from now on (`audit_record_later`), written at exit too."""
    global _batcher
    if _batcher is None:
        _batcher = _Batcher()
        atexit.register(audit_flush)


def audit_flush() -> int:
    """Write every queued row now, in the calling thread (at exit; tests). Returns how many were written."""
    batcher = _batcher
    return batcher.write_waiting() if batcher is not None else 0


class _Batcher:
    def __init__(self) -> None:
        self.waiting: list[AuditLog] = []  # taken only under _lock, by write_waiting: none is lost at exit
        self._lock = threading.Lock()
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="audit-batch", daemon=True).start()

    def add(self, row: AuditLog) -> bool:
        """Queue `row`; False when the queue is full (the caller writes it)."""
        with self._lock:
            if len(self.waiting) >= BATCH_MAX_QUEUED:
                return False
            self.waiting.append(row)
        self._wake.set()
        return True

    def _run(self) -> None:
        from django.db import close_old_connections

        while True:
            self._wake.wait()
            time.sleep(BATCH_SECONDS / 2)  # let the rows of requests running now join this batch
            self._wake.clear()
            try:
                self.write_waiting()
            except Exception:  # never let the thread die: the rows stay queued for the next try or the exit
                logger.exception("could not write a batch of audit rows; trying again")
                self._wake.set()
                time.sleep(BATCH_SECONDS)
            close_old_connections()

    def write_waiting(self) -> int:
        with self._write_lock:
            with self._lock:
                batch, self.waiting = self.waiting, []
            if not batch:
                return 0
            try:
                AuditLog.objects.bulk_create(batch)
            except Exception:
                with self._lock:  # back at the head of the queue, for the next try
                    self.waiting[:0] = batch
                raise
            return len(batch)

    _write_lock = threading.Lock()  # one writer at a time: the thread, or a flush at exit


_batcher: _Batcher | None = None


def _row(
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
    return AuditLog(
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
