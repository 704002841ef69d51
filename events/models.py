"""The outbox: one row per change, written in the same database transaction as the change itself.

`seq` is this node's sequence number: strictly increasing in commit order (it is taken under a lock on the one
EventCounter row, held until the transaction commits), so a reader that has seen up to `seq` N never misses an
event numbered below N later. Subscribers (webhooks, WebSocket clients) read the outbox by `seq`; the broker and
the channel layer only wake them.
"""

from __future__ import annotations

from django.db import models


class Scope(models.TextChoices):
    # An entity event may go to remote subscribers (projected to what their trust allows); a local one (a
    # request arriving or being decided) only to this node's own staff, for the live dashboard.
    ENTITY = "entity"
    LOCAL = "local"


class Event(models.Model):
    seq = models.BigIntegerField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    type = models.CharField(max_length=40)  # issue_created, issue_updated, spec_deleted, request_updated, ...
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.ENTITY)
    entity_kind = models.CharField(max_length=8)  # issue | spec | request
    entity_uuid = models.CharField(max_length=64)
    entity_id = models.CharField(max_length=128)
    # The seed's `changes`: {field: {"from": ..., "to": ...}}; `state` holds the entity's fields that filters
    # match on, before and after ({"before": {...} | None, "after": {...} | None}).
    changes = models.JSONField(default=dict)
    state = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["entity_uuid", "seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type} {self.entity_id}"


class EventCounter(models.Model):
    """The one row whose lock orders events: the last sequence number handed out."""

    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"last event #{self.last_seq}"
