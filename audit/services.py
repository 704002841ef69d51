"""Writing the audit log. Every cross-repo operation, in or out, leaves one row; services call these."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.models import ROLLUP_BOUNDS_MS, ROLLUP_BUCKETS, AuditLog, AuditRollup
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
    rollups_add([(row.timestamp, row.remote_repo, row.operation_type, row.status, row.duration_ms)])
    metrics.call_observe(
        operation=operation, remote=row.remote_repo, direction=direction, outcome=status, duration_ms=duration_ms
    )
    return row


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
