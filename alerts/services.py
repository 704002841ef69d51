"""Evaluating the seed's alerts (issue 15, item 5) and owing their notifications.

`alerts_evaluate` is run by the worker's beat every 30 s (alerts.tasks.evaluate; `sudocode-fed alerts check`
runs it once). Each run measures the three conditions, thresholds from `alerts` in federation.config.json:

- `remote_repo_unreachable`, per remote: its circuit breaker is not closed or its last call failed
  (`sync_status` unreachable), and its last successful call (or, never reached, its addition) is more than
  `remote_unreachable_minutes` ago;
- `approval_backlog`: more than `approval_backlog` incoming requests wait for a human;
- `remote_error_rate`, per remote: more than `error_rate_percent` of its calls in the last
  `error_rate_window_minutes` failed (audit rows, in and out), over at least `error_rate_min_calls` calls.

A condition that holds and has no firing row fires: the row and one notification per channel (that lists the
event, or lists none) in one transaction. A firing row whose condition no longer holds is resolved by a
conditional update, and owes one "resolved" notification per channel. A restart finds the rows: nothing fires or
is sent twice. Every function takes `now`, so tests drive the clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from alerts import delivery
from alerts.models import Alert, AlertKind, AlertStatus
from audit.selectors import error_rates
from federation_site import node
from federation_site.config import AlertSettings
from remotes.models import BreakerState, RemoteRepo, SyncStatus
from requests_app.selectors import approval_queue_depth

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    """An alert's condition found to hold now."""

    kind: str
    subject: str
    value: float
    threshold: float
    summary: str


def alert_settings() -> AlertSettings:
    """`alerts` of the node's config (the defaults without one)."""
    cfg = node.config()
    return cfg.alerts if cfg is not None else AlertSettings()


def conditions(*, now: datetime, settings: AlertSettings) -> list[Condition]:
    """The alerts' conditions that hold at `now` (see the module's docstring for each rule)."""
    found: list[Condition] = []
    limit = timedelta(minutes=settings.remote_unreachable_minutes)
    down = RemoteRepo.objects.filter(~Q(breaker_state=BreakerState.CLOSED) | Q(sync_status=SyncStatus.UNREACHABLE))
    for remote in down:
        since = remote.last_synced_at or remote.added_at
        if since is not None and now - since > limit:
            minutes = (now - since).total_seconds() / 60
            why = f"circuit breaker {remote.breaker_state}" if remote.breaker_state != BreakerState.CLOSED else ""
            found.append(
                Condition(
                    AlertKind.REMOTE_UNREACHABLE,
                    remote.url,
                    round(minutes, 1),
                    settings.remote_unreachable_minutes,
                    f"{remote.url} unreachable for {minutes:.0f} min"
                    + (f" ({why})" if why else "")
                    + (f": {remote.last_error[:200]}" if remote.last_error else ""),
                )
            )
    waiting = approval_queue_depth()
    if waiting > settings.approval_backlog:
        found.append(
            Condition(
                AlertKind.APPROVAL_BACKLOG,
                "",
                waiting,
                settings.approval_backlog,
                f"{waiting} requests wait for approval (more than {settings.approval_backlog})",
            )
        )
    window = timedelta(minutes=settings.error_rate_window_minutes)
    for remote, (calls, failed) in error_rates(since=now - window, until=now).items():
        percent = 100 * failed / calls
        if calls >= settings.error_rate_min_calls and percent > settings.error_rate_percent:
            found.append(
                Condition(
                    AlertKind.REMOTE_ERROR_RATE,
                    remote,
                    round(percent, 1),
                    settings.error_rate_percent,
                    f"{remote}: {failed} of {calls} calls failed in the last "
                    f"{settings.error_rate_window_minutes:g} min ({percent:.1f}%, more than "
                    f"{settings.error_rate_percent:g}%)",
                )
            )
    return found


def alerts_evaluate(*, now: datetime | None = None, settings: AlertSettings | None = None) -> dict[str, list[str]]:
    """Fire the alerts whose condition holds and that are not firing, resolve the firing ones whose condition
    cleared, and queue their notifications. Returns `{"fired": [summary], "resolved": [summary]}`. Nothing
    happens with `alerts.enabled` false (firing rows stay as they are)."""
    now = now or timezone.now()
    settings = settings or alert_settings()
    outcome: dict[str, list[str]] = {"fired": [], "resolved": []}
    if not settings.enabled:
        return outcome
    holding = {(c.kind, c.subject): c for c in conditions(now=now, settings=settings)}
    firing = {(a.kind, a.subject): a for a in Alert.objects.filter(status=AlertStatus.FIRING)}
    for key, condition in holding.items():
        if key in firing:
            continue
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    kind=condition.kind,
                    subject=condition.subject,
                    value=condition.value,
                    threshold=condition.threshold,
                    summary=condition.summary,
                    fired_at=now,
                )
                delivery.queue_notifications(alert, AlertStatus.FIRING, now=now)
        except IntegrityError:  # another evaluator fired it first
            continue
        logger.warning("alert fired: %s", condition.summary)
        outcome["fired"].append(condition.summary)
    for key, alert in firing.items():
        if key in holding:
            continue
        with transaction.atomic():
            if not Alert.objects.filter(pk=alert.pk, status=AlertStatus.FIRING).update(
                status=AlertStatus.RESOLVED, resolved_at=now
            ):
                continue  # another evaluator resolved it first
            alert.status, alert.resolved_at = AlertStatus.RESOLVED, now
            delivery.queue_notifications(alert, AlertStatus.RESOLVED, now=now)
        logger.warning("alert resolved: %s", alert.summary)
        outcome["resolved"].append(alert.summary)
    return outcome
