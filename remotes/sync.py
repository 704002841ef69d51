"""Talking to remotes: discovery, queries, and refreshing the cached state of cross-repo references. Every
call goes through `remotes.client` (pooled sessions, timeouts, retries) and leaves an audit row; none runs
inside a database transaction.

The HTTP stack (remotes.client, remotes.a2a_client, the breaker, the signing key: requests, pydantic, cryptography)
is imported by the functions that call out, not here: `issue show` imports this module for a local entity's
detail and must not pay ~200 ms for calls it does not make (issue 16)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from audit.services import audit_record
from federation_site import identity, metrics, node
from federation_site.secrets import get_secret, token_env_name
from remotes.models import CrossRepoReference, FetchStatus, RemoteRepo, SyncStatus
from remotes.services import (
    BATCH,
    kind_of_id,
    reference_state,
    references_announce,
    references_rebuild,
)
from tracker.models import Entity

if TYPE_CHECKING:
    from remotes.a2a_client import A2AClient
    from remotes.client import RemoteClient

logger = logging.getLogger(__name__)


def client_for(remote: RemoteRepo, operation: str = "", *, retries: int | None = None) -> RemoteClient | A2AClient:
    """The client for `remote`: REST, or A2A 1.0 when its config says `transport: "a2a"` (the same calls, see
    remotes/a2a_client.py). `retries` overrides the config's: a caller that keeps its own delivery row (and
    retries it with backoff) passes 0 rather than sleeping in the call."""
    from federation_site.keys import local_key
    from remotes.a2a_client import A2AClient
    from remotes.client import HttpPolicy, RemoteClient, RemoteUnreachable

    if not remote.rest_endpoint:
        raise RemoteUnreachable(
            f"{remote.url} has no REST endpoint: set its endpoint in federation.config.json (or the admin)",
            url=remote.url,
        )
    cfg = node.config()
    http = cfg.http if cfg else None
    policy = HttpPolicy(
        connect_timeout=http.connect_timeout_seconds if http else 3.0,
        read_timeout=http.timeout_for(operation) if http else 10.0,
        retries=retries if retries is not None else (http.retries if http else 3),
    )
    token = get_secret(node.layout().secrets_path, token_env_name(remote.url))
    declared, _ = cfg.remote_index(remote.url) if cfg else (None, None)
    signer = local_key()  # every call to a remote is signed with this node's key (issue 17)
    if declared is not None and declared.transport == "a2a":
        return A2AClient(remote.rest_endpoint, token=token, policy=policy, signer=signer, remote=remote.url)
    return RemoteClient(remote.rest_endpoint, token=token, policy=policy, signer=signer, remote=remote.url)


def audited_call(remote: RemoteRepo, operation: str, call, payload: Any = None, request_id: str = ""):
    """Run one outgoing call, write its audit row, and record the remote as reachable or not, and in its
    circuit breaker (remotes/breaker.py). While the breaker is open the call is not made: `CircuitOpen` (a
    RemoteUnreachable) at once, with no audit row, since nothing went out."""
    from remotes.breaker import breaker_admit, breaker_record, counts_as_failure
    from remotes.client import RemoteError, RemoteRejected

    breaker_admit(remote)
    started = time.perf_counter()
    try:
        response = call()
    except RemoteError as exc:
        duration = (time.perf_counter() - started) * 1000
        # A refusal (4xx) still proves the remote is up; only a call that got no answer marks it unreachable.
        _mark(remote, ok=isinstance(exc, RemoteRejected), error=str(exc))
        # A remote with no endpoint was never called: that is our config, not the remote being down.
        breaker_record(remote, ok=not (counts_as_failure(exc) and remote.rest_endpoint))
        audit_record(
            operation=operation,
            direction="outgoing",
            local_repo=identity.local_url(),
            remote_repo=remote.url,
            status="failed",
            payload=payload,
            error=str(exc),
            request_id=request_id,
            correlation_id=getattr(exc, "correlation_id", "") or "",
            duration_ms=duration,
        )
        raise
    _mark(remote, ok=True)
    breaker_record(remote, ok=True)
    audit_record(
        operation=operation,
        direction="outgoing",
        local_repo=identity.local_url(),
        remote_repo=remote.url,
        status="success",
        payload=payload,
        request_id=request_id,
        result={"status": response.status},
        correlation_id=response.correlation_id,
        duration_ms=response.elapsed_ms,
    )
    return response


def _mark(remote: RemoteRepo, *, ok: bool, error: str = "") -> None:
    now = timezone.now()
    fields = (
        {"sync_status": SyncStatus.SYNCED, "last_synced_at": now, "last_attempt_at": now, "last_error": ""}
        if ok
        else {"sync_status": SyncStatus.UNREACHABLE, "last_attempt_at": now, "last_error": error[:2000]}
    )
    RemoteRepo.objects.filter(url=remote.url).update(**fields)
    for k, v in fields.items():
        setattr(remote, k, v)


def remote_discover(*, remote: RemoteRepo, pin_key: bool = False) -> dict:
    """Ask `remote` what it can do (GET /federation/info) and keep its capabilities and endpoints. `pin_key`:
    also pin the public key the remote names, when the config pins none yet (`remote add`): for a remote reached
    over A2A the one its agent card's signatures extension names (remotes.a2a_client.card_public_key), else the
    one the discover answer names; when both name one and they differ, nothing is pinned (logged: the admin pins
    by hand after comparing fingerprints)."""
    client = client_for(remote, "discover")
    response = audited_call(remote, "discover", lambda: client.get("/federation/info"))
    announced = response.data.get("public_key")
    from remotes.a2a_client import A2AClient

    if pin_key and isinstance(client, A2AClient):
        from remotes.a2a_client import card_public_key

        carded = card_public_key(client.card())
        if carded and announced and carded != announced:
            logger.warning("%s: its agent card and its discover answer name different keys: none pinned", remote)
            announced = None
        else:
            announced = carded or announced
    if pin_key and isinstance(announced, str) and announced:
        from remotes.services import remote_pin_key

        cfg = node.config()
        declared, _ = cfg.remote_index(remote.url) if cfg else (None, None)
        if declared is not None and not declared.public_key:
            remote_pin_key(url=remote.url, public_key=announced)
    capabilities = response.data.get("capabilities") or {}
    endpoints = capabilities.get("endpoints") or {}
    RemoteRepo.objects.filter(url=remote.url).update(
        capabilities=capabilities,
        ws_endpoint=str(endpoints.get("ws") or "")[:500],
        git_url=str(endpoints.get("git") or "")[:500],
    )
    remote.capabilities = capabilities
    return capabilities


def remote_query(
    *,
    remote: RemoteRepo,
    query: dict,
    correlation_id: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> dict:
    """One page of a query to `remote` (the seed's query body); returns its query_response. `timeout`
    (seconds) bounds each attempt instead of the config's read timeout; `retries` replaces the config's (0: one
    attempt, for someone waiting at a prompt). Raises RemoteError."""
    message = {"type": "query", "from": identity.local_url() or None, "to": remote.url, "query": query}
    message = {k: v for k, v in message.items() if v is not None}
    response = audited_call(
        remote,
        "query",
        lambda: client_for(remote, "query", retries=retries).post(
            "/federation/query", message, correlation_id=correlation_id, timeout=timeout
        ),
        payload={"entity": query.get("entity"), "filters": query.get("filters"), "limit": query.get("limit")},
    )
    return response.data


QUERY_ALL_WORKERS = 16  # remotes asked at once by remotes_query_all
QUERY_ALL_PAGE = 500


def remotes_query_all(*, query: dict, remotes: list[RemoteRepo] | None = None, timeout: float | None = None) -> dict:
    """The same query (the seed's body; its cursor and limit are ours to set) to every remote with an endpoint
    at once, each followed to its last page (Use Case 3, `remote query-all`). A remote that fails is named and
    does not fail the rest. `timeout`: seconds per call to one remote (default: the config's read timeout).

    Returns {"total": int, "by_status": {status: count}, "results": [result + {"repo": url}],
    "remotes": [{"url", "ok": bool, "total": int | None, "returned": int, "error": str | None}]}, remotes in
    the order given (default: by url)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from remotes.client import RemoteError

    targets = remotes if remotes is not None else list(RemoteRepo.objects.exclude(rest_endpoint="").order_by("url"))

    def ask(remote: RemoteRepo) -> tuple[dict, list[dict]]:
        body = {**query, "limit": QUERY_ALL_PAGE}
        body.pop("cursor", None)
        rows: list[dict] = []
        try:
            while True:
                page = remote_query(remote=remote, query=body, timeout=timeout)
                rows += [{**r, "repo": remote.url} for r in page.get("results") or []]
                meta = page.get("metadata") or {}
                if not meta.get("next_cursor"):
                    return {"url": remote.url, "ok": True, "total": meta.get("total", len(rows)),
                            "returned": len(rows), "error": None}, rows  # fmt: skip
                body["cursor"] = meta["next_cursor"]
        except RemoteError as exc:
            return {"url": remote.url, "ok": False, "total": None, "returned": len(rows), "error": str(exc)}, []
        finally:
            connection.close()  # this worker thread's own connection

    with ThreadPoolExecutor(max_workers=max(1, min(QUERY_ALL_WORKERS, len(targets)))) as pool:
        answers = list(pool.map(ask, targets))
    results = [row for _, rows in answers for row in rows]
    by_status: dict[str, int] = defaultdict(int)
    for row in results:
        by_status[row.get("status") or "unknown"] += 1
    return {
        "total": sum(summary["total"] or 0 for summary, _ in answers),
        "by_status": dict(by_status),
        "results": results,
        "remotes": [summary for summary, _ in answers],
    }


def remote_sync(*, remote: RemoteRepo) -> dict:
    """Discover `remote` again and refresh every reference to it. Returns counts for the caller to show."""
    remote_discover(remote=remote)
    references_rebuild()
    refs = list(CrossRepoReference.objects.filter(remote_repo=remote).select_related("remote_repo"))
    refreshed = references_refresh(refs=refs, force=True)
    return {"references": len(refs), "refreshed": refreshed}


def _resting(remote: RemoteRepo, now) -> bool:
    """Whether lazy refreshes leave `remote` alone now: its breaker is open, or it failed within the cool-down
    (remotes.breaker.breaker_resting; an explicit sync still tries unless the breaker is open)."""
    from remotes.breaker import breaker_resting

    return breaker_resting(remote, now=now)


# A reference of these types makes the remote entity a blocker of the local one.
REMOTE_BLOCKING = ("blocked-by", "depends-on")


def entity_detail_with_cross_repo(*, entity: Entity) -> dict:
    """tracker's entity_detail plus `cross_repo` (refreshed lazily), with remote blockers listed under
    `blocked_by` next to local ones: the one shape `issue show` has in the CLI, the API and the page."""
    from tracker.selectors import entity_detail

    cross_repo = entity_cross_repo(entity=entity)
    # The refresh may just have learnt that the last remote blocker closed, and unblocked the issue.
    entity = Entity.objects.filter(pk=entity.pk).first() or entity
    detail = entity_detail(entity)
    detail["cross_repo"] = cross_repo
    detail["blocked_by"] += [
        {
            "type": ref["type"],
            "id": ref["ref"],
            "kind": ref["remote_entity_type"],
            "title": ref["title"],
            "status": ref["status"],
            "exists": ref["title"] is not None,
            "remote": True,
            "freshness": ref["freshness"],
            "href": ref["href"],
        }
        for ref in detail["cross_repo"]
        if ref["type"] in REMOTE_BLOCKING
    ]
    return detail


def entity_cross_repo(*, entity: Entity, refresh: bool = True) -> list[dict]:
    """The cross-repo references of one entity with their cached state, refreshed first when stale (lazily:
    this is what showing an issue calls, by CLI, API or page)."""
    from remotes.selectors import reference_summary, references_of

    references_rebuild(entities=[entity])
    refs = references_of(local_uuid=entity.uuid)
    if refresh and refs:
        references_refresh(refs=refs)
        refs = references_of(local_uuid=entity.uuid)
    return [reference_summary(r) for r in refs]


def references_refresh(*, refs: list[CrossRepoReference], force: bool = False) -> int:
    """Refresh the cached data of `refs` that are older than the cache TTL (all of them with `force`): one
    query per remote and entity type for all of its stale references, never one per reference. A remote that
    does not answer keeps its cached data (shown as stale) and is marked unreachable. Returns how many were
    refreshed."""
    cfg = node.config()
    ttl = timedelta(seconds=cfg.cache.ttl_seconds if cfg else 300)
    now = timezone.now()
    due: dict[tuple[str, str], list[CrossRepoReference]] = defaultdict(list)
    hits = 0
    for ref in refs:
        if ref.remote_repo is None:
            continue
        # A reference fetched within the TTL waits, whatever the answer was ("not found" included); one never
        # fetched is due at once (a remote that just failed is left alone by _resting below).
        if force or ref.last_fetched_at is None or now - ref.last_fetched_at > ttl:
            due[(ref.remote_repo.url, ref.remote_entity_type or kind_of_id(ref.remote_id))].append(ref)
        else:
            hits += 1
    if not force:  # an explicit sync asks no cache: it is not a lookup
        metrics.reference_cache_observe(hits=hits, misses=sum(len(group) for group in due.values()))
    refreshed = 0
    # Local issues whose remote blocker's status we now see differently: their own status may have to follow.
    status_changed: set[str] = set()
    announced: dict[str, dict[str, dict]] = defaultdict(dict)  # what the live pages hear (references_announce)
    for (_url, kind), group in due.items():
        remote = group[0].remote_repo
        if not force and _resting(remote, now):
            continue  # it just failed: serve the cached data instead of waiting on it again
        ids = sorted({r.remote_id for r in group})
        from remotes.client import RemoteError

        try:
            found: dict[str, dict] = {}
            for i in range(0, len(ids), BATCH):
                page = remote_query(
                    remote=remote, query={"entity": kind, "filters": {"ids": ids[i : i + BATCH]}, "limit": BATCH}
                )
                for item in page.get("results") or []:
                    found[str(item.get("id"))] = item
                    found[str(item.get("uuid"))] = item
        except RemoteError as exc:
            CrossRepoReference.objects.filter(pk__in=[r.pk for r in group]).update(
                fetch_status=FetchStatus.FAILED, fetch_error=str(exc)[:2000]
            )
            for ref in group:  # the cached data stays; the page shows it stale now
                if ref.fetch_status != FetchStatus.FAILED:
                    after = {"cached": ref.cached_data, "fetch_status": FetchStatus.FAILED}
                    announced[ref.local_uuid][ref.canonical_ref] = {"from": reference_state(ref), "to": after}
            continue
        for ref in group:
            item = found.get(ref.remote_id) or (found.get(ref.remote_uuid) if ref.remote_uuid else None)
            if ref.relationship_type in REMOTE_BLOCKING and (ref.cached_data or {}).get("status") != (
                (item or {}).get("status")
            ):
                status_changed.add(ref.local_uuid)
            before = reference_state(ref)
            if item is None:
                CrossRepoReference.objects.filter(pk=ref.pk).update(
                    fetch_status=FetchStatus.FAILED,
                    last_fetched_at=now,
                    cached_data=None,
                    fetch_error=f"{ref.remote_id} not found in {remote.url}",
                )
                if before != {"cached": None, "fetch_status": FetchStatus.FAILED}:
                    after = {"cached": None, "fetch_status": FetchStatus.FAILED}
                    announced[ref.local_uuid][ref.canonical_ref] = {"from": before, "to": after}
                continue
            cached = {k: item.get(k) for k in ("title", "status", "priority", "updated_at") if k in item}
            if before != {"cached": cached, "fetch_status": FetchStatus.SUCCESS}:
                after = {"cached": cached, "fetch_status": FetchStatus.SUCCESS}
                announced[ref.local_uuid][ref.canonical_ref] = {"from": before, "to": after}
            CrossRepoReference.objects.filter(pk=ref.pk).update(
                cached_data=cached,
                remote_uuid=str(item.get("uuid") or ref.remote_uuid),
                last_fetched_at=now,
                fetch_status=FetchStatus.SUCCESS,
                fetch_error="",
            )
            refreshed += 1
    references_announce(changes=announced)
    if status_changed:
        from remotes.blocking import blocked_status_reconcile

        blocked_status_reconcile(local_uuids=status_changed)
    return refreshed
