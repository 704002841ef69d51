"""Writing the audit log. Every cross-repo operation, in or out, leaves one row; services call these.

Reads (queries, discovers) may be audited off the request path: `audit_record_later` queues the row, and a
thread of the process writes the queue in one transaction at most `BATCH_SECONDS` later, and at exit. Only
the web processes turn that on (`batch_reads`, from federation_site.asgi when `serve` asks); everywhere
else, and for every mutation, the row is written before the answer.
"""

from __future__ import annotations

import atexit
import json
import logging
import secrets
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import ROLLUP_BOUNDS_MS, ROLLUP_BUCKETS, AuditLog, AuditRollup
from federation_site import files, metrics

logger = logging.getLogger("sudocode.audit")
_MAX_SUMMARY = 2000  # characters of JSON kept per payload/result: enough to follow a call, never a whole body
BATCH_READS_ENV = "SUDOCODE_AUDIT_BATCH_READS"  # "1": federation_site.asgi calls batch_reads (set by `serve`)
BATCH_SECONDS = 0.1  # a queued row is written within this long
BATCH_MAX_QUEUED = 10_000  # past this many waiting rows, a read writes its own row at once (no row is dropped)


def _summary(value: Any) -> Any:
    if value is None:
        return None
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
    """Write the audit row of one cross-repo operation, count it (and its duration) in the node's metrics, and log
    it: one line per operation, with its correlation id, remote and request id (JSON under `serve`)."""
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
    _write([row])
    _observe(row, duration_ms)
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


def _observe(row: AuditLog, duration_ms: float | None) -> None:
    """Count a written (or queued) row in the metrics and log its line. A pending row is counted once it has its
    outcome (audit_complete)."""
    if row.status != AuditLog.Status.PENDING:
        metrics.call_observe(
            operation=row.operation_type,
            remote=row.remote_repo,
            direction=row.direction,
            outcome=row.status,
            duration_ms=duration_ms,
        )
    _log_line(row)


def audit_record_later(**fields: Any) -> None:
    """`audit_record` for a read: the row is queued and written with others within `BATCH_SECONDS` (at once
    when batching is off, or the queue is full). Counted in the metrics now. Takes audit_record's keywords."""
    batcher = _batcher
    if batcher is None:
        audit_record(**fields)
        return
    row = _row(**fields)
    if not batcher.add(row):
        _write([row])
    _observe(row, fields.get("duration_ms"))


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
                _write(batch)
            except Exception:
                with self._lock:  # back at the head of the queue, for the next try
                    self.waiting[:0] = batch
                raise
            return len(batch)

    _write_lock = threading.Lock()  # one writer at a time: the thread, or a flush at exit


_batcher: _Batcher | None = None


def _write(rows: list[AuditLog]) -> None:
    """Insert audit rows and count them into the rollups, in one transaction."""
    with transaction.atomic():
        if len(rows) == 1:
            rows[0].save(force_insert=True)
        else:
            AuditLog.objects.bulk_create(rows)
        rollups_add([(r.timestamp, r.remote_repo, r.operation_type, r.status, r.duration_ms) for r in rows])


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
        signature=received_signature.get() if direction == "incoming" else None,
    )


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
    """`rows` (ordered by timestamp, log_id) as JSON lines, read 2,000 at a time by keyset: plain queries, not a
    server-side cursor, which PostgreSQL would be left holding if the writing stopped half-way."""
    last = None
    while True:
        page = rows
        if last is not None:
            page = rows.filter(Q(timestamp__gt=last[0]) | Q(timestamp=last[0], log_id__gt=last[1]))
        chunk = list(page.values()[:2000])
        if not chunk:
            return
        last = (chunk[-1]["timestamp"], chunk[-1]["log_id"])
        for row in chunk:
            row["timestamp"] = row["timestamp"].astimezone(UTC).isoformat()
            pruned.append(row["log_id"])
            yield (json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()


def _log_line(row: AuditLog) -> None:
    """One log line per cross-repo operation, with its correlation id, remote and request id (JSON under `serve`).
    INFO even when it failed: the CLI (which logs warnings) reports a failure itself, in its own words."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "operation": row.operation_type,
        "direction": row.direction,
        "remote": row.remote_repo,
        "status": row.status,
        "duration_ms": row.duration_ms,
        "correlation_id": row.correlation_id or None,
        "request_id": row.request_id or None,
        "audit_log_id": row.log_id,
    }
    if row.error_message:
        fields["error"] = row.error_message[:500]
    logger.info(
        f"{row.direction} {row.operation_type} {row.status}",
        extra={k: v for k, v in fields.items() if v is not None},
    )


# --- rollups: the audit rows counted per period, for the metrics page -----------------------------------------

# The periods the metrics page reads, and how long each is kept (rollups_prune): minutes for its last hour,
# quarter hours for its last day, hours for its last week, each with a margin.
ROLLUP_PERIODS: dict[int, timedelta] = {60: timedelta(hours=2), 900: timedelta(days=2), 3600: timedelta(days=8)}
_COUNTS = ("calls", "failed", "duration_count", "duration_sum_ms", *ROLLUP_BUCKETS)
_KEY = ("period_seconds", "dimension", "start", "name")


def period_start(moment: datetime, period_seconds: int) -> int:
    """The start (Unix seconds) of the period of `period_seconds` that holds `moment` (aligned to the epoch, so
    to UTC)."""
    epoch = int(moment.timestamp())
    return epoch - epoch % period_seconds


def _counts(status: str, duration_ms: int | None) -> list[int]:
    buckets = [0] * len(ROLLUP_BUCKETS)
    if duration_ms is not None:
        buckets[bisect_left(ROLLUP_BOUNDS_MS, duration_ms)] = 1
    timed = duration_ms is not None
    return [1, int(status == AuditLog.Status.FAILED), int(timed), duration_ms or 0, *buckets]


def rollups_add(
    rows: Iterable[tuple[datetime, str, str, str, int | None]], *, periods: Iterable[int] = tuple(ROLLUP_PERIODS)
) -> None:
    """Count audit rows, given as (timestamp, remote_repo, operation_type, status, duration_ms), into the rollups
    of each of their `periods` (seconds), once by remote and once by operation: one INSERT .. ON CONFLICT DO
    UPDATE (SQLite and PostgreSQL alike), so processes writing at once add up instead of overwriting each
    other."""
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(_COUNTS))
    periods = tuple(periods)
    remote_dim, operation_dim = AuditRollup.Dimension.REMOTE.value, AuditRollup.Dimension.OPERATION.value
    for timestamp, remote, operation, status, duration_ms in rows:
        counts = _counts(status, duration_ms)
        epoch = int(timestamp.timestamp())
        for period in periods:
            start = epoch - epoch % period
            for key in ((period, remote_dim, start, remote), (period, operation_dim, start, operation)):
                summed = totals[key]
                for index, value in enumerate(counts):
                    summed[index] += value
    if not totals:
        return
    table, quote = AuditRollup._meta.db_table, connection.ops.quote_name
    columns = ", ".join(quote(c) for c in (*_KEY, *_COUNTS))
    updates = ", ".join(f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in _COUNTS)
    one = "(" + ", ".join(["%s"] * (len(_KEY) + len(_COUNTS))) + ")"
    items = list(totals.items())
    for offset in range(0, len(items), 500):  # SQLite allows 32,766 parameters a statement
        chunk = items[offset : offset + 500]
        params = [value for key, counts in chunk for value in (*key, *counts)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))} "
                f"ON CONFLICT ({', '.join(quote(c) for c in _KEY)}) DO UPDATE SET {updates}",
                params,
            )


def rollups_rebuild(*, since: datetime | None = None, now: datetime | None = None) -> int:
    """Make the rollups again from the audit rows, each period as far back as it is kept (ROLLUP_PERIODS) or
    from `since` if that is later, dropping what they held for that time. For a database whose audit rows were
    written without them (an upgrade, an import, benchmarks/bench_audit.py). Returns the audit rows read."""
    now = now or timezone.now()
    # Whole periods only: each length is rebuilt from the start of the period holding its first moment.
    cuts = {
        period: period_start(max(since, now - kept) if since else now - kept, period)
        for period, kept in ROLLUP_PERIODS.items()
    }
    first = datetime.fromtimestamp(min(cuts.values()), tz=UTC)
    read = 0
    with transaction.atomic():
        for period, cut in cuts.items():
            AuditRollup.objects.filter(period_seconds=period, start__gte=cut).delete()
        rows = (
            AuditLog.objects.filter(timestamp__gte=first)
            .order_by()
            .values_list("timestamp", "remote_repo", "operation_type", "status", "duration_ms")
        )
        batch: list[tuple] = []
        for row in rows.iterator(chunk_size=20_000):
            batch.append(row)
            read += 1
            if len(batch) >= 100_000:
                _rebuild_add(batch, cuts)
                batch = []
        _rebuild_add(batch, cuts)
    return read


def _rebuild_add(batch: list[tuple], cuts: dict[int, int]) -> None:
    for period, cut in cuts.items():
        rollups_add([row for row in batch if row[0].timestamp() >= cut], periods=(period,))


def rollups_prune(*, now: datetime | None = None) -> int:
    """Drop the rollups older than their period is kept (ROLLUP_PERIODS). Returns the rows deleted."""
    now = now or timezone.now()
    deleted = 0
    for period, kept in ROLLUP_PERIODS.items():
        deleted += AuditRollup.objects.filter(period_seconds=period, start__lt=(now - kept).timestamp()).delete()[0]
    return deleted
