"""The seed's alerts (Monitoring and Observability): one row per time an alert fired, resolved in place when
its condition clears, and one AlertDelivery row per notification it owes (firing, then resolved) per channel.

Rows, so an alert survives a restart and is never sent twice: a condition that still holds finds its firing row;
one that cleared finds the row already resolved. At most one firing row per (kind, subject) (a conditional
unique constraint), so two evaluators racing cannot both fire it.
"""

from __future__ import annotations

from django.db import models


class AlertKind(models.TextChoices):
    """The notification event of each alert (the seed's `remote_repo_unreachable` and friends): what a
    notification channel lists in its `events` to hear it, firing and resolved."""

    REMOTE_UNREACHABLE = "remote_repo_unreachable"
    APPROVAL_BACKLOG = "approval_backlog"
    REMOTE_ERROR_RATE = "remote_error_rate"


class AlertStatus(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(models.Model):
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    subject = models.CharField(max_length=300, blank=True, default="")  # the remote; "" for the approval backlog
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.FIRING)
    # What was measured when it fired (minutes unreachable, requests waiting, percent failed) and the threshold.
    value = models.FloatField()
    threshold = models.FloatField()
    summary = models.TextField()  # one line a human reads: in the banner, the notification, `alerts`
    fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alerts"
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"], condition=models.Q(status="firing"), name="alert_firing_once"
            )
        ]
        indexes = [models.Index(fields=["status", "fired_at"], name="idx_alerts_status")]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject or '-'} ({self.status})"


class AlertDelivery(models.Model):
    """A notification of an alert to one channel (a Slack or generic webhook, email), firing or resolved:
    claimed before it is sent, retried with backoff (federation_site.backoff), dead after too many attempts."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        DELIVERED = "delivered"
        DEAD = "dead"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=16, choices=AlertStatus.choices)  # which news: it fired, or resolved
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(max_length=500)  # a webhook URL, or email addresses
    body = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "alert_deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="idx_alert_deliveries_due")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.alert.kind} {self.state} -> {self.target} ({self.status})"
