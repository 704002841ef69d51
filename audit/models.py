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
    timestamp = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The RFC 9421 signature an incoming message carried and that verified (issue 17): {key_id, created,
    # signature_input, signature, content_digest, signature_base}, so a node can show later exactly what another
    # one asked (and anyone with its public key can check it again: remotes.signatures.reverify).
    signature = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "cross_repo_audit_log"
        ordering = ["-timestamp"]
        indexes = [
            # A window of the log by time, with every column audit_stats and the error-rate alert group by: they
            # read the index alone, never the ~400-byte rows (at 1,000,000 rows, a day's stats: the table
            # lookups were most of the time). It replaces the index on timestamp alone, serving its queries too.
            models.Index(
                fields=["timestamp", "operation_type", "status", "remote_repo", "duration_ms"],
                name="idx_audit_log_window",
            )
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.direction} {self.operation_type} {self.remote_repo}"


# Upper bounds (ms) of the duration buckets an AuditRollup counts; the last column counts what is above 10 s.
# The same edges as the Prometheus histogram of calls (federation_site.metrics.LATENCY_BUCKETS), coarser below 1 ms.
ROLLUP_BOUNDS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
ROLLUP_BUCKETS = tuple(f"le_{bound}" for bound in ROLLUP_BOUNDS_MS) + ("le_inf",)


class AuditRollup(models.Model):
    """The audit rows of one period (a minute, a quarter hour or an hour) counted for one remote, and again for
    one operation: what the metrics page charts, so its queries read a few thousand of these instead of a week
    of audit rows (one row per remote and per operation, not per pair: 26 rows an hour for 20 remotes and 6
    operations, not 120). audit.services.audit_record adds each row to its periods (one upsert);
    audit.services.rollups_prune drops periods older than the page shows; rollups_rebuild makes them again from
    the audit rows."""

    class Dimension(models.TextChoices):
        REMOTE = "remote"  # name: the remote_repo
        OPERATION = "operation"  # name: the operation_type

    period_seconds = models.PositiveIntegerField()  # 60, 900 or 3600
    # The period's first moment in Unix seconds (aligned to its length, so to UTC): an integer, because the page
    # reads thousands of these and parsing as many datetimes would be most of its time.
    start = models.BigIntegerField()
    dimension = models.CharField(max_length=16, choices=Dimension.choices)
    name = models.CharField(max_length=300)
    calls = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    duration_count = models.PositiveIntegerField(default=0)  # calls with a duration (the buckets' total)
    duration_sum_ms = models.BigIntegerField(default=0)
    le_1 = models.PositiveIntegerField(default=0)
    le_2 = models.PositiveIntegerField(default=0)
    le_5 = models.PositiveIntegerField(default=0)
    le_10 = models.PositiveIntegerField(default=0)
    le_25 = models.PositiveIntegerField(default=0)
    le_50 = models.PositiveIntegerField(default=0)
    le_100 = models.PositiveIntegerField(default=0)
    le_250 = models.PositiveIntegerField(default=0)
    le_500 = models.PositiveIntegerField(default=0)
    le_1000 = models.PositiveIntegerField(default=0)
    le_2500 = models.PositiveIntegerField(default=0)
    le_5000 = models.PositiveIntegerField(default=0)
    le_10000 = models.PositiveIntegerField(default=0)
    le_inf = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "cross_repo_audit_rollup"
        constraints = [
            models.UniqueConstraint(fields=["period_seconds", "dimension", "start", "name"], name="audit_rollup_unique")
        ]

    def __str__(self) -> str:
        return f"{self.start} +{self.period_seconds}s {self.dimension} {self.name}"
