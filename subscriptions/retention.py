"""Retention: what the periodic prune (subscriptions.tasks.prune_retention, hourly) and `audit prune` remove.
Source: issue 15 item 8; the periods are the config's `retention` (federation_site.config.RetentionSettings).

- outbox events (events_event) older than `events_days` that every subscription still reading the outbox has
  passed: the lowest `cursor_seq` of the incoming subscriptions that are not cancelled (a paused or lagging one,
  or one whose deliveries are dead, keeps what it has not been sent yet);
- events received from remotes (ReceivedEvent, kept to drop duplicates) older than `received_events_days`: a
  duplicate arrives within the signature window (minutes), and order is kept by each subscription's last_seq;
- audit rows older than `audit_days`, archived first to .sudocode/audit-archive/ (audit.services.audit_prune).

It lives here, at the subscriptions layer, because the outbox's rule is the subscriptions' cursors; events and
audit below only delete what they are told.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Min
from django.utils import timezone

from audit.services import audit_prune
from events.services import events_prune
from federation_site import node
from federation_site.config import RetentionSettings
from subscriptions.models import Direction, ReceivedEvent, Subscription, SubscriptionStatus


def retention_prune(*, now: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Prune (or with `dry_run`, count) what retention removes at `now` (default: the current time). Returns
    {"now", "dry_run", "events": {"count", "up_to_seq", "before"}, "received_events": {"count", "before"},
    "audit": {"count", "oldest", "newest", "archive", "before"}} (ISO 8601 times)."""
    now = now or timezone.now()
    cfg = node.config()
    periods = cfg.retention if cfg is not None else RetentionSettings()
    events_before = now - timedelta(days=periods.events_days)
    received_before = now - timedelta(days=periods.received_events_days)
    audit_before = now - timedelta(days=periods.audit_days)

    events = events_prune(before=events_before, passed_seq=passed_seq(), dry_run=dry_run)
    received = ReceivedEvent.objects.filter(received_at__lt=received_before)
    received_count = received.count() if dry_run else received.delete()[0]
    audit = audit_prune(before=audit_before, archive_dir=node.layout().audit_archive_dir, dry_run=dry_run)
    return {
        "now": now.isoformat(),
        "dry_run": dry_run,
        "events": {**events, "before": events_before.isoformat()},
        "received_events": {"count": received_count, "before": received_before.isoformat()},
        "audit": {**audit, "before": audit_before.isoformat()},
    }


def passed_seq() -> int:
    """The highest outbox seq every incoming subscription that is not cancelled has passed (its cursor); with
    none, any seq (the age rule alone applies)."""
    readers = Subscription.objects.filter(direction=Direction.INCOMING).exclude(status=SubscriptionStatus.CANCELLED)
    lowest = readers.aggregate(m=Min("cursor_seq"))["m"]
    return lowest if lowest is not None else 2**62
