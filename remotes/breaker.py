"""The circuit breaker per remote (issue 15): stop calling a remote that keeps failing, and find out cheaply
when it is back.

    closed ──(N failed calls in a row)──► open ──(cool-down over: one call claims the probe)──► half_open
      ▲                                    ▲                                                      │
      └──────────── the probe answered ────┼──────────────────────────────────────────────────────┤
                                           └───────────────── the probe failed ──────────────────┘

A failure is a call that got no answer worth the name: refused, DNS, a timeout, a 5xx (or 408). A refusal
(4xx) or a 429 proves the remote is up, so it counts as an answer. While open, a call fails at once with
`CircuitOpen`, a `RemoteUnreachable`, so every caller's retry logic treats it as transient; a caller that keeps
a delivery row reschedules it for `retry_at` without counting an attempt.

The state lives on the remote's row (`breaker_state`, `breaker_failures`, `breaker_next_try_at`), shared by
the web processes, the worker and the CLI; moving it is always a conditional update, so of two processes that
find the cool-down over only one sends the probe. A probe that never reports back (its process died) is
replaced after one more cool-down. `failures` and `cool_down_seconds` come from `http.circuit_breaker` in
federation.config.json. Every function takes `now`, so tests drive the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q
from django.utils import timezone

from federation_site import node
from remotes.client import RemoteError, RemoteUnreachable
from remotes.models import BreakerState, RemoteRepo

# While a probe is out, other calls are told to come back this soon (not a whole cool-down: it may succeed).
PROBE_WAIT = timedelta(seconds=5)


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 5
    cool_down: timedelta = timedelta(seconds=60)


def breaker_settings() -> BreakerSettings:
    """`http.circuit_breaker` of the node's config (the defaults without one)."""
    cfg = node.config()
    if cfg is None:
        return BreakerSettings()
    declared = cfg.http.circuit_breaker
    return BreakerSettings(failures=declared.failures, cool_down=timedelta(seconds=declared.cool_down_seconds))


class CircuitOpen(RemoteUnreachable):
    """A call not made: the remote's breaker is open (or its probe is under way) until `retry_at`."""

    def __init__(self, url: str, *, failures: int, retry_at: datetime, probing: bool = False) -> None:
        when = timezone.localtime(retry_at).strftime("%H:%M:%S")
        why = "a probe call is under way" if probing else f"paused after {failures} failures in a row"
        super().__init__(f"{url} is {why}; next try at {when} (circuit breaker)", url=url)
        self.failures = failures
        self.retry_at = retry_at


def counts_as_failure(exc: Exception) -> bool:
    """Whether a failed call says the remote is down: no answer, a timeout, a 5xx or a 408. A 4xx refusal, a 429
    (busy, but up) and a malformed answer all came from a running remote."""
    if isinstance(exc, CircuitOpen) or not isinstance(exc, RemoteError):
        return False
    if not isinstance(exc, RemoteUnreachable):
        return False
    return exc.status is None or exc.status == 408 or exc.status >= 500


def breaker_admit(remote: RemoteRepo, *, now: datetime | None = None, settings: BreakerSettings | None = None) -> bool:
    """Before a call to `remote`: return whether it may go, True when it is the probe; raise `CircuitOpen` when
    it may not. Reads the row afresh: another process may have opened or closed the breaker meanwhile."""
    now = now or timezone.now()
    settings = settings or breaker_settings()
    state, failures, next_try_at = _current(remote)
    if state == BreakerState.CLOSED:
        return False
    if next_try_at is None or next_try_at <= now:
        claimed = (
            RemoteRepo.objects.filter(url=remote.url, breaker_state__in=(BreakerState.OPEN, BreakerState.HALF_OPEN))
            .filter(Q(breaker_next_try_at__isnull=True) | Q(breaker_next_try_at__lte=now))
            .update(breaker_state=BreakerState.HALF_OPEN, breaker_next_try_at=now + settings.cool_down)
        )
        if claimed:
            _copy(remote, BreakerState.HALF_OPEN, failures, now + settings.cool_down)
            return True
        state, failures, next_try_at = _current(remote)  # another process took the probe (or closed it)
        if state == BreakerState.CLOSED:
            return False
    _copy(remote, state, failures, next_try_at)
    if state == BreakerState.HALF_OPEN:
        raise CircuitOpen(remote.url, failures=failures, retry_at=min(next_try_at, now + PROBE_WAIT), probing=True)
    raise CircuitOpen(remote.url, failures=failures, retry_at=next_try_at)


def breaker_record(
    remote: RemoteRepo, *, ok: bool, now: datetime | None = None, settings: BreakerSettings | None = None
) -> None:
    """After a call to `remote`: `ok` when it answered (see counts_as_failure), else one more failure in a row,
    which opens the breaker at the threshold, or again at once when it was the probe."""
    now = now or timezone.now()
    settings = settings or breaker_settings()
    rows = RemoteRepo.objects.filter(url=remote.url)
    if ok:
        # Most calls find it closed with no failures: no write then.
        rows.filter(Q(breaker_failures__gt=0) | ~Q(breaker_state=BreakerState.CLOSED)).update(
            breaker_state=BreakerState.CLOSED, breaker_failures=0, breaker_next_try_at=None
        )
        _copy(remote, BreakerState.CLOSED, 0, None)
        return
    rows.update(breaker_failures=F("breaker_failures") + 1)
    reopen = now + settings.cool_down
    rows.filter(breaker_state=BreakerState.HALF_OPEN).update(
        breaker_state=BreakerState.OPEN, breaker_next_try_at=reopen
    )
    rows.filter(breaker_state=BreakerState.CLOSED, breaker_failures__gte=settings.failures).update(
        breaker_state=BreakerState.OPEN, breaker_next_try_at=reopen
    )
    _copy(remote, *_current(remote))


def breaker_paused(remote: RemoteRepo, *, now: datetime | None = None) -> bool:
    """Whether a call to `remote` would fail at once now (from the row as loaded: no query)."""
    now = now or timezone.now()
    return remote.breaker_state != BreakerState.CLOSED and (
        remote.breaker_state == BreakerState.HALF_OPEN
        or (remote.breaker_next_try_at is not None and now < remote.breaker_next_try_at)
    )


def breaker_resting(
    remote: RemoteRepo, *, now: datetime | None = None, settings: BreakerSettings | None = None
) -> bool:
    """Whether a lazy refresh (nobody asked for this remote in particular) should serve cached data instead of
    calling: the breaker is open, or the last call failed less than a cool-down ago. An explicit call waits for
    the N failures; someone opening an issue page should not wait on a remote that just failed."""
    now = now or timezone.now()
    settings = settings or breaker_settings()
    if breaker_paused(remote, now=now):
        return True
    return (
        remote.breaker_failures > 0
        and remote.last_attempt_at is not None
        and now - remote.last_attempt_at < settings.cool_down
    )


def breaker_summary(remote: RemoteRepo) -> dict:
    """The state as shown: {"state": "closed"|"open"|"half_open", "failures": in a row, "next_try_at": ISO or
    None}."""
    return {
        "state": remote.breaker_state,
        "failures": remote.breaker_failures,
        "next_try_at": remote.breaker_next_try_at.isoformat() if remote.breaker_next_try_at else None,
    }


def _current(remote: RemoteRepo) -> tuple[str, int, datetime | None]:
    row = (
        RemoteRepo.objects.filter(url=remote.url)
        .values_list("breaker_state", "breaker_failures", "breaker_next_try_at")
        .first()
    )
    return row if row is not None else (BreakerState.CLOSED, 0, None)


def _copy(remote: RemoteRepo, state: str, failures: int, next_try_at: datetime | None) -> None:
    remote.breaker_state, remote.breaker_failures, remote.breaker_next_try_at = state, failures, next_try_at
