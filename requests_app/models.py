"""Cross-repo requests (the seed's cross_repo_requests) and the deliveries they cause.

Both sides keep a request: the node that asked holds it as `outgoing`, the node that decides as `incoming`,
under the same request_id (the idempotency key). Anything that must eventually cross the network because of a
request (a callback to the requester, a notification to maintainers) is a Delivery row with its own state.
"""

from __future__ import annotations

from django.db import models


class Direction(models.TextChoices):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


class RequestType(models.TextChoices):
    CREATE_ISSUE = "create_issue"
    CREATE_SPEC = "create_spec"
    UPDATE_ISSUE = "update_issue"
    QUERY = "query"
    DELEGATE = "delegate"  # ours: the seed's delegate message, decided and approved like a mutation


class RequestStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # ours: the requester withdrew it while it waited (A2A CancelTask); the seed's spelling


class CrossRepoRequest(models.Model):
    request_id = models.CharField(max_length=64)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    from_repo = models.CharField(max_length=300)
    to_repo = models.CharField(max_length=300)
    request_type = models.CharField(max_length=16, choices=RequestType.choices)
    payload = models.JSONField()  # the whole A2A message
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    requires_approval = models.BooleanField(default=True)
    approved_by = models.CharField(max_length=200, blank=True, default="")
    approved_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    # Ours: who asked (metadata.requester), the other node's approval page, and, for an outgoing request,
    # whether the other node has it yet (a request that could not be sent is retried, never lost).
    requester = models.CharField(max_length=200, blank=True, default="")
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    approval_url = models.CharField(max_length=500, blank=True, default="")
    sent = models.BooleanField(default=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # How the policy decided (requests_app.policy.Decision.as_json): {outcome, rule, condition, reason}.
    decision = models.JSONField(null=True, blank=True)
    # A request that came through the A2A door is also that protocol's task (agents.a2a_server): the parts of the
    # task the columns above do not hold. {"context_id", "message" (the requester's A2A message), "push": [...]}
    a2a = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "cross_repo_requests"
        constraints = [models.UniqueConstraint(fields=["request_id", "direction"], name="request_unique_per_direction")]
        indexes = [models.Index(fields=["status", "direction"], name="idx_cross_repo_requests_status")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.request_id} ({self.direction}, {self.status})"

    @property
    def data(self) -> dict:
        """A mutation's `data`, or a delegation's `task`."""
        payload = self.payload or {}
        return payload.get("task" if self.request_type == RequestType.DELEGATE else "data") or {}

    @property
    def is_delegation(self) -> bool:
        return self.request_type == RequestType.DELEGATE

    @property
    def other_repo(self) -> str:
        return self.from_repo if self.direction == Direction.INCOMING else self.to_repo


class Delivery(models.Model):
    """Something a request makes us send: a callback to the requester's node, or a notification (Slack-style
    webhook, email). Claimed before it is sent; retried with backoff; dead after too many attempts."""

    class Kind(models.TextChoices):
        CALLBACK = "callback"
        WEBHOOK = "webhook"
        EMAIL = "email"
        PUSH = "push"  # body {"payload", "headers"}: POSTed as is (A2A push notifications, agents.a2a_server)

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        DELIVERED = "delivered"
        DEAD = "dead"

    request = models.ForeignKey(CrossRepoRequest, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    event = models.CharField(max_length=64)  # request_pending_approval, request_completed, ...
    target = models.CharField(max_length=500)  # a remote's identity, a webhook URL, or email addresses
    body = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.kind} {self.event} -> {self.target} ({self.status})"
