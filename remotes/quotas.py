"""Quotas the config declares that are not about requests (those are requests_app.policy.check_rate):
`rate_limits.per_repo.queries_per_minute` and `policies.incoming_requests.query.rate_limit` (per caller), and
`rate_limits.global.cross_repo_bandwidth_mb_per_day` (the node's bytes in and out on the federation endpoints).

Fixed windows counted in the database (QuotaUsage), so every process of a node (daphne workers, celery) shares
them. A refusal is RateLimited: HTTP 429 with Retry-After, the seconds until the window ends.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from remotes.models import QuotaUsage
from remotes.policy import Caller, RateLimited

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
BANDWIDTH_KEY = "bandwidth"


def _window(now: datetime, length: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    return epoch + ((now - epoch) // length) * length


def _retry_after(start: datetime, length: timedelta, now: datetime) -> int:
    return max(1, math.ceil((start + length - now).total_seconds()))


def take(key: str, *, limit: int, window: timedelta, what: str) -> None:
    """Count one use of `key` in the current window, or raise RateLimited when `limit` uses were counted.

    Far from the limit a process reserves LOCAL_BATCH uses at once (one conditional UPDATE, only while at least
    LOCAL_HEADROOM uses of the window would be left) and hands them out without writing; nearer the limit every
    use is counted in the database before it is granted. The database's count is never below the uses granted,
    so the limit holds exactly across processes; a reservation a process does not use up is given back at exit
    (else it only makes the window stricter, by at most LOCAL_BATCH uses per process). A limit of LOCAL_HEADROOM
    or less is always counted use by use."""
    now = timezone.now()
    start = _window(now, window)
    if limit > LOCAL_HEADROOM:
        with _lock:
            slot = _slots.get(key)
            if slot is not None and slot.start == start and slot.left > 0:
                slot.left -= 1
                return
        if _reserve(key, start, limit - LOCAL_HEADROOM):
            with _lock:
                if len(_slots) >= _SLOTS_MAX:  # a past window's reservations no longer matter
                    for old in [k for k, v in _slots.items() if v.start != start]:
                        del _slots[old]
                _slots[key] = _Slot(start=start, left=LOCAL_BATCH - 1)
            _at_exit()
            return
    rows = QuotaUsage.objects.filter(key=key, window_start=start, amount__lt=limit)
    if rows.update(amount=F("amount") + 1):
        return
    if not QuotaUsage.objects.filter(key=key, window_start=start).exists():
        try:
            with transaction.atomic():
                QuotaUsage.objects.create(key=key, window_start=start, amount=1)
            QuotaUsage.objects.filter(key=key, window_start__lt=start).delete()
            return
        except IntegrityError:  # created by another request a moment ago
            if rows.update(amount=F("amount") + 1):
                return
    retry = _retry_after(start, window, now)
    raise RateLimited(f"{what} ({limit}); try again in {retry} s", retry)


def _reserve(key: str, start: datetime, ceiling: int) -> bool:
    """Count LOCAL_BATCH uses of the window now, if that leaves the count at most `ceiling`."""
    rows = QuotaUsage.objects.filter(key=key, window_start=start, amount__lte=ceiling - LOCAL_BATCH)
    if rows.update(amount=F("amount") + LOCAL_BATCH):
        return True
    if LOCAL_BATCH > ceiling or QuotaUsage.objects.filter(key=key, window_start=start).exists():
        return False
    try:
        with transaction.atomic():
            QuotaUsage.objects.create(key=key, window_start=start, amount=LOCAL_BATCH)
        QuotaUsage.objects.filter(key=key, window_start__lt=start).delete()
        return True
    except IntegrityError:  # created by another process a moment ago
        return bool(rows.update(amount=F("amount") + LOCAL_BATCH))


def uses_release() -> None:
    """Give back the uses this process reserved and did not grant (at exit; tests)."""
    with _lock:
        unused = [(key, slot.start, slot.left) for key, slot in _slots.items() if slot.left]
        _slots.clear()
    for key, start, left in unused:
        QuotaUsage.objects.filter(key=key, window_start=start, amount__gte=left).update(amount=F("amount") - left)


@dataclass
class _Slot:
    """The uses of one key's window this process reserved and has not granted yet."""

    start: datetime
    left: int


LOCAL_HEADROOM = 500  # uses of the window that must stay unreserved for a process to reserve more
LOCAL_BATCH = 50  # uses a process reserves at once
_SLOTS_MAX = 10_000  # keys remembered (anonymous callers are counted by address)
_slots: dict[str, _Slot] = {}


def caller_key(caller: Caller, client_address: str) -> str:
    """Anonymous callers are counted by address, known remotes by identity."""
    return caller.identity or f"anon:{client_address}"


def check_query_rate(caller: Caller, config, *, client_address: str = "") -> None:
    """One query by `caller`: the lower of `rate_limits.per_repo.queries_per_minute` and
    `policies.incoming_requests.query.rate_limit.requests_per_minute`. RateLimited past it."""
    if config is None:
        return
    limits = [
        (config.rate_limits.per_repo.queries_per_minute, "rate_limits.per_repo.queries_per_minute"),
        (
            config.policies.incoming_requests.query.rate_limit.requests_per_minute,
            "policies.incoming_requests.query.rate_limit.requests_per_minute",
        ),
    ]
    limit, name = min(limits, key=lambda pair: pair[0])
    take(
        f"query:{caller_key(caller, client_address)}",
        limit=limit,
        window=MINUTE,
        what=f"{caller} reached {name}",
    )


def bandwidth_limit(config) -> int | None:
    """The node's bytes per day (`rate_limits.global.cross_repo_bandwidth_mb_per_day`, MiB), or None."""
    megabytes = config.rate_limits.global_.cross_repo_bandwidth_mb_per_day if config is not None else None
    return megabytes * 1024 * 1024 if megabytes else None


def check_bandwidth(config) -> None:
    """RateLimited when today's bytes in and out reached the limit."""
    limit = bandwidth_limit(config)
    if limit is None:
        return
    now = timezone.now()
    start = _window(now, DAY)
    used = _bandwidth_used(start)
    if used >= limit:
        retry = _retry_after(start, DAY, now)
        raise RateLimited(
            f"this node used its bandwidth for today (rate_limits.global.cross_repo_bandwidth_mb_per_day, "
            f"{limit // (1024 * 1024)} MB); try again in {retry} s",
            retry,
        )


def count_bandwidth(nbytes: int) -> None:
    """Add `nbytes` (a federation request's body plus its response, or an outgoing call) to today's usage.
    Added up in this process and written at most every FLUSH_SECONDS (by the next count after that, and at
    exit): one write per request would be a third of a cached query's cost."""
    global _unwritten
    if nbytes <= 0:
        return
    with _lock:
        _unwritten += nbytes
        due = time.monotonic() - _written_at >= FLUSH_SECONDS
    if due:
        bandwidth_flush()


def bandwidth_flush() -> None:
    """Write the bytes this process counted and has not written yet (at exit; tests)."""
    global _unwritten, _written_at, _read
    with _lock:
        nbytes, _unwritten = _unwritten, 0
        _written_at = time.monotonic()
    _at_exit()
    if nbytes <= 0:
        return
    start = _window(timezone.now(), DAY)
    try:
        _add_bandwidth(start, nbytes)
    except Exception:
        with _lock:
            _unwritten += nbytes  # written with the next flush
        raise
    with _lock:
        if _read[0] == start:
            _read = (start, _read[1] + nbytes, _read[2])


def _at_exit() -> None:
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
    atexit.register(_flush_at_exit)


def _flush_at_exit() -> None:
    """The last flush (bytes, then reservations given back): a database already gone (a test run's, dropped first)
    costs what was not written yet, and says so in one line, not a traceback."""
    for flush, what in ((bandwidth_flush, "bandwidth"), (uses_release, "unused query reservations")):
        try:
            flush()
        except Exception as exc:
            logging.getLogger(__name__).warning("%s not counted at exit: %s", what, str(exc).splitlines()[0])


def _add_bandwidth(start: datetime, nbytes: int) -> None:
    if QuotaUsage.objects.filter(key=BANDWIDTH_KEY, window_start=start).update(amount=F("amount") + nbytes):
        return
    try:
        with transaction.atomic():
            QuotaUsage.objects.create(key=BANDWIDTH_KEY, window_start=start, amount=nbytes)
        QuotaUsage.objects.filter(key=BANDWIDTH_KEY, window_start__lt=start).delete()
    except IntegrityError:
        QuotaUsage.objects.filter(key=BANDWIDTH_KEY, window_start=start).update(amount=F("amount") + nbytes)


def _bandwidth_used(start: datetime) -> int:
    """Today's bytes: the database's count, read at most every FLUSH_SECONDS, plus what this process has not
    written yet. So the processes of a node together overshoot the limit by at most FLUSH_SECONDS of traffic."""
    global _read
    now = time.monotonic()
    with _lock:
        if _read[0] == start and now - _read[2] < FLUSH_SECONDS:
            return _read[1] + _unwritten
    used = QuotaUsage.objects.filter(key=BANDWIDTH_KEY, window_start=start).values_list("amount", flat=True).first()
    with _lock:
        _read = (start, used or 0, now)
        return (used or 0) + _unwritten


FLUSH_SECONDS = 0.1
_lock = threading.Lock()
_unwritten = 0  # bytes counted in this process, not yet in the database
_written_at = 0.0  # time.monotonic() of the last write
_registered = False  # the flushes run at exit (_flush_at_exit)
_read: tuple[datetime | None, int, float] = (None, 0, 0.0)  # (window, the database's bytes, when read)
