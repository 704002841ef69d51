"""The append-only log of cross-repo operations (the seed's cross_repo_audit_log). Rows stay small: a summary
of the payload and the result, never whole bodies."""

from __future__ import annotations

import uuid

from django.db import models


def new_log_id() -> str:
    return f"log-{uuid.uuid4().hex[:16]}"


class AuditLog(models.Model):
    class Direction(models.TextChoices):
        OUTGOING = "outgoing"
        INCOMING = "incoming"

    class Status(models.TextChoices):
        SUCCESS = "success"
        FAILED = "failed"
        PENDING = "pending"

    log_id = models.CharField(primary_key=True, max_length=40, default=new_log_id)
    operation_type = models.CharField(max_length=32)  # query, discover, mutate, sync, subscribe, ...
    direction = models.CharField(max_length=8, choices=Direction.choices)
    local_repo = models.CharField(max_length=300)
    remote_repo = models.CharField(max_length=300)
    request_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    correlation_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    payload = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices)
    error_message = models.TextField(blank=True, default="")
    timestamp = models.DateTimeField(db_index=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The RFC 9421 signature an incoming message carried and that verified (issue 17): {key_id, created,
    # signature_input, signature, content_digest}, so a node can show later exactly what another one asked.
    signature = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "cross_repo_audit_log"
        ordering = ["-timestamp"]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.direction} {self.operation_type} {self.remote_repo}"
