"""Reads about remotes and cross-repo references, in the shapes the CLI, API and pages show."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from federation_site import node
from remotes.models import CrossRepoReference, FetchStatus, RemoteRepo


def remote_get(*, url: str) -> RemoteRepo:
    key = url.strip().rstrip("/")
    remote = RemoteRepo.objects.filter(url__iexact=key).first()
    if remote is None:
        # Accept the short form a reference uses ("org/api" for "github.com/org/api").
        matches = [r for r in RemoteRepo.objects.all() if r.repo_path.lower() == key.lower()]
        remote = matches[0] if len(matches) == 1 else None
    if remote is None:
        raise RemoteRepo.DoesNotExist(f"no remote {url!r}: see `sudocode-fed remote list`")
    return remote


def remote_summary(remote: RemoteRepo) -> dict:
    """A remote as the CLI, MCP and the management API show it: the seed's remote_repos columns (url,
    display_name, trust_level, rest_endpoint, sync_status, last_synced_at, capabilities, added_at, added_by,
    auto_sync, sync_interval_minutes) plus how we call it, the last error, whether it holds a key of ours, and
    the permissions federation.config.json declares for it (only those that differ from the defaults)."""
    cfg = node.config()
    declared, _ = cfg.remote_index(remote.url) if cfg else (None, None)
    return {
        "url": remote.url,
        "display_name": remote.display_name,
        "trust_level": remote.trust_level,
        "rest_endpoint": remote.rest_endpoint or None,
        "transport": declared.transport if declared is not None else "rest",
        "sync_status": remote.sync_status,
        "last_synced_at": remote.last_synced_at.isoformat() if remote.last_synced_at else None,
        "last_error": remote.last_error or None,
        "has_api_key": bool(remote.api_key_hash),
        "capabilities": remote.capabilities,
        "auto_sync": remote.auto_sync,
        "sync_interval_minutes": remote.sync_interval_minutes,
        "added_at": remote.added_at.isoformat(),
        "added_by": remote.added_by,
        "permissions": _declared_permissions(declared),
    }


def _declared_permissions(declared) -> dict:
    if declared is None:
        return {}
    return declared.permissions.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _ttl() -> timedelta:
    cfg = node.config()
    return timedelta(seconds=cfg.cache.ttl_seconds if cfg else 300)


def reference_summary(ref: CrossRepoReference, *, ttl: timedelta | None = None) -> dict:
    """A reference with its cached data and how fresh it is: `fresh` (fetched within the cache TTL), `stale`
    (older, or the last refresh failed: the data shown is the last known), `missing` (never fetched, or the
    remote does not have it)."""
    ttl = ttl or _ttl()
    fresh = (
        ref.fetch_status == FetchStatus.SUCCESS
        and ref.last_fetched_at is not None
        and timezone.now() - ref.last_fetched_at <= ttl
    )
    freshness = "fresh" if fresh else ("stale" if ref.cached_data else "missing")
    remote = ref.remote_repo
    return {
        "ref": ref.canonical_ref,
        "type": ref.relationship_type,
        "repo": ref.repo,
        "remote": remote.url if remote else None,
        "id": ref.remote_id,
        "remote_entity_type": ref.remote_entity_type or "issue",
        "uuid": ref.remote_uuid or None,
        "title": (ref.cached_data or {}).get("title"),
        "status": (ref.cached_data or {}).get("status"),
        "priority": (ref.cached_data or {}).get("priority"),
        "freshness": freshness,
        "last_fetched_at": ref.last_fetched_at.isoformat() if ref.last_fetched_at else None,
        "fetch_status": ref.fetch_status,
        "error": ref.fetch_error or (None if remote else f"{ref.repo} is not a known remote"),
        "remote_sync_status": remote.sync_status if remote else None,
    }


def references_of(*, local_uuid: str) -> list[CrossRepoReference]:
    return list(CrossRepoReference.objects.filter(local_uuid=local_uuid).select_related("remote_repo"))
