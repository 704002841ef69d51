"""Reads about remotes and cross-repo references, in the shapes the CLI, API and pages show."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from django.db.models import Count
from django.utils import timezone

from federation_site import node
from remotes.models import CrossRepoReference, FetchStatus, RemoteRepo

if TYPE_CHECKING:
    from remotes.urlguard import UrlGuard

# remotes.breaker and remotes.urlguard are imported where they are used: they import the HTTP stack (requests,
# ~60 ms), which reading a reference's summary for `issue show` does not need (issue 16).


def url_guard(remote_identity: str | None) -> UrlGuard:
    """The rules for a URL the remote `remote_identity` hands us (issue 17, remotes/urlguard.py): the origins of
    its declared endpoints are vouched for, anything else must be https, public, and in its `allowed_hosts` when
    the config lists some. An unknown caller (None, or not a remote) gets the public rules only."""
    from remotes.urlguard import UrlGuard

    if not remote_identity:
        return UrlGuard()
    remote = RemoteRepo.objects.filter(url__iexact=remote_identity).first()
    endpoints = [remote.rest_endpoint] if remote and remote.rest_endpoint else []
    allowed: list[str] = []
    cfg = node.config()
    for declared in cfg.remote_repos if cfg else []:
        if declared.url.lower() == remote_identity.lower():
            allowed = list(declared.allowed_hosts)
            if declared.endpoint:
                endpoints.append(str(declared.endpoint))
    return UrlGuard.for_endpoints(endpoints, allowed_hosts=allowed)


def url_refusal(remote_identity: str | None, url: str) -> str | None:
    """Why this node will not call `url` for `remote_identity` (the 400's message), or None when it may."""
    from remotes.urlguard import UrlRefused

    try:
        url_guard(remote_identity).check(url)
    except UrlRefused as exc:
        return str(exc)
    return None


def remotes_for_repo(repo: str, remotes: list[RemoteRepo] | None = None) -> list[RemoteRepo]:
    """The remotes a repository as written means: the one whose identity it is (`github.com/org/x`), else every
    one whose `org/repo` path it is (`org/x`, the form references use): several when remotes on two hosts share
    the path, and then the short form is ambiguous (issue 13). `remotes`: the candidates (default: all)."""
    key = repo.strip().rstrip("/").lower()
    candidates = list(RemoteRepo.objects.all()) if remotes is None else remotes
    exact = [r for r in candidates if r.url.lower() == key]
    return exact or [r for r in candidates if r.repo_path.lower() == key]


def ambiguity(repo: str, matches: list[RemoteRepo]) -> str:
    """What to tell a user about a short form that means several remotes."""
    return (
        f"{repo} is ambiguous: it could mean {' or '.join(sorted(r.url for r in matches))}; "
        f"write the full identity ([[{sorted(r.url for r in matches)[0]}#id]])"
    )


def ambiguous_references() -> list[dict]:
    """The repositories our references name by a short form that several remotes share: [{"repo", "remotes",
    "references": count, "message"}]. Such references stay unresolved (never the first match)."""
    remotes = list(RemoteRepo.objects.all())
    out = []
    for repo, count in (
        CrossRepoReference.objects.filter(remote_repo__isnull=True)
        .values_list("repo")
        .annotate(n=Count("pk"))
        .order_by("repo")
    ):
        matches = remotes_for_repo(repo, remotes)
        if len(matches) > 1:
            out.append({"repo": repo, "remotes": sorted(r.url for r in matches), "references": count,
                        "message": ambiguity(repo, matches)})  # fmt: skip
    return out


def remote_get(*, url: str) -> RemoteRepo:
    """A remote by its identity, or by the short `org/repo` form when exactly one remote has it. DoesNotExist
    otherwise, saying when the short form is ambiguous."""
    matches = remotes_for_repo(url)
    if len(matches) > 1:
        raise RemoteRepo.DoesNotExist(ambiguity(url.strip().rstrip("/"), matches))
    if not matches:
        raise RemoteRepo.DoesNotExist(f"no remote {url!r}: see `sudocode-fed remote list`")
    return matches[0]


def remote_summary(remote: RemoteRepo) -> dict:
    """A remote as the CLI, MCP and the management API show it: the seed's remote_repos columns (url,
    display_name, trust_level, rest_endpoint, sync_status, last_synced_at, capabilities, added_at, added_by,
    auto_sync, sync_interval_minutes) plus how we call it, the last error, its circuit breaker (remotes/breaker.py:
    state, failures in a row, next try), whether it holds a key of ours, and the permissions
    federation.config.json declares for it (only those that differ from the defaults)."""
    from remotes.breaker import breaker_summary

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
        "circuit_breaker": breaker_summary(remote),
        "has_api_key": bool(remote.api_key_hash),
        "capabilities": remote.capabilities,
        "auto_sync": remote.auto_sync,
        "sync_interval_minutes": remote.sync_interval_minutes,
        "added_at": remote.added_at.isoformat(),
        "added_by": remote.added_by,
        "permissions": _declared_permissions(declared),
    }


def breaker_states() -> list[dict]:
    """Every remote's circuit breaker, by url: [{"url", "state": "closed"|"open"|"half_open", "failures",
    "next_try_at"}] (what metrics export; one query)."""
    from remotes.breaker import breaker_summary

    return [{"url": remote.url, **breaker_summary(remote)} for remote in RemoteRepo.objects.order_by("url")]


def _declared_permissions(declared) -> dict:
    if declared is None:
        return {}
    return declared.permissions.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def site_url(remote: RemoteRepo | None) -> str | None:
    """A remote node's dashboard, `{site}` of its REST endpoint `{site}/api/v1` (a sudocode-fed node), else None:
    the one rule for every link to another node's pages (the graph's included)."""
    endpoint = (remote.rest_endpoint if remote else "").rstrip("/")
    return endpoint.removesuffix("/api/v1") if endpoint.endswith("/api/v1") else None


def entity_page_url(remote: RemoteRepo | None, kind: str, entity_id: str) -> str | None:
    """The page of a remote's issue or spec on its own node (`{site}/issues/{id}`), or None (see site_url)."""
    site = site_url(remote)
    return f"{site}/{'specs' if kind == 'spec' else 'issues'}/{quote(entity_id, safe='')}" if site else None


def request_page_url(remote: RemoteRepo | None, request_id: str) -> str | None:
    """A request's page on the other node (`{site}/approvals/{id}`: its staff see it there), or None."""
    site = site_url(remote)
    return f"{site}/approvals/{quote(request_id, safe='')}" if site else None


def _unresolved(repo: str) -> str:
    matches = remotes_for_repo(repo)
    return ambiguity(repo, matches) if len(matches) > 1 else f"{repo} is not a known remote"


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
        "error": ref.fetch_error or (None if remote else _unresolved(ref.repo)),
        "remote_sync_status": remote.sync_status if remote else None,
        "href": entity_page_url(remote, ref.remote_entity_type or "issue", ref.remote_id),
    }


def references_of(*, local_uuid: str) -> list[CrossRepoReference]:
    return list(CrossRepoReference.objects.filter(local_uuid=local_uuid).select_related("remote_repo"))


def plain_http_remotes() -> list[dict]:
    """Remotes declared with a plain `http://` endpoint that is not on the loopback interface (issue 17): their
    messages and keys cross the network unencrypted. [{"url", "endpoint", "message"}], by url."""
    from urllib.parse import urlsplit

    from remotes.urlguard import ip_literal

    found = []
    for remote in RemoteRepo.objects.exclude(rest_endpoint="").order_by("url"):
        parts = urlsplit(remote.rest_endpoint)
        host = (parts.hostname or "").lower()
        literal = ip_literal(host) if host else None
        on_loopback = (
            host == "localhost" or host.endswith(".localhost") or (literal is not None and literal.is_loopback)
        )
        if parts.scheme == "http" and not on_loopback:
            found.append(
                {
                    "url": remote.url,
                    "endpoint": remote.rest_endpoint,
                    "message": f"{remote.url} is declared with a plain http:// endpoint ({remote.rest_endpoint}) that "
                    "is not on this machine: its messages and keys cross the network unencrypted; use https://",
                }
            )
    return found


def remotes_fingerprint() -> str:
    """What the /remotes/ page shows of every remote, in one string that changes when the page would: the
    live page's WebSocket polls it (subscriptions.consumers), as remotes write no events."""
    rows = RemoteRepo.objects.order_by("url").values_list(
        "url",
        "display_name",
        "trust_level",
        "rest_endpoint",
        "sync_status",
        "last_synced_at",
        "last_error",
        "breaker_state",
        "breaker_failures",
    )
    return repr(list(rows))
