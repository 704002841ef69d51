"""Reads of the repository's issues and specs, and the one shape they are shown in (CLI, API, pages)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.db.models import Q, QuerySet

from tracker.models import ContentRef, Entity, EntityKind, IssueStatus, JsonlFile, Relationship, Tag

# A relationship "A blocks B" or "B depends-on A" makes A a blocker of B.
BLOCKING_OUT = ("depends-on",)
BLOCKING_IN = ("blocks",)


def entity_get(*, kind: str | None, ref: str) -> Entity:
    """An issue or spec by its id (`i-x7k9`, `ISSUE-001`, case-insensitive when unambiguous) or uuid."""
    qs = Entity.objects.all() if kind is None else Entity.objects.filter(kind=kind)
    what = "issue or spec" if kind is None else kind
    if "\x00" in ref:  # no id holds one, and PostgreSQL refuses it in a query
        raise Entity.DoesNotExist(f"no {what} {ref!r} in this repository")
    for lookup in (Q(sudocode_id=ref), Q(uuid=ref), Q(sudocode_id__iexact=ref)):
        found = list(qs.filter(lookup)[:2])
        if len(found) == 1:
            return found[0]
    raise Entity.DoesNotExist(f"no {what} {ref!r} in this repository")


def entity_list(
    *,
    kind: str,
    status: Iterable[str] | None = None,
    priority: Iterable[int] | None = None,
    tags: Iterable[str] | None = None,
    archived: bool | None = False,
    search: str | None = None,
) -> QuerySet[Entity]:
    qs = Entity.objects.filter(kind=kind)
    if status:
        qs = qs.filter(status__in=list(status))
    if priority is not None and list(priority):
        qs = qs.filter(priority__in=list(priority))
    for tag in tags or ():
        # A subquery, not a join: an entity whose file lists a tag twice still comes back once.
        qs = qs.filter(uuid__in=Tag.objects.filter(name=tag).values("entity"))
    if archived is not None:
        qs = qs.filter(archived=archived)
    search = (search or "").replace("\x00", "")
    if search:
        qs = qs.filter(Q(title__icontains=search) | Q(content__icontains=search))
    return qs.prefetch_related("tags").order_by("created_at", "sudocode_id")


_SUMMARY_COLUMNS = (
    "sudocode_id", "uuid", "kind", "title", "priority", "archived", "created_at", "updated_at", "status", "file_path"
)  # fmt: skip


def entity_summary(entity: Entity) -> dict:
    return _summary({name: getattr(entity, name) for name in _SUMMARY_COLUMNS}, [t.name for t in entity.tags.all()])


def entity_summaries(entities: QuerySet[Entity]) -> list[dict]:
    """`entity_summary` of each of `entities` (an `entity_list`, sliced or not), in its order, from two queries
    and no model instances: for hundreds of entities ~3x cheaper than instances with their tags prefetched
    (`issue list` on 676 issues: ~10 ms instead of ~30; issue 16)."""
    rows = list(entities.prefetch_related(None).values(*_SUMMARY_COLUMNS))
    tags: dict[str, list[str]] = {}
    by_entity = Tag.objects.filter(entity_id__in=[row["uuid"] for row in rows]).order_by("position")
    for entity_id, name in by_entity.values_list("entity_id", "name"):
        tags.setdefault(entity_id, []).append(name)
    return [_summary(row, tags.get(row["uuid"], [])) for row in rows]


def _summary(columns: dict, tags: list[str]) -> dict:
    out = {
        "id": columns["sudocode_id"],
        "uuid": columns["uuid"],
        "kind": columns["kind"],
        "title": columns["title"],
        "priority": columns["priority"],
        "tags": tags,
        "archived": columns["archived"],
        "created_at": columns["created_at"],
        "updated_at": columns["updated_at"],
    }
    if columns["kind"] == EntityKind.ISSUE:
        out["status"] = columns["status"]
    else:
        out["file_path"] = columns["file_path"]
    return out


def entity_detail(entity: Entity) -> dict:
    """Everything about one entity: its record as the JSONL holds it, plus what is derived from the rest
    of the repository (incoming relationships, blockers, references found in the content)."""
    record = json.loads(entity.raw)
    outgoing = list(entity.relationships.all())
    incoming = list(Relationship.objects.filter(to_id=entity.sudocode_id, to_type=entity.kind).select_related("source"))
    targets = _local_entities(
        {r.to_id for r in outgoing} | {r.target_id for r in entity.content_refs.all() if not r.repo}
    )
    return {
        **entity_summary(entity),
        "record": record,
        "content": entity.content,
        "relationships": [_edge(r.type, r.to_id, r.to_type, targets.get(r.to_id)) for r in outgoing],
        "incoming_relationships": [_edge(r.type, r.source.sudocode_id, r.source.kind, r.source) for r in incoming],
        "blocked_by": [
            _edge(r.type, r.to_id, r.to_type, targets.get(r.to_id)) for r in outgoing if r.type in BLOCKING_OUT
        ]
        + [_edge(r.type, r.source.sudocode_id, r.source.kind, r.source) for r in incoming if r.type in BLOCKING_IN],
        "references": [_content_ref(r, targets) for r in entity.content_refs.all()],
    }


def open_blockers(detail: dict) -> list[dict]:
    return [b for b in detail["blocked_by"] if b.get("status") not in (IssueStatus.CLOSED, None)]


def _local_entities(ids: set[str]) -> dict[str, Entity]:
    return {e.sudocode_id: e for e in Entity.objects.filter(sudocode_id__in=ids)}


def _edge(rel_type: str, other_id: str, other_kind: str, other: Entity | None) -> dict:
    return {
        "type": rel_type,
        "id": other_id,
        "kind": other_kind,
        "title": other.title if other else None,
        "status": (other.status or None) if other else None,
        "exists": other is not None,
    }


def _content_ref(ref: ContentRef, targets: dict[str, Entity]) -> dict:
    out = {
        "ref": ref.canonical_ref,
        "repo": ref.repo or None,
        "id": ref.target_id,
        "type": ref.rel_type or None,
        "display": ref.display or None,
    }
    if not ref.repo:
        target = targets.get(ref.target_id)
        out.update(
            title=target.title if target else None,
            status=(target.status or None) if target else None,
            exists=target is not None,
        )
    return out


def entity_search(
    *,
    kind: str,
    status: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    priority: Iterable[int] | None = None,
    ids: Iterable[str] | None = None,
    spec_refs: Iterable[str] | None = None,
    updated_since=None,
    archived: bool | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 50,
    search: str | None = None,
    search_titles_only: bool = False,
) -> tuple[list[Entity], int]:
    """A page of entities for a federated query, in a stable order (raw created_at, then uuid: neither ever
    changes), starting after the (created_at, uuid) of the previous page's last item. Returns the page and
    the total matching count. `archived`: None for both, else only (non-)archived ones. `search`: full-text
    (tracker.search): only the matches, best first, one page (`after` is not used); each entity then carries
    its `search_snippet`; `search_titles_only` for a caller who may not see content."""
    qs = Entity.objects.filter(kind=kind)
    if archived is not None:
        qs = qs.filter(archived=archived)
    if status is not None:
        qs = qs.filter(status__in=list(status))
    for tag in tags or ():
        qs = qs.filter(uuid__in=Tag.objects.filter(name=tag).values("entity"))
    if priority is not None:
        qs = qs.filter(priority__in=list(priority))
    if ids is not None:
        ids = list(ids)
        qs = qs.filter(Q(sudocode_id__in=ids) | Q(uuid__in=ids))
    if spec_refs is not None:
        sources = Relationship.objects.filter(to_type=EntityKind.SPEC, to_id__in=list(spec_refs)).values("source")
        qs = qs.filter(uuid__in=sources)
    if updated_since is not None:
        qs = qs.filter(updated__gte=updated_since)
    if search is not None:
        from tracker.search import search_ranked

        ranked = search_ranked(search, kind=kind, titles_only=search_titles_only)
        matching = {e.uuid: e for e in qs.filter(uuid__in=[uuid for uuid, _ in ranked])}
        page = []
        for uuid, snippet in ranked:
            if uuid in matching:
                matching[uuid].search_snippet = snippet
                page.append(matching[uuid])
        return page[:limit], len(page)
    matching = qs
    if after is not None:
        qs = qs.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], uuid__gt=after[1]))
    page = list(qs.order_by("created_at", "uuid")[:limit])
    # A first page that is not full holds every match: its length is the total, no count query needed.
    total = len(page) if after is None and len(page) < limit else matching.count()
    return page, total


def data_version(kind: str) -> str:
    """A token that changes whenever the entities of `kind` (and their tags, relationships and references)
    may have changed, in any process: the sha256 and import time of the JSONL file as `tracker.sync` last
    wrote or imported it (one indexed read of the `JsonlFile` row, written in the same transaction as the
    change). Two reads with equal tokens saw the same data, so an answer built from it may be reused. Read in one
    plain SQL statement: it runs on every federated query, and the ORM's compiling cost more than the read."""
    from django.db import connection

    quote = connection.ops.quote_name
    sql = (
        f"SELECT {quote('sha256')}, {quote('imported_at')} FROM {quote(JsonlFile._meta.db_table)} "
        f"WHERE {quote('kind')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [kind])
        row = cursor.fetchone()
    return f"{row[0]}@{row[1] or ''}" if row else ""


def tags_and_relationships(uuids: list[str]) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """The tags and the relationship entries of many entities, in their file order, in two plain queries
    (a prefetch building model instances cost two thirds of a federated query)."""
    tags: dict[str, list[str]] = {u: [] for u in uuids}
    for uuid, name in (
        Tag.objects.filter(entity__in=uuids).order_by("entity", "position").values_list("entity_id", "name")
    ):
        tags[uuid].append(name)
    rels: dict[str, list[dict]] = {u: [] for u in uuids}
    fields = ("source_id", "from_id", "from_type", "to_id", "to_type", "type")
    for source, *values in (
        Relationship.objects.filter(source__in=uuids).order_by("source", "position").values_list(*fields)
    ):
        rels[source].append(dict(zip(("from", "from_type", "to", "to_type", "type"), values, strict=True)))
    return tags, rels
