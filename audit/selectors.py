"""Reading the audit log: the CLI (`audit list`, `audit stats`), the dashboard's audit page and the staff API
(`/api/v1/federation/audit`, `/api/v1/federation/audit/stats`).

Filters come in as the strings a query string or a command line carries; `audit_filters` checks them once for
every edge and raises a ValidationError naming the parameter it cannot take.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import ROLLUP_BOUNDS_MS, ROLLUP_BUCKETS, AuditLog, AuditRollup

PAGE_LIMIT, PAGE_MAX_LIMIT = 50, 500
# The window `audit_stats` reads when no `since` is given. Its cost grows with the rows in it (about 1 µs a row
# on SQLite: benchmarks/bench_audit.py), so the default stays bounded however long the log grows.
STATS_DEFAULT_WINDOW = timedelta(hours=24)
FILTERS = ("remote", "operation", "direction", "status", "since", "until", "correlation_id", "request_id")


def audit_filters(params: Mapping[str, str | None]) -> dict:
    """The filters of `params` (query parameters or CLI options, as strings; empty means absent), checked:
    `direction` and `status` must be one of their values, `since`/`until` ISO 8601 datetimes or dates (a time
    without a zone is UTC) with since before until. Raises ValidationError naming the parameter."""
    given = {name: (params.get(name) or "").strip() for name in FILTERS}
    errors: dict[str, str] = {}
    if given["direction"] and given["direction"] not in AuditLog.Direction.values:
        errors["direction"] = f"{given['direction'][:40]!r} is not one of {', '.join(AuditLog.Direction.values)}"
    if given["status"] and given["status"] not in AuditLog.Status.values:
        errors["status"] = f"{given['status'][:40]!r} is not one of {', '.join(AuditLog.Status.values)}"
    moments: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        try:
            moments[name] = _moment(given[name]) if given[name] else None
        except ValueError:
            errors[name] = f"{given[name][:40]!r} is not an ISO 8601 date or datetime (e.g. 2026-11-30T09:00:00Z)"
    if moments.get("since") and moments.get("until") and moments["since"] >= moments["until"]:
        errors["since"] = "must be before until"
    if errors:
        raise ValidationError(errors)
    filters: dict = {name: value or None for name, value in given.items() if name not in ("since", "until")}
    return {**filters, "since": moments["since"], "until": moments["until"]}


def audit_moment(text: str) -> datetime:
    """An ISO 8601 datetime or date (UTC when it names no zone). ValueError when it is neither."""
    return _moment(text)


def _moment(text: str) -> datetime:
    moment = parse_datetime(text.replace(" ", "T", 1))
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise ValueError(text)
        moment = datetime(day.year, day.month, day.day)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def audit_query(
    *,
    direction: str | None = None,
    operation: str | None = None,
    status: str | None = None,
    remote: str | None = None,
    request_id: str | None = None,
    correlation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditLog]:
    """The rows matching every filter given, newest first. `remote` matches a substring of the remote's
    identity, case-insensitively; `since` is inclusive, `until` exclusive."""
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
    if correlation_id:
        qs = qs.filter(correlation_id=correlation_id)
    if since:
        qs = qs.filter(timestamp__gte=since)
    if until:
        qs = qs.filter(timestamp__lt=until)
    return qs.order_by("-timestamp", "-log_id")


def audit_entry(e: AuditLog) -> dict:
    """One row as every edge shows it."""
    return {
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
        "signature": e.signature,  # the RFC 9421 signature an incoming message carried, when it verified
    }


def audit_entries(*, limit: int = 50, **filters) -> list[dict]:
    return [audit_entry(e) for e in audit_query(**filters)[:limit]]


def audit_page(*, cursor: str | None = None, limit: int = PAGE_LIMIT, **filters) -> dict:
    """The rows matching `filters` (those of `audit_query`), newest first, one page at a time: `{"results":
    [entry], "next_cursor"}`; `next_cursor` is null on the last page, else passed back as `cursor` for the next.
    The cursor is the last row's (timestamp, log_id), so rows written meanwhile neither repeat nor shift a page.
    Raises ValidationError naming `limit` or `cursor`."""
    if not 1 <= limit <= PAGE_MAX_LIMIT:
        raise ValidationError({"limit": f"expected 1 to {PAGE_MAX_LIMIT}, got {limit}"})
    rows = audit_query(**filters)
    after = _decode_cursor(cursor)
    if after is not None:
        moment, log_id = after
        # Not `Q(timestamp__lt) | Q(timestamp=, log_id__lt)`: SQLite answers an OR with both index searches and
        # a sort of every row before the cursor (1.3 s at 1,000,000 rows); this is one range on the index.
        rows = rows.filter(timestamp__lte=moment).exclude(timestamp=moment, log_id__gte=log_id)
    page = list(rows[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return {"results": [audit_entry(e) for e in page], "next_cursor": _encode_cursor(page[-1]) if more else None}


def _encode_cursor(last: AuditLog) -> str:
    raw = json.dumps([last.timestamp.isoformat(), last.log_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        moment, log_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = parse_datetime(moment) if isinstance(moment, str) else None
        if moment is None or not isinstance(log_id, str):
            raise TypeError
    except (ValueError, TypeError, binascii.Error):
        raise ValidationError({"cursor": "not a cursor this node gave out: start again without one"}) from None
    return moment, log_id


def audit_stats(*, now: datetime | None = None, **filters) -> dict:
    """Totals of the rows matching `filters` by operation, status and remote, and their duration percentiles
    (p50, p95, p99, nearest rank, whole ms, over the rows that have a duration). Without `since` it reads the
    STATS_DEFAULT_WINDOW before `until` (or now): the `window` of the answer says which rows were counted.

    Four GROUP BYs over the window's rows, each read from the index on (timestamp, operation_type, status,
    remote_repo, duration_ms) alone, without touching the table (benchmarks/bench_audit.py: one GROUP BY of
    the three columns together costs more than the three apart, its sort keys being long). Durations are whole
    milliseconds, so grouping by them gives a few hundred (value, count) pairs from which the percentiles are
    exact, without sorting or fetching the rows (SQLite has no percentile function)."""
    until = filters.get("until")
    since = filters.get("since") or (until or now or timezone.now()) - STATS_DEFAULT_WINDOW
    rows = audit_query(**{**filters, "since": since}).order_by()

    def totals(column: str) -> dict[str, int]:
        counted = rows.values_list(column).annotate(n=Count("*")).order_by("-n", column)
        return {value: n for value, n in counted}

    by_status = totals("status")
    durations = sorted(rows.exclude(duration_ms=None).values_list("duration_ms").annotate(n=Count("*")).order_by())
    return {
        "window": {"since": since.isoformat(), "until": until.isoformat() if until else None},
        "total": sum(by_status.values()),
        "by_operation": totals("operation_type"),
        "by_status": by_status,
        "by_remote": totals("remote_repo"),
        "duration_ms": {"count": sum(n for _, n in durations), **_percentiles(durations, (50, 95, 99))},
    }


def _percentiles(counted: list[tuple[int, int]], points: tuple[int, ...]) -> dict[str, int | None]:
    """Nearest-rank percentiles of sorted (value, count) pairs: the smallest value with at least p% of the
    values at or below it."""
    total = sum(n for _, n in counted)
    answer: dict[str, int | None] = {}
    for point in points:
        if not total:
            answer[f"p{point}"] = None
            continue
        rank, seen = max(1, math.ceil(total * point / 100)), 0
        for value, n in counted:
            seen += n
            if seen >= rank:
                answer[f"p{point}"] = value
                break
    return answer


# --- series: the metrics page's charts, from the rollups ------------------------------------------------------

# What the metrics page can show: each window's length and the period of its points (60, 96, 168 points).
SERIES_WINDOWS: dict[str, tuple[timedelta, int]] = {
    "hour": (timedelta(hours=1), 60),
    "day": (timedelta(days=1), 900),
    "week": (timedelta(days=7), 3600),
}


def series_window(window: str, *, now: datetime | None = None) -> dict:
    """The points of `window` ("hour", "day" or "week") up to `now`: `{"window", "period_seconds", "since",
    "until", "starts": [datetime]}`, the last point being the period now under way. Raises ValidationError
    naming `window`."""
    if window not in SERIES_WINDOWS:
        raise ValidationError({"window": f"{str(window)[:40]!r} is not one of {', '.join(SERIES_WINDOWS)}"})
    length, period = SERIES_WINDOWS[window]
    now = now or timezone.now()
    epoch = int(now.timestamp())
    until = datetime.fromtimestamp(epoch - epoch % period + period, tz=UTC)
    since = until - length
    starts = [since + timedelta(seconds=period * n) for n in range(int(length.total_seconds()) // period)]
    return {"window": window, "period_seconds": period, "since": since, "until": until, "starts": starts}


def audit_series(window: str = "hour", *, now: datetime | None = None) -> dict:
    """The cross-repo calls of `window` (see series_window), point by point, from the rollups
    (audit.models.AuditRollup): `{"window", "period_seconds", "since", "until", "times": [epoch seconds of each
    point's start], "calls": [n], "failed": [n], "error_rate": [percent or null without calls],
    "by_remote": {remote: {"calls": [n], "failed": [n], "error_rate": [...]}},
    "latency_ms": {operation: {"calls": [n], "p50": [ms or null], "p95": [...], "p99": [...]}}}`.

    Latency percentiles are interpolated within the rollup's duration buckets (as Prometheus'
    histogram_quantile does), so they are estimates, exact to the bucket: `audit_stats` gives exact ones.
    Two range reads of the rollups' key index, a few thousand rows (benchmarks/bench_audit.py: under 50 ms at 1,000,000
    audit rows). Raises ValidationError naming `window`."""
    frame = series_window(window, now=now)
    times = [int(start.timestamp()) for start in frame["starts"]]
    index = {start: n for n, start in enumerate(times)}
    points = len(times)
    rollups = AuditRollup.objects.filter(
        period_seconds=frame["period_seconds"],
        start__gte=int(frame["since"].timestamp()),
        start__lt=int(frame["until"].timestamp()),
    ).order_by()

    by_remote: dict[str, dict[str, list]] = {}
    calls, failed = [0] * points, [0] * points
    for start, remote, n_calls, n_failed in rollups.filter(dimension=AuditRollup.Dimension.REMOTE).values_list(
        "start", "name", "calls", "failed"
    ):
        at = index.get(start)
        if at is None:
            continue
        series = by_remote.setdefault(remote, {"calls": [0] * points, "failed": [0] * points})
        series["calls"][at] += n_calls
        series["failed"][at] += n_failed
        calls[at] += n_calls
        failed[at] += n_failed
    for series in by_remote.values():
        series["error_rate"] = _rates(series["failed"], series["calls"])

    latency: dict[str, dict[str, list]] = {}
    for start, operation, n_calls, *buckets in rollups.filter(dimension=AuditRollup.Dimension.OPERATION).values_list(
        "start", "name", "calls", *ROLLUP_BUCKETS
    ):
        at = index.get(start)
        if at is None:
            continue
        series = latency.setdefault(
            operation, {"calls": [0] * points, "p50": [None] * points, "p95": [None] * points, "p99": [None] * points}
        )
        series["calls"][at] = n_calls
        for point in (50, 95, 99):
            series[f"p{point}"][at] = bucket_quantile(buckets, point / 100)
    return {
        "window": frame["window"],
        "period_seconds": frame["period_seconds"],
        "since": frame["since"].isoformat(),
        "until": frame["until"].isoformat(),
        "times": times,
        "calls": calls,
        "failed": failed,
        "error_rate": _rates(failed, calls),
        "by_remote": dict(sorted(by_remote.items(), key=lambda item: (-sum(item[1]["calls"]), item[0]))),
        "latency_ms": dict(sorted(latency.items())),
    }


def _rates(failed: list[int], calls: list[int]) -> list[float | None]:
    return [round(100 * f / c, 2) if c else None for f, c in zip(failed, calls, strict=True)]


def bucket_quantile(counts: list[int], q: float) -> float | None:
    """The `q` quantile (0..1) of durations counted in the rollup buckets (ROLLUP_BOUNDS_MS, then above),
    interpolated linearly within its bucket; the top bound for a value above it; None without durations."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for n, count in enumerate(counts):
        if count and seen + count >= rank:
            if n == len(ROLLUP_BOUNDS_MS):
                return float(ROLLUP_BOUNDS_MS[-1])
            low = ROLLUP_BOUNDS_MS[n - 1] if n else 0
            return round(low + (ROLLUP_BOUNDS_MS[n] - low) * (rank - seen) / count, 1)
        seen += count
    return float(ROLLUP_BOUNDS_MS[-1])


def error_rates(*, since: datetime, until: datetime) -> dict[str, tuple[int, int]]:
    """Each remote's finished calls (in and out) from `since` (inclusive) to `until` (exclusive), and how many
    of them failed: `{remote: (calls, failed)}`; pending rows are not counted. One GROUP BY through the
    timestamp index (alerts.services: the error-rate alert over its 5-minute window)."""
    rows = (
        AuditLog.objects.filter(timestamp__gte=since, timestamp__lt=until)
        .exclude(status=AuditLog.Status.PENDING)
        .order_by()
        .values_list("remote_repo", "status")
        .annotate(n=Count("*"))
    )
    rates: dict[str, tuple[int, int]] = {}
    for remote, status, n in rows:
        calls, failed = rates.get(remote, (0, 0))
        rates[remote] = (calls + n, failed + (n if status == AuditLog.Status.FAILED else 0))
    return rates
