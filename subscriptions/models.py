"""Subscriptions to changes (the seed's cross_repo_subscriptions) and the events received through them.

Both sides keep a row under the same subscription_id: the node that watches holds it as `outgoing`, the node
whose entities are watched as `incoming`. An incoming row is also the delivery state of its webhook stream (a
cursor into the events outbox, attempts, next attempt, last error): events go out in sequence order, one
subscriber's failures never hold up another's. An outgoing row remembers the last sequence number applied, so
the receiver can drop duplicates and notice a gap.
"""

from __future__ import annotations

from django.db import models


class Direction(models.TextChoices):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class DeliveryStatus(models.TextChoices):
    # incoming: the webhook stream. idle (nothing due) -> sending (claimed) -> idle | retrying | dead
    # outgoing: the subscribe call to the remote. pending -> sending -> confirmed | retrying | dead
    IDLE = "idle"
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    CONFIRMED = "confirmed"
    DEAD = "dead"


class Subscription(models.Model):
    subscription_id = models.CharField(primary_key=True, max_length=64)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    from_repo = models.CharField(max_length=300)  # the subscriber
    to_repo = models.CharField(max_length=300)  # the watched repository
    watch_config = models.JSONField()  # {"entity_type": "issue", "filters": {...}}
    callback_url = models.CharField(max_length=2000, blank=True, default="")
    callback_auth = models.JSONField(null=True, blank=True)  # {"type": "bearer", "token": "..."}
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    created_at = models.DateTimeField()
    last_event_at = models.DateTimeField(null=True, blank=True)
    event_count = models.PositiveIntegerField(default=0)

    # Ours. The HMAC key both sides agreed when the subscription was created (never leaves the database).
    secret = models.CharField(max_length=128)
    # Outgoing: made and kept in line by auto-subscribe (the remote entities our issues reference).
    auto = models.BooleanField(default=False)
    # Incoming: the last outbox event considered (sent or not matching) and the last one sent.
    # Outgoing: last_seq is the last event applied here.
    cursor_seq = models.BigIntegerField(default=0)
    last_seq = models.BigIntegerField(default=0)
    delivery_status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.IDLE)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "cross_repo_subscriptions"
        indexes = [
            models.Index(fields=["direction", "status"]),
            models.Index(fields=["delivery_status", "next_attempt_at"]),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.subscription_id} ({self.direction}, {self.from_repo} -> {self.to_repo})"

    @property
    def other_repo(self) -> str:
        return self.from_repo if self.direction == Direction.INCOMING else self.to_repo


class ReceivedEvent(models.Model):
    """An event that arrived by webhook (or by a catch-up query), kept to drop duplicates by event id and to
    tell a replayed message (same signature timestamp) from a sender's retry (a new one)."""

    event_id = models.UUIDField(unique=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="received")
    from_repo = models.CharField(max_length=300)
    seq = models.BigIntegerField()
    signed_at = models.BigIntegerField(null=True, blank=True)  # the signature's timestamp; None: fetched
    event = models.JSONField()
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["subscription", "seq"]
        indexes = [models.Index(fields=["subscription", "seq"])]

    def __str__(self) -> str:
        return f"{self.from_repo} #{self.seq} {self.event_id}"
