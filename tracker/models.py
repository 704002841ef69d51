"""The repository's own issues and specs, as imported from `.sudocode/*.jsonl`.

The JSONL files are the source of truth. Each row keeps the exact line it came from (`raw`), so the tracker can
write a file back byte for byte and tell which entities changed when the file changes under it. The other
columns are an index over that line for queries; relationships, tags and content references are derived rows.
"""

from __future__ import annotations

from django.db import models


class EntityKind(models.TextChoices):
    ISSUE = "issue", "Issue"
    SPEC = "spec", "Spec"


class IssueStatus(models.TextChoices):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    NEEDS_REVIEW = "needs_review"
    CLOSED = "closed"


class Entity(models.Model):
    """An issue or a spec. Identity is the uuid; `sudocode_id` is the human id (`i-x7k9`, `ISSUE-001`)."""

    uuid = models.CharField(primary_key=True, max_length=64)
    kind = models.CharField(max_length=8, choices=EntityKind.choices)
    sudocode_id = models.CharField(max_length=128)
    title = models.CharField(max_length=1000)
    content = models.TextField(blank=True, default="")
    status = models.CharField(max_length=32, blank=True, default="")  # issues only
    priority = models.IntegerField(default=2)
    assignee = models.CharField(max_length=200, null=True, blank=True)
    archived = models.BooleanField(default=False)
    file_path = models.CharField(max_length=500, blank=True, default="")  # specs only
    parent_id = models.CharField(max_length=128, null=True, blank=True)
    parent_uuid = models.CharField(max_length=64, null=True, blank=True)
    # Timestamps exactly as the file writes them (two formats coexist), and parsed copies for filtering.
    created_at = models.CharField(max_length=40, blank=True, default="")
    updated_at = models.CharField(max_length=40, blank=True, default="")
    closed_at = models.CharField(max_length=40, null=True, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(null=True, blank=True)
    raw = models.TextField()
    raw_sha = models.CharField(max_length=64)

    class Meta:
        verbose_name_plural = "entities"
        constraints = [models.UniqueConstraint(fields=["kind", "sudocode_id"], name="entity_unique_id")]
        indexes = [
            models.Index(fields=["kind", "status"]),
            models.Index(fields=["kind", "priority"]),
            models.Index(fields=["kind", "updated"]),
        ]
        ordering = ["created_at", "sudocode_id"]

    def __str__(self) -> str:
        return f"{self.sudocode_id} {self.title}"

    @property
    def is_issue(self) -> bool:
        return self.kind == EntityKind.ISSUE


class Relationship(models.Model):
    """One entry of an entity's `relationships` array: an outgoing edge, as sudocode stores it."""

    source = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="relationships")
    position = models.PositiveIntegerField()
    from_id = models.CharField(max_length=128)
    from_type = models.CharField(max_length=8)
    to_id = models.CharField(max_length=128)
    to_type = models.CharField(max_length=8)
    type = models.CharField(max_length=32)

    class Meta:
        ordering = ["source", "position"]
        indexes = [models.Index(fields=["to_type", "to_id"])]

    def __str__(self) -> str:
        return f"{self.from_id} {self.type} {self.to_id}"


class Tag(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="tags")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=200, db_index=True)

    class Meta:
        ordering = ["entity", "position"]

    def __str__(self) -> str:
        return self.name


class ContentRef(models.Model):
    """A `[[...]]` reference found in an entity's content: local (`repo` empty) or cross-repo."""

    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="content_refs")
    position = models.PositiveIntegerField()
    repo = models.CharField(max_length=300, blank=True, default="", db_index=True)
    target_id = models.CharField(max_length=128)
    rel_type = models.CharField(max_length=32, blank=True, default="")
    display = models.CharField(max_length=500, blank=True, default="")
    mention = models.BooleanField(default=False)

    class Meta:
        ordering = ["entity", "position"]

    def __str__(self) -> str:
        return self.canonical_ref

    @property
    def canonical_ref(self) -> str:
        return f"{self.repo}#{self.target_id}" if self.repo else self.target_id


class JsonlFile(models.Model):
    """What the tracker last imported from one JSONL file, to notice cheaply when it changed under us."""

    kind = models.CharField(primary_key=True, max_length=8, choices=EntityKind.choices)
    size = models.BigIntegerField(default=-1)
    mtime_ns = models.BigIntegerField(default=-1)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    imported_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind}s.jsonl"


class PendingCommit(models.Model):
    """A git commit of a JSONL file that is owed: recorded with the change, made at once when git is free, else
    by the periodic `tracker.tasks.commit_pending` once the merge, rebase or detached HEAD that held it ends.
    Several waiting ones become one commit listing them all."""

    kind = models.CharField(max_length=8, choices=EntityKind.choices)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.message.splitlines()[0] if self.message else f"commit of {self.kind}s.jsonl"
