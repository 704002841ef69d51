"""The cross-repo dependency graph: this repository's issues and specs, their relationships, the entities of
other repositories they reference, and (with `cross_repo`) what those reference in turn, each node with its
status and how fresh that is. Read-only: `deps graph` in the CLI, `/api/v1/graph` and the `/graph/` page show it.

Where the graph comes from:
- local nodes and edges: the tracker's entities and `relationships`;
- edges to other repositories: the references the records declare (`remote_relationships`, `[[org/repo#id]]`,
  read by `remotes.services.declared_references`, so they are current even before a rebuild), and what we know
  of their targets: the cached data of cross_repo_references (`remotes.selectors.reference_summary`);
- with `cross_repo`: remote nodes are expanded by asking their remote, one batched query per remote, entity kind
  and level of the walk (`remotes.sync.remote_query`, with `include: ["relationships", "remote_relationships"]`),
  whose answers are kept in memory (`answers_cache`) for the config's cache TTL. A node of a repository that is not our
  remote, or whose remote does not show us relationships (its trust domain), stays a leaf with a note.

Cycles of blocking edges (blocks, blocked-by, depends-on) are found with Tarjan's strongly connected components,
also when they run through other repositories; the walk visits each node once, so a cycle is shown, never looped.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from django.utils import timezone

from federation_site import identity, node
from remotes.client import RemoteError
from remotes.models import CrossRepoReference, RemoteRepo
from remotes.selectors import entity_page_url, reference_summary
from remotes.services import BATCH, declared_references, kind_of_id
from tracker.models import Entity, EntityKind, Relationship

# The seed's legend (✓ closed, → in progress, ✗ blocked, ⧗ open), and ours for the rest.
SYMBOLS = {"closed": "✓", "in_progress": "→", "blocked": "✗", "open": "⧗", "needs_review": "◇"}
UNKNOWN_SYMBOL = "?"
SPEC_SYMBOL = "§"
LEGEND = "Legend: ✓=closed, →=in-progress, ✗=blocked, ⧗=open, ◇=needs-review, §=spec, ?=unknown"
FORMATS = ("ascii", "json", "dot", "mermaid")
# Edges that make one entity wait for another: a cycle of them is a deadlock. "A blocks B" makes A the blocker;
# "B depends-on A" and "B blocked-by A" too.
BLOCKER_IS_FROM = ("blocks",)
BLOCKER_IS_TO = ("depends-on", "blocked-by")
DEFAULT_DEPTH = 10
MAX_DEPTH = 50
_CACHE_PREFIX = "sudocode-graph:"
# The remotes' answers, per process and for the config's cache TTL: Django's in-memory cache, on its own (the
# default cache keeps 300 entries; a graph of a few remotes needs thousands).
answers_cache = LocMemCache("sudocode-graph", {"OPTIONS": {"MAX_ENTRIES": 50_000, "CULL_FREQUENCY": 4}})


class GraphError(ValueError):
    """A graph cannot be built as asked; `field` names the input at fault ("root", "depth", "format")."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class GraphNode:
    ref: str  # "org/repo#id": the node's identity in the graph
    id: str
    repo: str  # "org/repo" ("" for a local node of a repository without federation identity)
    kind: str
    title: str | None
    status: str | None
    symbol: str
    local: bool
    remote: str | None = None  # the remote's url when the repository is one of our remotes
    trust_level: str | None = None  # "local" for ours, the remote's trust level, None when not a remote
    freshness: str = "local"  # local | fresh | stale | missing
    last_fetched_at: str | None = None
    expanded: bool = False  # its own edges are known (always for local nodes)
    note: str | None = None
    depth: int = 0
    in_cycle: bool = False
    page: str | None = None  # the remote node's page for it; local pages are the edges' business
    archived: bool = False


@dataclass
class GraphEdge:
    source: str  # ref
    target: str
    type: str
    blocking: bool
    cross_repo: bool
    in_cycle: bool = False


@dataclass
class _Walk:
    own: str
    nodes: dict[str, GraphNode] = field(default_factory=dict)  # by ref.lower()
    edges: dict[tuple[str, str, str], GraphEdge] = field(default_factory=dict)
    out: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    into: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    remotes: dict[str, dict] = field(default_factory=dict)  # url -> {url, repo, queries, cached, error}
    waits: set[tuple[str, str]] = field(default_factory=set)  # (blocker, blocked) of the blocking edges kept

    def add_edge(self, source: GraphNode, target: GraphNode, rel_type: str) -> None:
        key = (source.ref.lower(), target.ref.lower(), rel_type)
        # "B blocks A" as B's record says it and "A blocked-by B" as A's says it are one wait: drawn once.
        wait = blocker_and_blocked(key[0], key[1], rel_type)
        if key in self.edges or wait in self.waits:
            return
        if wait is not None:
            self.waits.add(wait)
        self.edges[key] = GraphEdge(
            source=source.ref,
            target=target.ref,
            type=rel_type,
            blocking=rel_type in BLOCKER_IS_FROM or rel_type in BLOCKER_IS_TO,
            cross_repo=source.repo.lower() != target.repo.lower(),
        )
        self.out[key[0]].append(key[1])
        self.into[key[1]].append(key[0])


def symbol_for(kind: str, status: str | None) -> str:
    if kind == EntityKind.SPEC:
        return SPEC_SYMBOL
    return SYMBOLS.get(status or "", UNKNOWN_SYMBOL)


# --- the graph --------------------------------------------------------------------------------------------------


def dependency_graph(*, root: str | None = None, depth: int | None = None, cross_repo: bool = False) -> dict[str, Any]:
    """The dependency graph, as one JSON-ready dict:

    {repo, root, depth, cross_repo, generated_at, legend,
     nodes: [{ref, id, repo, kind, title, status, symbol, local, remote, trust_level, freshness, last_fetched_at,
              expanded, note, depth, in_cycle, page, archived}],
     edges: [{from, to, type, blocking, cross_repo, in_cycle}],
     cycles: [{path: [ref, ..., first ref again] (each waits for the next; from a local node when one is in it),
               nodes: [ref, ...], repos: [...], trust_levels: {repo: "local" | trust level | None}}],
     remotes: [{url, repo, queries, cached, error}]}

    Without `root`: every unarchived local entity (depth 0) and what they reach; with `root` (a local id or uuid,
    our "org/repo#id", or a remote entity's "org/repo#id" that one of ours references or whose remote we know):
    the nodes within `depth` edges of it, both directions. `depth` (edges from the start, default 10, at most 50)
    also bounds how far remote nodes are expanded. `cross_repo`: expand remote nodes by querying their remotes
    (one batched query per remote, entity kind and level; cached for the config's cache TTL); without it no
    call leaves the node and remote nodes show their cached data. GraphError("root" | "depth") on bad input."""
    if depth is None:
        depth = DEFAULT_DEPTH
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
        raise GraphError("depth", f"depth must be a whole number from 0 to {MAX_DEPTH}, not {depth!r}")
    walk = _Walk(own=identity.repo_path(identity.local_url()) if identity.local_url() else "")
    remotes = _remote_index()
    _load_local(walk, remotes)
    start = [_resolve_root(walk, remotes, root)] if root else [n for n in walk.nodes.values() if n.local]
    if root is None:
        start = [n for n in start if not n.archived]
    seen = _walk(walk, remotes, start, depth=depth, cross_repo=cross_repo, both_ways=root is not None)
    return _result(walk, seen, root=start[0].ref if root else None, depth=depth, cross_repo=cross_repo)


def _remote_index() -> dict[str, RemoteRepo]:
    index: dict[str, RemoteRepo] = {}
    for remote in RemoteRepo.objects.all():
        index[remote.url.lower()] = remote
        index[remote.repo_path.lower()] = remote
    return index


def _load_local(walk: _Walk, remotes: dict[str, RemoteRepo]) -> None:
    """Every local entity, its relationships, and the remote nodes its declared references point at."""
    by_uuid: dict[str, GraphNode] = {}
    by_id: dict[tuple[str, str], GraphNode] = {}
    fields = ("uuid", "sudocode_id", "kind", "title", "status", "archived")
    for uuid, sudocode_id, kind, title, status, archived in Entity.objects.values_list(*fields):
        n = _local_node(walk, sudocode_id, kind=kind, title=title, status=status or None, archived=archived)
        by_uuid[uuid] = n
        by_id[(kind, sudocode_id.lower())] = n
    for source, to_id, to_type, rel_type in Relationship.objects.values_list("source_id", "to_id", "to_type", "type"):
        target = by_id.get((to_type, to_id.lower()))
        if target is None:  # a relationship to an entity not (or no longer) here: shown, as missing
            target = _local_node(walk, to_id, kind=to_type, title=None, status=None, archived=False)
            target.note = "not in this repository"
            by_id[(to_type, to_id.lower())] = target
        walk.add_edge(by_uuid[source], target, rel_type)
    cached = _cached_references()
    ttl = _ttl()
    for (uuid, repo, remote_id, rel_type), extra in sorted(declared_references().items()):
        source = by_uuid.get(uuid)
        if source is None:
            continue
        target = _remote_node(walk, remotes, repo, remote_id, kind=extra["remote_entity_type"])
        if target.local:
            walk.add_edge(source, target, rel_type)
            continue
        ref = cached.get((target.remote or repo.lower(), remote_id.lower()))
        if ref is not None and target.remote is not None and target.last_fetched_at is None and target.title is None:
            _apply_summary(target, reference_summary(ref, ttl=ttl))
        walk.add_edge(source, target, rel_type)


def _cached_references() -> dict[tuple[str, str], CrossRepoReference]:
    """The freshest cross_repo_references row for each remote entity, by (remote url or repo, remote id)."""
    out: dict[tuple[str, str], CrossRepoReference] = {}
    for ref in CrossRepoReference.objects.select_related("remote_repo").order_by("last_fetched_at"):
        key = (ref.remote_repo_id or ref.repo.lower(), ref.remote_id.lower())
        if key not in out or ref.last_fetched_at is not None:
            out[key] = ref
    return out


def _apply_summary(target: GraphNode, summary: dict) -> None:
    target.title = summary["title"]
    target.status = summary["status"]
    target.symbol = symbol_for(target.kind, target.status)
    target.freshness = summary["freshness"]
    target.last_fetched_at = summary["last_fetched_at"]
    if summary["freshness"] != "fresh" and summary["error"]:
        target.note = summary["error"]


def _local_node(walk: _Walk, sudocode_id: str, *, kind: str, title, status, archived: bool) -> GraphNode:
    ref = f"{walk.own}#{sudocode_id}" if walk.own else sudocode_id
    key = ref.lower()
    if key not in walk.nodes:
        walk.nodes[key] = GraphNode(
            ref=ref,
            id=sudocode_id,
            repo=walk.own,
            kind=kind,
            title=title,
            status=status,
            symbol=symbol_for(kind, status),
            local=True,
            trust_level="local",
            expanded=True,
            archived=archived,
        )
    return walk.nodes[key]


def _remote_node(walk: _Walk, remotes: dict[str, RemoteRepo], repo: str, remote_id: str, *, kind: str) -> GraphNode:
    """The node of `repo`'s `remote_id` (`repo` as a reference writes it: "org/x" or "github.com/org/x"): one of
    ours when `repo` is this repository, else a remote node (created, with no data yet, on first sight)."""
    path = identity.repo_path(repo.strip().rstrip("/"))
    if walk.own and path.lower() == walk.own.lower():
        existing = walk.nodes.get(f"{walk.own}#{remote_id}".lower())
        if existing is None:
            existing = _local_node(walk, remote_id, kind=kind, title=None, status=None, archived=False)
            existing.note = "not in this repository"
        return existing
    remote = remotes.get(repo.strip().rstrip("/").lower()) or remotes.get(path.lower())
    if remote is not None:
        path = remote.repo_path
    ref = f"{path}#{remote_id}"
    key = ref.lower()
    if key not in walk.nodes:
        walk.nodes[key] = GraphNode(
            ref=ref,
            id=remote_id,
            repo=path,
            kind=kind or kind_of_id(remote_id),
            title=None,
            status=None,
            symbol=symbol_for(kind, None),
            local=False,
            remote=remote.url if remote else None,
            trust_level=remote.trust_level if remote else None,
            freshness="missing",
            note=None if remote else f"{path} is not a remote of this node: its state is not known here",
            page=entity_page_url(remote, kind, remote_id),
        )
    return walk.nodes[key]


def _resolve_root(walk: _Walk, remotes: dict[str, RemoteRepo], root: str) -> GraphNode:
    from tracker.selectors import entity_get

    root = root.strip()
    repo, sep, target_id = root.rpartition("#")
    if not sep or (walk.own and identity.repo_path(repo).lower() == walk.own.lower()):
        try:
            entity = entity_get(kind=None, ref=target_id if sep else root)
        except Entity.DoesNotExist as exc:
            raise GraphError("root", str(exc)) from None
        return walk.nodes[f"{walk.own}#{entity.sudocode_id}".lower() if walk.own else entity.sudocode_id.lower()]
    if not repo or not target_id:
        raise GraphError("root", f"{root!r} is not an id or an org/repo#id")
    path = identity.repo_path(repo)
    known = remotes.get(repo.lower()) or remotes.get(path.lower())
    key = f"{known.repo_path if known else path}#{target_id}".lower()
    if key in walk.nodes:
        return walk.nodes[key]
    if known is None:
        raise GraphError(
            "root",
            f"no entity {root!r}: not one of ours, none of ours references it, and {repo} is not a remote "
            "(`sudocode-fed remote list`)",
        )
    return _remote_node(walk, remotes, repo, target_id, kind=kind_of_id(target_id))


# --- the walk ---------------------------------------------------------------------------------------------------


def _walk(
    walk: _Walk,
    remotes: dict[str, RemoteRepo],
    start: list[GraphNode],
    *,
    depth: int,
    cross_repo: bool,
    both_ways: bool,
) -> dict[str, int]:
    """Breadth first from `start`, level by level (so each remote is asked once per level); returns the
    distance of each node reached, by ref.lower(). Each node is visited once: cycles end the walk there."""
    seen = {n.ref.lower(): 0 for n in start}
    frontier = list(seen)
    level = 0
    while frontier and level < depth:
        if cross_repo:
            _expand(walk, remotes, [walk.nodes[k] for k in frontier if not walk.nodes[k].expanded])
        following = []
        for key in frontier:
            neighbours = walk.out.get(key, []) + (walk.into.get(key, []) if both_ways else [])
            for other in neighbours:
                if other not in seen:
                    seen[other] = level + 1
                    following.append(other)
        frontier = following
        level += 1
    if cross_repo and frontier:
        # The last level is drawn but not walked from: expanding it still shows the edges between drawn nodes
        # (a cycle closing there), and the nodes it reaches beyond the depth are left out.
        _expand(walk, remotes, [walk.nodes[k] for k in frontier if not walk.nodes[k].expanded])
    for key, distance in seen.items():
        walk.nodes[key].depth = distance
    return seen


def _expand(walk: _Walk, remotes: dict[str, RemoteRepo], frontier: list[GraphNode]) -> None:
    """Learn the edges (and current state) of remote nodes: one query per remote and kind for the ids not in
    the cache. A node that cannot be expanded keeps what we knew of it, with a note saying why."""
    from remotes.sync import _resting, remote_query

    groups: dict[tuple[str, str], list[GraphNode]] = defaultdict(list)
    for n in frontier:
        if n.remote is not None:
            groups[(n.remote, n.kind)].append(n)
    ttl = _ttl()
    now = timezone.now()
    for (url, kind), group in sorted(groups.items()):
        remote = remotes[url.lower()]
        summary = walk.remotes.setdefault(
            url, {"url": url, "repo": remote.repo_path, "queries": 0, "cached": 0, "error": None}
        )
        keys = {n.id: f"{_CACHE_PREFIX}{url}:{kind}:{n.id}" for n in group}
        ids_of = {key: entity_id for entity_id, key in keys.items()}
        answers = {ids_of[key]: hit for key, hit in answers_cache.get_many(list(keys.values())).items()}
        summary["cached"] += len(answers)
        missing = sorted(i for i in keys if i not in answers)
        if missing and _resting(remote, now):
            summary["error"] = f"{url} did not answer a moment ago ({remote.last_error or 'unreachable'})"
            missing = []
        try:
            for i in range(0, len(missing), BATCH):
                ids = missing[i : i + BATCH]
                summary["queries"] += 1
                page = remote_query(
                    remote=remote,
                    query={
                        "entity": kind,
                        "filters": {"ids": ids, "archived": "any"},
                        "include": ["relationships", "remote_relationships"],
                        "limit": BATCH,
                    },
                )
                found = {str(item.get("id")).lower(): item for item in page.get("results") or []}
                fresh = {}
                for entity_id in ids:
                    item = found.get(entity_id.lower())
                    answer = {"item": item, "fetched_at": now.isoformat()}
                    answers[entity_id] = answer
                    fresh[keys[entity_id]] = answer
                answers_cache.set_many(fresh, timeout=ttl.total_seconds())
        except RemoteError as exc:
            summary["error"] = str(exc)
        for n in group:
            answer = answers.get(n.id)
            if answer is None:
                n.note = f"not expanded: {summary['error']}"
                continue
            _apply_answer(walk, remotes, n, answer, ttl=ttl, now=now)


def _apply_answer(
    walk: _Walk, remotes: dict[str, RemoteRepo], n: GraphNode, answer: dict, *, ttl: timedelta, now
) -> None:
    item = answer["item"]
    n.last_fetched_at = answer["fetched_at"]
    if item is None:
        n.freshness, n.note, n.expanded = "missing", f"{n.id} not found in {n.remote}", True
        return
    n.title = item.get("title")
    n.status = item.get("status")
    n.kind = item.get("kind") or n.kind
    n.symbol = symbol_for(n.kind, n.status)
    fetched = datetime.fromisoformat(answer["fetched_at"])
    n.freshness = "fresh" if now - fetched <= ttl else "stale"
    n.note = None
    if "relationships" not in item:
        n.note = f"{n.remote} does not show us its relationships (trust level {n.trust_level})"
        return
    n.expanded = True
    for rel in item.get("relationships") or []:
        target = _remote_node(walk, remotes, n.repo, str(rel.get("to")), kind=str(rel.get("to_type") or ""))
        walk.add_edge(n, target, str(rel.get("type")))
    for rel in item.get("remote_relationships") or []:
        repo, _, remote_id = str(rel.get("canonical_ref") or "").rpartition("#")
        repo = str(rel.get("remote_repo") or repo)
        remote_id = str(rel.get("remote_id") or remote_id)
        if not repo or not remote_id:
            continue
        kind = str(rel.get("remote_entity_type") or kind_of_id(remote_id))
        target = _remote_node(walk, remotes, repo, remote_id, kind=kind)
        walk.add_edge(n, target, str(rel.get("type")))


def _ttl() -> timedelta:
    cfg = node.config()
    return timedelta(seconds=cfg.cache.ttl_seconds if cfg else 300)


# --- cycles -----------------------------------------------------------------------------------------------------


def blocker_and_blocked(source: str, target: str, rel_type: str) -> tuple[str, str] | None:
    """(blocker, blocked) of an edge `source -rel_type-> target`, or None when the relation does not block."""
    if rel_type in BLOCKER_IS_FROM:
        return source, target
    if rel_type in BLOCKER_IS_TO:
        return target, source
    return None


def blocking_pairs(edges: list[GraphEdge]) -> list[tuple[str, str, GraphEdge]]:
    """(blocker, blocked, edge) for each blocking edge, by ref.lower()."""
    pairs = []
    for e in edges:
        wait = blocker_and_blocked(e.source.lower(), e.target.lower(), e.type)
        if wait is not None:
            pairs.append((*wait, e))
    return pairs


def strongly_connected(nodes: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit on long chains). Components in
    reverse topological order; each lists its nodes in the order found."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            children = succ.get(v, [])
            recurse = False
            while i < len(children):
                w = children[i]
                i += 1
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return components


def _cycle_path(start: str, members: set[str], succ: dict[str, list[str]]) -> list[str]:
    """The shortest cycle through `start` inside one component: [start, ..., start]."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in succ.get(v, []):
            if w not in members:
                continue
            if w == start:
                return _unwind(start, v, previous)
            if w not in previous:
                previous[w] = v
                queue.append(w)
    return [start]


def _unwind(start: str, last: str, previous: dict[str, str]) -> list[str]:
    path = [last]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return [*reversed(path), start]


def _mark_cycles(walk: _Walk, keys: list[str], edges: list[GraphEdge]) -> list[dict]:
    succ: dict[str, list[str]] = defaultdict(list)
    pairs = blocking_pairs(edges)
    for blocker, blocked, _edge in pairs:
        succ[blocked].append(blocker)  # "waits for": the direction depends-on is written in
    cycles = []
    component_of: dict[str, int] = {}
    for number, component in enumerate(strongly_connected(keys, succ)):
        looped = len(component) > 1 or component[0] in succ.get(component[0], [])
        if not looped:
            continue
        for key in component:
            component_of[key] = number
            walk.nodes[key].in_cycle = True
        start = min(component, key=lambda k: (not walk.nodes[k].local, k))
        path = _cycle_path(start, set(component), succ)
        refs = [walk.nodes[k].ref for k in path]
        members = [walk.nodes[k] for k in path[:-1]]
        cycles.append(
            {
                "path": refs,
                "nodes": sorted(walk.nodes[k].ref for k in component),
                "repos": sorted({m.repo for m in members}),
                "trust_levels": {m.repo: m.trust_level for m in members},
            }
        )
    for blocker, blocked, edge in pairs:
        if blocker in component_of and component_of[blocker] == component_of.get(blocked):
            edge.in_cycle = True
    return sorted(cycles, key=lambda c: c["path"])


def _result(walk: _Walk, seen: dict[str, int], *, root: str | None, depth: int, cross_repo: bool) -> dict[str, Any]:
    keys = sorted(seen, key=lambda k: (not walk.nodes[k].local, k))
    edges = [e for (a, b, _t), e in walk.edges.items() if a in seen and b in seen]
    cycles = _mark_cycles(walk, keys, edges)
    nodes = [dict(vars(walk.nodes[key])) for key in keys]  # flat fields: no deep copy (asdict) needed
    return {
        "repo": walk.own,
        "root": root,
        "depth": depth,
        "cross_repo": cross_repo,
        "generated_at": timezone.now().isoformat(),
        "legend": {**SYMBOLS, "spec": SPEC_SYMBOL, "unknown": UNKNOWN_SYMBOL},
        "nodes": nodes,
        "edges": [
            {
                "from": e.source,
                "to": e.target,
                "type": e.type,
                "blocking": e.blocking,
                "cross_repo": e.cross_repo,
                "in_cycle": e.in_cycle,
            }
            for e in sorted(edges, key=lambda e: (e.source.lower(), e.target.lower(), e.type))
        ],
        "cycles": cycles,
        "remotes": sorted(walk.remotes.values(), key=lambda r: r["url"]),
    }


# --- the formats ------------------------------------------------------------------------------------------------


def graph_render(graph: dict[str, Any], *, fmt: str) -> str:
    """`graph` (dependency_graph's dict) as text: "json", "ascii" (a tree, the seed's legend), "dot" (Graphviz)
    or "mermaid" (a flowchart). GraphError("format") for another."""
    renderers = {"json": _json, "ascii": _ascii, "dot": _dot, "mermaid": _mermaid}
    if fmt not in renderers:
        raise GraphError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    return renderers[fmt](graph)


def _json(graph: dict) -> str:
    # One node, edge or cycle a line: readable, greppable, and encoded by json's C encoder (indent= is not).
    parts = []
    for key, value in graph.items():
        if isinstance(value, list) and value:
            items = ",\n    ".join(json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f"  {json.dumps(key)}: [\n    {items}\n  ]")
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}"


def _label(n: dict) -> str:
    status = n["status"] or ("spec" if n["kind"] == EntityKind.SPEC else "unknown")
    title = f' "{n["title"]}"' if n["title"] else ""
    text = f"{n['ref']} {n['symbol']} {status}{title}"
    if not n["local"]:
        fetched = n["freshness"] if n["freshness"] in ("fresh", "missing") else f"stale, fetched {n['last_fetched_at']}"
        text += f" [remote, {fetched}]"
    if n["note"]:
        text += f" ({n['note']})"
    return text


def _ascii(graph: dict) -> str:
    nodes = {n["ref"]: n for n in graph["nodes"]}
    children: dict[str, list[dict]] = defaultdict(list)
    has_parent = set()
    for e in graph["edges"]:
        children[e["from"]].append(e)
        has_parent.add(e["to"])
    order = [graph["root"]] if graph["root"] else []
    order += [ref for ref in nodes if ref not in has_parent] + list(nodes)
    printed: set[str] = set()
    lines: list[str] = []

    def draw(ref: str, prefix: str, path: set[str]) -> None:
        # An edge back into the path that is not part of a cycle is the same relation seen from the other side
        # ("B blocks A" under "A blocked-by B") or a back-reference (discovered-from): not drawn again.
        shown = [e for e in children.get(ref, []) if e["to"] not in path or e["in_cycle"]]
        for i, e in enumerate(shown):
            last = i == len(shown) - 1
            branch, below = ("└─ ", "   ") if last else ("├─ ", "│  ")
            target = e["to"]
            head = f"{prefix}{branch}{e['type']}: "
            if target in path:
                lines.append(f"{head}{target} ↻ cycle")
            elif target in printed:
                lines.append(f"{head}{target} (shown above)")
            else:
                lines.append(head + _label(nodes[target]))
                printed.add(target)
                draw(target, prefix + below, path | {target})

    for ref in order:
        if ref in printed:
            continue
        printed.add(ref)
        lines.append(_label(nodes[ref]))
        draw(ref, "", {ref})
    if not lines:
        lines.append("(no issues or specs)")
    lines += ["", LEGEND]
    for cycle in graph["cycles"]:
        lines.append(f"Cycle: {' → '.join(cycle['path'])} (across {', '.join(cycle['repos'])})")
    for remote in graph["remotes"]:
        if remote["error"]:
            lines.append(f"Not expanded from {remote['url']}: {remote['error']}")
    return "\n".join(lines)


def _dot_id(ref: str) -> str:
    return json.dumps(ref, ensure_ascii=False)


def _dot(graph: dict) -> str:
    lines = ["digraph dependencies {", "  rankdir=LR;", '  node [shape=box, fontname="sans-serif"];']
    by_repo: dict[str, list[dict]] = defaultdict(list)
    for n in graph["nodes"]:
        by_repo[n["repo"]].append(n)
    for number, (repo, members) in enumerate(sorted(by_repo.items())):
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f"    label={_dot_id(repo or 'this repository')};")
        for n in members:
            title = (n["title"] or "")[:60]
            label = f"{n['id']} {n['symbol']}\\n{title}" if title else f"{n['id']} {n['symbol']}"
            style = ', style="dashed"' if not n["local"] else ""
            color = ', color="red"' if n["in_cycle"] else ""
            lines.append(f"    {_dot_id(n['ref'])} [label={json.dumps(label, ensure_ascii=False)}{style}{color}];")
        lines.append("  }")
    for e in graph["edges"]:
        color = ', color="red"' if e["in_cycle"] else ""
        lines.append(f"  {_dot_id(e['from'])} -> {_dot_id(e['to'])} [label={_dot_id(e['type'])}{color}];")
    lines.append("}")
    return "\n".join(lines)


def _mermaid(graph: dict) -> str:
    ids = {n["ref"]: f"n{i}" for i, n in enumerate(graph["nodes"])}
    lines = ["flowchart LR"]
    by_repo: dict[str, list[dict]] = defaultdict(list)
    for n in graph["nodes"]:
        by_repo[n["repo"]].append(n)
    for number, (repo, members) in enumerate(sorted(by_repo.items())):
        lines.append(f'  subgraph r{number}["{_mermaid_text(repo or "this repository")}"]')
        for n in members:
            title = _mermaid_text((n["title"] or "")[:60])
            lines.append(f'    {ids[n["ref"]]}["{_mermaid_text(n["id"])} {n["symbol"]} {title}"]')
        lines.append("  end")
    cycle_links = []
    for number, e in enumerate(graph["edges"]):
        arrow = "-.->" if e["cross_repo"] else "-->"
        lines.append(f"  {ids[e['from']]} {arrow}|{_mermaid_text(e['type'])}| {ids[e['to']]}")
        if e["in_cycle"]:
            cycle_links.append(str(number))
    if cycle_links:
        lines.append(f"  linkStyle {','.join(cycle_links)} stroke:red")
    cycled = [ids[n["ref"]] for n in graph["nodes"] if n["in_cycle"]]
    if cycled:
        lines.append("  classDef cycle stroke:red,stroke-width:2px")
        lines.append(f"  class {','.join(cycled)} cycle")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    # Mermaid ends a label at a double quote and reads # and | as syntax: write them as entities.
    return text.replace('"', "#quot;").replace("|", "#124;").replace("\n", " ")
