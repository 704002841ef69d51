"""Reading the alerts: the dashboard's banner and metrics page, the CLI (`alerts`), the metrics series API."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from alerts.models import Alert, AlertStatus


def alert_entry(alert: Alert) -> dict:
    """One alert as every edge shows it: `{"id", "kind" (its notification event), "subject" (a remote or null),
    "status": "firing"|"resolved", "value", "threshold", "summary", "fired_at", "resolved_at"}`."""
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "subject": alert.subject or None,
        "status": alert.status,
        "value": alert.value,
        "threshold": alert.threshold,
        "summary": alert.summary,
        "fired_at": alert.fired_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def alerts_firing() -> list[dict]:
    """The alerts firing now, oldest first (one indexed query: the banner on every staff page)."""
    return [alert_entry(a) for a in Alert.objects.filter(status=AlertStatus.FIRING).order_by("fired_at", "id")]


def alerts_recent(*, days: float = 7, now: datetime | None = None, limit: int = 100) -> list[dict]:
    """The alerts firing now and those resolved within the last `days`, newest first."""
    since = (now or timezone.now()) - timedelta(days=days)
    rows = Alert.objects.exclude(status=AlertStatus.RESOLVED, resolved_at__lt=since)
    return [alert_entry(a) for a in rows.order_by("-fired_at", "-id")[:limit]]
