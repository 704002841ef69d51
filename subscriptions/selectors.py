"""Reading subscriptions: the list the CLI shows, how a watch reads, and the one summary shape of a row (the
CLI's `subscriptions list` and `remote subscribe` print it)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db.models import Count

from subscriptions.models import Direction, Subscription


def subscriptions_list(*, direction: str | None = None, limit: int | None = None) -> list[Subscription]:
    rows = Subscription.objects.defer("secret").order_by("direction", "-created_at")
    if direction:
        rows = rows.filter(direction=direction)
    return list(rows[:limit] if limit else rows)


def watch_text(watch: dict) -> str:
    """ "issue: labels=frontend-blocking, status=open" """
    filters = watch.get("filters") or {}
    parts = [
        f"{name}={','.join(map(str, value)) if isinstance(value, list) else value}"
        for name, value in sorted(filters.items())
        if value not in (None, [], "")
    ]
    return f"{watch.get('entity_type', '?')}: {', '.join(parts)}" if parts else f"every {watch.get('entity_type', '?')}"


def subscription_summary(row: Subscription) -> dict[str, Any]:
    return {
        "subscription_id": row.subscription_id,
        "direction": row.direction,
        "from": row.from_repo,
        "to": row.to_repo,
        "remote": row.from_repo if row.direction == Direction.INCOMING else row.to_repo,
        "watch": row.watch_config,
        "callback_url": row.callback_url or None,
        "status": row.status,
        "auto": row.auto,
        "delivery_status": row.delivery_status,
        "cursor_seq": row.cursor_seq,
        "last_seq": row.last_seq,
        "event_count": row.event_count,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "last_event_at": row.last_event_at.isoformat() if row.last_event_at else None,
        "last_error": row.last_error or None,
        "created_at": row.created_at.isoformat(),
    }


def subscription_gauges() -> dict[tuple[str, str, str], int]:
    """What /metrics shows of subscriptions, read now: `{(direction, status, delivery_status): n}`."""
    rows = Subscription.objects.values_list("direction", "status", "delivery_status").annotate(n=Count("pk")).order_by()
    return {(direction, status, delivery): n for direction, status, delivery, n in rows}


def subscriptions_fingerprint() -> str:
    """A string that changes whenever what /subscriptions/ shows of a row does, or a row is added or removed: the
    live page's WebSocket polls it (subscriptions.consumers), as a delivery's progress writes no event. Not
    `updated_at`: claiming and releasing a row for a fan-out that finds nothing to send writes it, and the page
    would refresh every second for nothing."""
    rows = Subscription.objects.order_by("pk").values_list(
        "pk",
        "status",
        "delivery_status",
        "cursor_seq",
        "last_seq",
        "event_count",
        "last_event_at",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()
