"""Known remote repositories and the cross-repo references this repository holds (the seed's remote_repos and
cross_repo_references tables).

federation.config.json declares which remotes exist and how far they are trusted (git-tracked); these rows
keep what a node learns at run time: capabilities, sync status, the hash of the API key a remote presents.
"""

from __future__ import annotations

from django.db import models


class TrustLevel(models.TextChoices):
    TRUSTED = "trusted"
    VERIFIED = "verified"
    UNTRUSTED = "untrusted"


class SyncStatus(models.TextChoices):
    SYNCED = "synced"
    STALE = "stale"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


class BreakerState(models.TextChoices):
    """remotes/breaker.py: calls to a remote go (closed), are paused (open), or wait on one probe (half_open)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class RemoteRepo(models.Model):
    url = models.CharField(primary_key=True, max_length=300)  # identity: "github.com/org/repo-b"
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    trust_level = models.CharField(max_length=16, choices=TrustLevel.choices, default=TrustLevel.UNTRUSTED)
    capabilities = models.JSONField(null=True, blank=True)
    rest_endpoint = models.CharField(max_length=500, blank=True, default="")
    ws_endpoint = models.CharField(max_length=500, blank=True, default="")
    git_url = models.CharField(max_length=500, blank=True, default="")
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sync_status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.UNKNOWN)
    last_error = models.TextField(blank=True, default="")
    added_at = models.DateTimeField()
    added_by = models.CharField(max_length=200)
    auto_sync = models.BooleanField(default=False)
    sync_interval_minutes = models.PositiveIntegerField(default=60)
    # The key this node generated for the remote to present as a bearer token; only its SHA-256 is kept.
    api_key_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    api_key_created_at = models.DateTimeField(null=True, blank=True)
    # The circuit breaker (remotes/breaker.py), shared by every process of the node: failed calls in a row, and
    # while open, when the probe may go (half-open: when a probe that never reported back is given up).
    breaker_state = models.CharField(max_length=16, choices=BreakerState.choices, default=BreakerState.CLOSED)
    breaker_failures = models.PositiveIntegerField(default=0)
    breaker_next_try_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "remote_repos"
        ordering = ["url"]

    def __str__(self) -> str:
        return self.url

    @property
    def repo_path(self) -> str:
        """ "github.com/org/api" -> "org/api": how cross-repo refs name it."""
        from federation_site.identity import repo_path

        return repo_path(self.url)


class RelationshipType(models.TextChoices):
    BLOCKS = "blocks"
    BLOCKED_BY = "blocked-by"
    RELATED = "related"
    IMPLEMENTS = "implements"
    DEPENDS_ON = "depends-on"
    PARENT_CHILD = "parent-child"
    DISCOVERED_FROM = "discovered-from"
    REFERENCES = "references"  # sudocode's own type; a plain [[org/repo#id]] mention
    DELEGATED_TO = "delegated-to"  # ours: the entity a delegate created for our task (requests_app.delegation)
    DELEGATED_FROM = "delegated-from"  # ours: the delegator's entity this one was created for


class FetchStatus(models.TextChoices):
    SUCCESS = "success"
    FAILED = "failed"
    PENDING = "pending"


class CrossRepoReference(models.Model):
    """A local issue or spec pointing at an entity of another repository, with a cached copy of its state."""

    local_uuid = models.CharField(max_length=64, db_index=True)
    local_entity_type = models.CharField(max_length=8)
    # The repository as the reference names it ("org/api-service"); `remote_repo` once it matches a known remote.
    repo = models.CharField(max_length=300)
    remote_repo = models.ForeignKey(
        RemoteRepo,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="references",
        db_column="remote_repo_url",
    )
    remote_entity_type = models.CharField(max_length=8, blank=True, default="")
    remote_id = models.CharField(max_length=128)
    remote_uuid = models.CharField(max_length=64, blank=True, default="")
    canonical_ref = models.CharField(max_length=500)
    relationship_type = models.CharField(max_length=32, choices=RelationshipType.choices)
    cached_data = models.JSONField(null=True, blank=True)  # {title, status, priority, updated_at}
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    fetch_status = models.CharField(max_length=16, choices=FetchStatus.choices, default=FetchStatus.PENDING)
    fetch_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=200)

    class Meta:
        db_table = "cross_repo_references"
        constraints = [
            models.UniqueConstraint(
                fields=["local_uuid", "repo", "remote_id", "relationship_type"], name="cross_repo_reference_unique"
            )
        ]
        indexes = [models.Index(fields=["remote_repo", "remote_id"])]
        ordering = ["local_uuid", "canonical_ref"]

    def __str__(self) -> str:
        return f"{self.local_uuid} {self.relationship_type} {self.canonical_ref}"


class ConfigStamp(models.Model):
    """The size and mtime of federation.config.json when remote_repos was last reconciled with it, so a
    process can tell without parsing the file that nothing changed."""

    size = models.BigIntegerField()
    mtime_ns = models.BigIntegerField()

    def __str__(self) -> str:
        return f"federation.config.json ({self.size} bytes)"


class QuotaUsage(models.Model):
    """How much of a quota a key used in one fixed window (remotes.quotas): queries per minute per caller,
    bytes per day for the node. Old windows are deleted as new ones start."""

    key = models.CharField(max_length=400)  # "query:github.com/org/a", "query:anon:127.0.0.1", "bandwidth"
    window_start = models.DateTimeField()
    amount = models.BigIntegerField(default=0)

    class Meta:
        db_table = "quota_usage"
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="quota_usage_unique_window")]

    def __str__(self) -> str:
        return f"{self.key} @ {self.window_start:%Y-%m-%d %H:%M}: {self.amount}"


class UsedTokenId(models.Model):
    """The `jti` of every short-lived JWT a remote presented (remotes.auth, issue 17), kept until the token
    expires, so none is accepted twice."""

    jti = models.CharField(primary_key=True, max_length=200)  # "<issuer> <jti>": ids are unique per issuer
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "used_token_ids"

    def __str__(self) -> str:
        return self.jti
