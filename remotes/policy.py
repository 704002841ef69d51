"""What a caller may see: the one place where trust levels and per-remote permissions decide, for every
transport (REST, the A2A endpoint, later WebSocket and MCP).

Trust levels (seed: Trust and Security Model) set the default; `permissions.query` in federation.config.json
narrows or overrides it per remote; `policies.incoming_requests.query.allowed` can switch queries off for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from remotes.models import RemoteRepo, TrustLevel

# Fields a result may carry, by how much the caller is trusted. "Public" is what an anonymous caller sees.
PUBLIC_FIELDS = frozenset(
    {
        "id",
        "uuid",
        "kind",
        "title",
        "status",
        "priority",
        "tags",
        "archived",
        "created_at",
        "updated_at",
        "closed_at",
        "canonical_ref",
    }
)
INTERNAL_FIELDS = PUBLIC_FIELDS | {
    "content",
    "assignee",
    "parent_id",
    "parent_uuid",
    "file_path",
    "relationships",
    "remote_relationships",
    "spec_refs",
    "blocked_by",
}
ALL_FIELDS = INTERNAL_FIELDS | {"archived_at", "feedback", "external_links"}
FIELDS_BY_TRUST = {
    TrustLevel.UNTRUSTED: PUBLIC_FIELDS,
    TrustLevel.VERIFIED: INTERNAL_FIELDS,
    TrustLevel.TRUSTED: ALL_FIELDS,
}
ENTITIES = ("issue", "spec")
FILTERS = ("status", "labels", "priority", "ids", "spec_refs", "updated_since", "search")


class PermissionDenied(Exception):
    """The caller may not do this; the message says why (it is shown to the caller). HTTP 403."""


class RateLimited(Exception):
    """The caller used up a quota (rate_limits, permissions.mutate); HTTP 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Caller:
    """Who is calling: a known remote (by the API key it presented) or the anonymous, untrusted caller."""

    remote: RemoteRepo | None = None

    @property
    def identity(self) -> str:
        return self.remote.url if self.remote else ""

    @property
    def trust_level(self) -> str:
        return self.remote.trust_level if self.remote else TrustLevel.UNTRUSTED

    def __str__(self) -> str:
        return self.identity or "an anonymous caller"


ANONYMOUS = Caller()


@dataclass(frozen=True)
class QueryGrant:
    entities: frozenset[str]
    filters: frozenset[str]
    fields: frozenset[str]
    excluded: frozenset[str] = field(default_factory=frozenset)
    node_filters: frozenset[str] | None = None  # a2a_policies.query.allowed_filters; None: no node-wide limit

    def project(self, result: dict) -> dict:
        return {k: v for k, v in result.items() if k in self.fields}


def query_grant(caller: Caller, config) -> QueryGrant:
    """The whole of what `caller` may query, or PermissionDenied."""
    if config is not None and not config.policies.incoming_requests.query.allowed:
        raise PermissionDenied("this node does not answer queries (policies.incoming_requests.query.allowed)")
    fields = set(FIELDS_BY_TRUST[TrustLevel(caller.trust_level)])
    entities, filters, excluded = set(ENTITIES), set(FILTERS), set()
    node_filters = None
    remote_config = config.remote(caller.identity) if (config is not None and caller.remote) else None
    if remote_config is not None:
        permission = remote_config.permissions.query
        if permission.allowed is False:
            raise PermissionDenied(f"{caller} may not query this node (permissions.query.allowed is false)")
        entities &= set(permission.entities)
        if permission.filters:
            filters &= set(permission.filters)
        excluded = set(permission.exclude_fields)
    if config is not None and config.a2a_policies.query.allowed_filters:
        node_filters = frozenset(config.a2a_policies.query.allowed_filters)
    fields -= excluded
    fields |= {"id", "uuid", "canonical_ref"}  # a result without its identity is no result
    return QueryGrant(frozenset(entities), frozenset(filters), frozenset(fields), frozenset(excluded), node_filters)


def check_query(grant: QueryGrant, caller: Caller, *, entity: str, filters: set[str], include: set[str]) -> None:
    if entity not in grant.entities:
        raise PermissionDenied(f"{caller} may not query {entity}s (allowed: {', '.join(sorted(grant.entities))})")
    if grant.node_filters is not None:
        refused = sorted(filters - grant.node_filters)
        if refused:  # the node's own rule for everyone: the query is wrong, not the caller (400)
            # Imported here: its pydantic models cost ~100 ms to build, which a CLI command must not pay (issue 16).
            from protocol.messages import MessageError

            raise MessageError.at(
                f"query.filters.{refused[0]}",
                f"this node does not filter on {refused[0]} (a2a_policies.query.allowed_filters: "
                f"{', '.join(sorted(grant.node_filters)) or 'none'})",
            )
    refused = sorted(filters - grant.filters)
    if refused:
        raise PermissionDenied(f"{caller} may not filter on {', '.join(refused)}")
    hidden = sorted(name for name in include if name not in grant.fields)
    if hidden:
        raise PermissionDenied(f"{caller} may not include {', '.join(hidden)}")
