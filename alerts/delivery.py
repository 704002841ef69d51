"""Sending what alerts owe: one AlertDelivery row per notification channel of the config (`notifications.
channels`, the same channels as requests' notifications), for an alert firing and again when it resolves.

As requests_app.delivery does for its rows: claimed by a conditional update that also moves next_attempt_at
forward, sent once, retried with the common backoff on a transient failure, dead on a permanent one (a 4xx, a bad
address) or after MAX_ATTEMPTS. A Slack channel gets `text`; every webhook also gets the alert as fields.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts import signals
from alerts.models import Alert, AlertDelivery, AlertStatus
from federation_site import node
from federation_site.backoff import backoff
from remotes.client import RemoteError, RemoteUnreachable, post_webhook

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12  # about 3 hours of backoff, as request notifications


def alert_message(alert: Alert, state: str) -> dict:
    """The JSON a webhook channel receives: `{"text", "event", "state": "firing"|"resolved", "subject", "value",
    "threshold", "summary", "fired_at", "resolved_at", "node"}`."""
    cfg = node.config()
    here = cfg.local_identity.url if cfg and cfg.local_identity else ""
    if state == AlertStatus.FIRING:
        text = f"[sudocode] ALERT {alert.kind}: {alert.summary}"
    else:
        text = f"[sudocode] RESOLVED {alert.kind}: {alert.summary}"
    return {
        "text": text + (f" ({here})" if here else ""),
        "event": alert.kind,
        "state": state,
        "subject": alert.subject or None,
        "value": alert.value,
        "threshold": alert.threshold,
        "summary": alert.summary,
        "fired_at": alert.fired_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "node": here or None,
    }


def queue_notifications(alert: Alert, state: str, *, now: datetime) -> list[AlertDelivery]:
    """One delivery per channel that wants the alert's event (all events when it lists none), inside the
    caller's transaction; each is woken after the commit."""
    cfg = node.config()
    channels = cfg.notifications.channels if cfg else []
    message = alert_message(alert, state)
    queued = []
    for channel in channels:
        if channel.events and alert.kind not in channel.events:
            continue
        if channel.type == "email":
            kind, target = AlertDelivery.Kind.EMAIL, ",".join(channel.to)
            body = {"subject": message["text"][:200], "text": message["text"]}
        else:
            kind, target, body = AlertDelivery.Kind.WEBHOOK, str(channel.webhook_url), message
        row = AlertDelivery.objects.create(
            alert=alert, state=state, kind=kind, target=target, body=body, next_attempt_at=now, created_at=now
        )
        transaction.on_commit(lambda pk=row.pk: signals.alert_delivery_due.send(sender=AlertDelivery, delivery_id=pk))
        queued.append(row)
    return queued


def deliver(delivery_id: int, *, now: datetime | None = None) -> str:
    """Send one delivery if it is due. Safe to run twice: only the run that claims the row sends it."""
    now = now or timezone.now()
    claimed = AlertDelivery.objects.filter(
        pk=delivery_id, status=AlertDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(
        status=AlertDelivery.Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=now + timedelta(minutes=5)
    )
    if not claimed:
        return "not due"
    row = AlertDelivery.objects.get(pk=delivery_id)
    try:
        _send(row)
    except RemoteUnreachable as exc:  # transient: the network, the receiver, the mail relay
        return _failed(row, exc, now=now)
    except RemoteError as exc:  # a 4xx (but 408/429), a redirect, a bad address: trying again will not help
        _finish(row, AlertDelivery.Status.DEAD, str(exc))
        return "dead"
    except Exception as exc:  # the mail relay
        return _failed(row, exc, now=now)
    _finish(row, AlertDelivery.Status.DELIVERED, "", now=now)
    return "delivered"


def _send(row: AlertDelivery) -> None:
    if row.kind == AlertDelivery.Kind.EMAIL:
        send_mail(row.body["subject"], row.body["text"], settings.DEFAULT_FROM_EMAIL, row.target.split(","))
        return
    body = json.dumps(row.body, separators=(",", ":"), ensure_ascii=False).encode()
    post_webhook(row.target, body, headers={"Content-Type": "application/json"}, timeouts=(3, 10))


def _failed(row: AlertDelivery, exc: Exception, *, now: datetime) -> str:
    if row.attempts >= MAX_ATTEMPTS:
        _finish(row, AlertDelivery.Status.DEAD, f"gave up after {row.attempts} attempts: {exc}")
        return "dead"
    AlertDelivery.objects.filter(pk=row.pk).update(
        status=AlertDelivery.Status.PENDING, last_error=str(exc)[:2000], next_attempt_at=now + backoff(row.attempts)
    )
    logger.info("alert delivery %s failed (attempt %d), retrying: %s", row.pk, row.attempts, exc)
    return "retry"


def _finish(row: AlertDelivery, status: str, error: str, *, now: datetime | None = None) -> None:
    AlertDelivery.objects.filter(pk=row.pk).update(
        status=status,
        last_error=error[:2000],
        delivered_at=(now or timezone.now()) if status == AlertDelivery.Status.DELIVERED else None,
    )


def due(*, now: datetime | None = None) -> list[int]:
    """Deliveries whose time has come, and ones a crashed worker left claimed (their claim has expired)."""
    now = now or timezone.now()
    AlertDelivery.objects.filter(status=AlertDelivery.Status.SENDING, next_attempt_at__lte=now).update(
        status=AlertDelivery.Status.PENDING
    )
    return list(
        AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING, next_attempt_at__lte=now).values_list(
            "pk", flat=True
        )[:500]
    )


def deliver_due(*, now: datetime | None = None) -> dict[str, int]:
    """Send every due delivery now (the periodic task; `alerts check`). Returns how many ended how."""
    outcomes: dict[str, int] = {}
    for delivery_id in due(now=now):
        outcome = deliver(delivery_id, now=now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
