"""Answering A2A messages: what this node says to a caller. Each answer checks the caller against
remotes.policy, reads through the owning app's selectors, writes one small audit row, and returns the
response message as a JSON-ready dict. The REST views and the A2A endpoint both call these."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

from audit.services import audit_record_later
from federation_site import identity, node
from protocol import messages
from remotes import policy, quotas
from remotes.policy import Caller
from remotes.services import declared_references
from tracker.models import Entity, EntityKind
from tracker.selectors import data_version, entity_search, tags_and_relationships
from tracker.sync import DataDamaged, data_problems

PROTOCOLS = ["rest", "a2a", "websocket", "git"]
OPERATIONS = [
    "discover",
    "query_issues",
    "query_specs",
    "create_issues",
    "create_specs",
    "update_issues",
    "delegate",
    "subscribe",
]


def refusal(exc: policy.PermissionDenied | policy.RateLimited | DataDamaged, caller: Caller) -> tuple[dict, int]:
    """The error body and HTTP status a refused message is answered with, whichever door it came through (the
    REST endpoints, A2A): forbidden 403 (with the caller's trust level), rate_limited 429 and data_damaged 503
    (both with retry_after, seconds)."""
    if isinstance(exc, policy.RateLimited):
        return {"error": "rate_limited", "detail": str(exc), "retry_after": exc.retry_after}, 429
    if isinstance(exc, DataDamaged):
        return exc.as_json(), 503
    return {"error": "forbidden", "detail": str(exc), "trust_level": caller.trust_level}, 403


class QueryError(ValueError):
    """A query that is well-formed but cannot be answered as asked (HTTP 400, naming the field)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def as_json(self) -> dict:
        return {"error": "invalid query", "errors": [{"path": self.path, "message": self.message}]}


def _audit(caller: Caller, operation: str, *, status: str, started: float, correlation_id: str, **fields: Any) -> None:
    # Reads: written off the request path in a web process (audit.services.batch_reads).
    audit_record_later(
        operation=operation,
        direction="incoming",
        local_repo=identity.local_url(),
        remote_repo=caller.identity,
        status=status,
        correlation_id=correlation_id,
        duration_ms=(time.perf_counter() - started) * 1000,
        **fields,
    )


def audit_invalid(*, caller: Caller, operation: str, error: Exception, correlation_id: str = "") -> None:
    """Audit a message refused before any service saw it (answered 400: not a valid message) as a `failed` call
    with the reason, whichever door it came through, so every call is in the log (the seed's audit trail).
    `operation`: the endpoint's (query, mutate, delegate, subscribe, ...). Written like a read's row (batched)."""
    _audit(
        caller, operation, status="failed", started=time.perf_counter(), correlation_id=correlation_id, error=str(error)
    )


def answer_discover(*, caller: Caller, rest_base: str, correlation_id: str = "") -> dict:
    """The discover_response: what this node can do and how much it trusts the caller. Everything in it but the
    timestamp follows from the config, the caller's identity and trust level and `rest_base`, so it is built once
    per process for each of those (a config reloaded is another object: its answers are built again)."""
    started = time.perf_counter()
    cfg = node.config()
    key = (caller.identity, caller.trust_level, rest_base, identity.local_url())
    with _ANSWERS_LOCK:
        built = _DISCOVERED.get(key)
    if built is None or built[0] is not cfg:
        built = (cfg, _discover_response(caller=caller, cfg=cfg, rest_base=rest_base))
        with _ANSWERS_LOCK:
            if len(_DISCOVERED) >= _ANSWERS_MAX:
                _DISCOVERED.clear()
            _DISCOVERED[key] = built
    _audit(caller, "discover", status="success", started=started, correlation_id=correlation_id)
    return {**built[1], "timestamp": _wire_time(timezone.now())}


_DISCOVERED: dict[tuple, tuple[object, dict]] = {}  # (caller, trust, rest_base, us) -> (the config, the answer)


def _discover_response(*, caller: Caller, cfg, rest_base: str) -> dict:
    endpoints = cfg.endpoints if cfg else None
    rest = str(endpoints.rest) if endpoints and endpoints.rest else rest_base
    response = messages.DiscoverResponse(
        type="discover_response",
        from_=identity.local_url() or None,
        to=caller.identity or None,
        timestamp=timezone.now(),
        capabilities=messages.Capabilities(
            protocols=PROTOCOLS,
            operations=operations_for(caller, cfg),
            schemas_version=messages.SCHEMAS_VERSION,
            trust_level=caller.trust_level,
            endpoints=messages.CapabilityEndpoints(
                rest=rest,
                ws=str(endpoints.websocket) if endpoints and endpoints.websocket else _ws_url(rest),
                git=endpoints.git if endpoints and endpoints.git else None,
            ),
        ),
        public_key=cfg.local_identity.public_key if cfg and cfg.local_identity else None,
    )
    return messages.dump(response)


def operations_for(caller: Caller, config) -> list[str]:
    """The OPERATIONS this caller may use here now (what its trust level and permissions allow), in that order:
    a discover answer names only what is true for the one asking."""
    from requests_app.policy import check_may_mutate
    from subscriptions.policy import subscribe_fields

    allowed = {"discover"}
    try:
        allowed |= {f"query_{entity}s" for entity in policy.query_grant(caller, config).entities}
    except policy.PermissionDenied:
        pass
    for operation in ("create_issue", "create_spec", "update_issue"):
        try:
            check_may_mutate(caller, operation, config)
            allowed.add(f"{operation}s")
            if operation.startswith("create_"):
                allowed.add("delegate")  # a delegation creates a spec or an issue here
        except policy.PermissionDenied:
            pass
    try:
        subscribe_fields(caller, config)
        allowed.add("subscribe")
    except policy.PermissionDenied:
        pass
    return [operation for operation in OPERATIONS if operation in allowed]


def _ws_url(rest_base: str) -> str | None:
    """Where our WebSocket listens when the config does not say: beside the REST API (/api/v1/ws)."""
    if rest_base.startswith(("http://", "https://")):
        return "ws" + rest_base[len("http") :].rstrip("/") + "/ws"
    return None


def answer_query(
    *, caller: Caller, message: messages.QueryMessage, correlation_id: str = "", client_address: str = ""
) -> dict:
    """The query_response for `message`, within what the caller may see (PermissionDenied otherwise) and its
    queries per minute (RateLimited; anonymous callers are counted by `client_address`), as a JSON-ready dict."""
    head, page = _query_answer(
        caller=caller, message=message, correlation_id=correlation_id, client_address=client_address
    )
    return {**head, "results": orjson.loads(page.results_json)}


def answer_query_json(
    *, caller: Caller, message: messages.QueryMessage, correlation_id: str = "", client_address: str = ""
) -> bytes:
    """`answer_query`, encoded (UTF-8 JSON, the same document): what the REST edge sends. The results come
    from the answer cache as bytes, so an answer served from it is never decoded and encoded again."""
    head, page = _query_answer(
        caller=caller, message=message, correlation_id=correlation_id, client_address=client_address
    )
    return orjson.dumps({**head, "results": orjson.Fragment(page.results_json)})


@dataclass(frozen=True)
class _Page:
    """One encoded page of results, as the answer cache keeps it."""

    results_json: bytes
    returned: int
    total: int
    next_cursor: str | None
    built_at: datetime


# The encoded pages of recent queries, per process, keyed by (caller's grant, this node's identity, normalised
# query, data version): a change to the entities of that kind, by any process, moves the version
# (tracker.selectors.data_version, read from the database on every query), so a page is never served after its
# data changed. Includes that read other tables (blocked_by, remote_relationships) are not cached.
_ANSWERS: OrderedDict[tuple, _Page] = OrderedDict()
_ANSWERS_MAX = 256
_ANSWERS_LOCK = threading.Lock()
_UNCACHED_INCLUDES = frozenset({"blocked_by", "remote_relationships"})


def _query_answer(
    *, caller: Caller, message: messages.QueryMessage, correlation_id: str, client_address: str
) -> tuple[dict, _Page]:
    """The response without its results, and the page of results (from the cache when the data has not moved)."""
    started = time.perf_counter()
    quotas.check_query_rate(caller, node.config(), client_address=client_address)
    query = message.query
    filters = query.filters
    used = {name for name in policy.FILTERS if getattr(filters, name, None) is not None}
    summary = {"entity": query.entity, "filters": sorted(used), "limit": query.limit}
    include = set(query.include)
    try:
        grant = policy.query_grant(caller, node.config())
        policy.check_query(grant, caller, entity=query.entity, filters=used, include=include)
        if query.entity == EntityKind.SPEC and filters.status is not None:
            raise QueryError("query.filters.status", "specs have no status")
        key = None
        if not include & _UNCACHED_INCLUDES:
            # The version first, then the data: a page is at least as new as the version it is stored under.
            shape = orjson.dumps(messages.dump(query), option=orjson.OPT_SORT_KEYS)
            key = (grant, identity.local_url(), shape, data_version(query.entity))
            with _ANSWERS_LOCK:
                page = _ANSWERS.get(key)
                if page is not None:
                    _ANSWERS.move_to_end(key)
        if key is None or page is None:
            page = _page(query, grant, include)
            if key is not None:
                with _ANSWERS_LOCK:
                    _ANSWERS[key] = page
                    while len(_ANSWERS) > _ANSWERS_MAX:
                        _ANSWERS.popitem(last=False)
    except (policy.PermissionDenied, QueryError, messages.MessageError) as exc:
        _audit(
            caller,
            "query",
            status="failed",
            started=started,
            correlation_id=correlation_id,
            payload=summary,
            error=str(exc),
        )
        raise
    metadata: dict[str, Any] = {
        "total": page.total,
        "cached_at": _wire_time(page.built_at),
        "limit": query.limit,
    }
    if page.next_cursor:
        metadata["next_cursor"] = page.next_cursor
    if data_problems():
        metadata["stale"] = True
    head = {"type": "query_response"}
    if identity.local_url():
        head["from"] = identity.local_url()
    if caller.identity:
        head["to"] = caller.identity
    head["timestamp"] = _wire_time(timezone.now())
    head["metadata"] = metadata
    _audit(
        caller,
        "query",
        status="success",
        started=started,
        correlation_id=correlation_id,
        payload=summary,
        result={"total": page.total, "returned": page.returned},
    )
    return head, page


def _wire_time(moment: datetime) -> str:
    """A timestamp as messages.dump writes one: UTC, ISO 8601, with a Z."""
    return messages.dump_timestamp(moment)


def _page(query: messages.QueryBody, grant: policy.QueryGrant, include: set[str]) -> _Page:
    filters = query.filters
    fingerprint = _fingerprint(query)
    built_at = timezone.now()
    page, total = entity_search(
        kind=query.entity,
        status=_as_list(filters.status),
        tags=filters.labels,
        priority=_as_list(filters.priority),
        ids=filters.ids,
        spec_refs=_local_ids(filters.spec_refs),
        updated_since=filters.updated_since,
        archived=_archived(filters),
        after=_decode_cursor(query.cursor, fingerprint),
        limit=query.limit + 1,
        search=filters.search,
        search_titles_only="content" not in grant.fields,  # what it may not read, it may not search
    )
    more = len(page) > query.limit
    page = page[: query.limit]
    repo = identity.repo_path(identity.local_url())
    tags, relationships = tags_and_relationships([e.uuid for e in page])
    remote = remote_relationships_of(page) if "remote_relationships" in include else {}
    results = [
        grant.project(
            federated_result(
                e,
                include=include,
                repo=repo,
                tags=tags[e.uuid],
                relationships=relationships[e.uuid],
                remote_relationships=remote.get(e.uuid, []),
            )
        )
        for e in page
    ]
    if filters.search is not None:  # ranked, one page: no cursor; the snippet says why it matched
        more = False
        for result, entity in zip(results, page, strict=True):
            result["snippet"] = getattr(entity, "search_snippet", "")
    return _Page(
        results_json=orjson.dumps(results),
        returned=len(results),
        total=total,
        next_cursor=_encode_cursor(page[-1], fingerprint) if more and page else None,
        built_at=built_at,
    )


def _local_ids(refs: list[str] | None) -> list[str] | None:
    """Spec refs as ids: `org/this-repo#s-5fxv` (the form the delegator's side shows) is `s-5fxv` here."""
    if not refs:
        return refs
    here = identity.repo_path(identity.local_url()) + "#"
    return [ref.removeprefix(here) for ref in refs]


def _archived(filters: messages.QueryFilters) -> bool | None:
    """Archived entities are left out unless the query asks for them, or names the entities it wants (a remote
    refreshing its references to one that was archived since)."""
    if filters.archived == "any":
        return None
    if filters.archived is None:
        return None if filters.ids is not None else False
    return filters.archived


def remote_relationships_of(entities: list[Entity]) -> dict[str, list[dict]]:
    """The references to other repositories the entities hold (`remote_relationships` and `[[org/repo#id]]` in
    their content), by uuid, as `include: ["remote_relationships"]` shows them: {type, remote_repo (as written),
    remote_id, remote_entity_type, canonical_ref}. What lets another node follow a dependency graph on
    (remotes.graph)."""
    out: dict[str, list[dict]] = {}
    declared = declared_references(entities=entities)
    for (uuid, remote_repo, remote_id, rel_type), extra in sorted(declared.items()):
        out.setdefault(uuid, []).append(
            {
                "type": rel_type,
                "remote_repo": remote_repo,
                "remote_id": remote_id,
                "remote_entity_type": extra["remote_entity_type"],
                "canonical_ref": f"{identity.repo_path(remote_repo)}#{remote_id}",
            }
        )
    return out


def federated_result(
    entity: Entity,
    *,
    include: set[str],
    repo: str,
    tags: list[str],
    relationships: list[dict],
    remote_relationships: list[dict] | None = None,
) -> dict:
    """One entity as the federation shows it: its record's fields, `canonical_ref` (in `repo`, this node's
    "org/name"), and what `include` asks for. The caller's grant then removes what it may not see."""
    record = orjson.loads(entity.raw)
    out: dict[str, Any] = {
        "id": entity.sudocode_id,
        "uuid": entity.uuid,
        "kind": entity.kind,
        "title": entity.title,
        "canonical_ref": f"{repo}#{entity.sudocode_id}" if repo else entity.sudocode_id,
    }
    for key in (
        "status",
        "priority",
        "content",
        "assignee",
        "archived_at",
        "created_at",
        "updated_at",
        "closed_at",
        "parent_id",
        "parent_uuid",
        "file_path",
        "feedback",
        "external_links",
    ):
        if key in record:
            out[key] = record[key]
    out["archived"] = bool(record.get("archived"))
    out["tags"] = tags
    if "relationships" in include:
        out["relationships"] = relationships
    if "remote_relationships" in include:
        out["remote_relationships"] = remote_relationships or []
    if "spec_refs" in include:
        out["spec_refs"] = sorted({r["to"] for r in relationships if r["to_type"] == EntityKind.SPEC})
    if "blocked_by" in include:
        out["blocked_by"] = blockers_of(entity)
    return out


def blockers_of(entity: Entity) -> list[dict[str, Any]]:
    """What blocks `entity`, as another node is told (the `blocked_by` include of a query, issue 13): its local
    blockers and its remote ones, each {"ref" (org/repo#id), "status", "title", "open": bool, "remote": bool,
    "estimated_completion" (when a maintainer promised one approving the request that created it) or None}."""
    from remotes.blocking import blocker_is_open, remote_blockers
    from remotes.selectors import reference_summary
    from tracker.models import IssueStatus
    from tracker.selectors import entity_detail

    repo = identity.repo_path(identity.local_url()) if identity.local_url() else ""
    out = []
    for edge in entity_detail(entity)["blocked_by"]:
        out.append(
            {
                "ref": f"{repo}#{edge['id']}" if repo else edge["id"],
                "status": edge.get("status"),
                "title": edge.get("title"),
                "open": edge.get("status") not in (IssueStatus.CLOSED, None),
                "remote": False,
                "estimated_completion": _promised(edge["id"], outgoing=False),
            }
        )
    for ref in remote_blockers(local_uuids=[entity.uuid]).get(entity.uuid, []):
        summary = reference_summary(ref)
        out.append(
            {
                "ref": summary["ref"],
                "status": summary["status"],
                "title": summary["title"],
                "open": blocker_is_open(ref),
                "remote": True,
                "estimated_completion": _promised(summary["ref"], outgoing=True),
            }
        )
    return out


def _promised(ref: str, *, outgoing: bool) -> str | None:
    """The estimated completion a maintainer gave when approving the request that created it: here (`ref` a
    local id, an incoming request) or at a remote we asked (`ref` its canonical ref, an outgoing request)."""
    from requests_app.models import CrossRepoRequest, Direction

    if outgoing:
        rows = CrossRepoRequest.objects.filter(direction=Direction.OUTGOING, result__created__canonical_ref=ref)
    else:
        rows = CrossRepoRequest.objects.filter(direction=Direction.INCOMING, result__created__id=ref)
    found = rows.values_list("result", flat=True)
    return next((r.get("estimated_completion") for r in found if r and r.get("estimated_completion")), None)


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _fingerprint(query: messages.QueryBody) -> str:
    shape = {"entity": query.entity, "filters": messages.dump(query.filters), "include": sorted(query.include)}
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _encode_cursor(last: Entity, fingerprint: str) -> str:
    raw = json.dumps([last.created_at, last.uuid, fingerprint], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None, fingerprint: str) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        created_at, uuid, made_for = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(created_at, str) and isinstance(uuid, str)):
            raise TypeError
    except (ValueError, TypeError, binascii.Error):
        raise QueryError("query.cursor", "not a cursor this node gave out") from None
    if made_for != fingerprint:
        raise QueryError("query.cursor", "belongs to a query with other filters: start again without a cursor")
    return created_at, uuid
