"""Where state moves between the JSONL files (the truth) and the database (an index over them).

Two directions, one module:
- `jsonl_sync` notices that a file changed under us (a `git pull`, the sudocode CLI, an editor) and re-imports
  only the entities whose line changed, by uuid. A stat per file is all it costs when nothing changed.
- `write_through` applies a change made here: under a cross-process lock it re-reads the file, lets the caller
  compute new records, updates the database and replaces the file atomically, but only if nobody changed the
  file since it was read (otherwise it re-imports and tries again).

Both directions record an event per changed entity (events.services) in the same transaction as the change.

A file that cannot be imported (a git merge conflict left in it, a malformed line, two records with one id)
does not stop the node: `jsonl_sync` keeps the last good import, remembers the problem (`data_problems`) and
tries again when the file changes; reads go on, marked stale by the edges, and every write refuses with
`DataDamaged` until the file is fixed, so nothing is written over a file a human must resolve.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from events.services import record_changes
from federation_site.node import RepoNotFound, layout
from tracker import jsonl, refs
from tracker.locks import file_lock
from tracker.models import ContentRef, Entity, EntityKind, JsonlFile, Relationship, Tag

logger = logging.getLogger(__name__)

KINDS = (EntityKind.ISSUE.value, EntityKind.SPEC.value)
_WRITE_ATTEMPTS = 8
_CHUNK = 500


class WriteConflict(Exception):
    """The file kept changing under us while we tried to write it."""


class DataDamaged(jsonl.JsonlFormatError):
    """A write refused because a JSONL file cannot be read (`reason` says why and where). Nothing was written:
    the caller may try again once a human has fixed the file (HTTP edges answer 503 with Retry-After)."""

    retry_after = 60  # seconds; the file is picked up within 2 s of being fixed

    @classmethod
    def of(cls, exc: jsonl.JsonlFormatError) -> DataDamaged:
        return exc if isinstance(exc, cls) else cls(exc.path, exc.line, exc.reason)

    def as_json(self) -> dict:
        """The body of the 503 every HTTP edge answers (PROTOCOL.md, "Errors")."""
        return {"error": "data_damaged", "detail": self.short, "retry_after": self.retry_after}


@dataclass(frozen=True)
class Change:
    kind: str
    uuid: str
    before: dict | None
    after: dict | None


@dataclass
class SyncResult:
    changes: list[Change] = field(default_factory=list)

    @property
    def created(self) -> list[Change]:
        return [c for c in self.changes if c.before is None]

    @property
    def updated(self) -> list[Change]:
        return [c for c in self.changes if c.before is not None and c.after is not None]

    @property
    def deleted(self) -> list[Change]:
        return [c for c in self.changes if c.after is None]


@dataclass
class Edit:
    """What a write-through caller wants done to one file: records to insert or replace, uuids to drop."""

    upserts: dict[str, dict] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stat(path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


# Per process: the stat of each file as last seen imported, so an unchanged file costs no query at all.
_seen: dict[tuple[str, str], tuple[int, int]] = {}
# Per process: why a file could not be imported, by kind, while it cannot. Every process notices by itself
# (a damaged file's stat never matches the last good import's), so this needs no query.
_problems: dict[tuple[str, str], jsonl.JsonlFormatError] = {}  # by (file path, kind), like _seen


def data_problems() -> list[jsonl.JsonlFormatError]:
    """The JSONL files this process could not import at its last look, as errors naming the file, the line(s)
    and the cause. Empty when all is well. Up to date after `jsonl_sync` (each request, each CLI command)."""
    if not _problems:
        return []  # every request asks: the common case costs nothing
    try:
        lay = layout()
    except RepoNotFound:
        return []
    keys = [(str(lay.jsonl_path(kind)), kind) for kind in KINDS]
    return [_problems[key] for key in keys if key in _problems]


def ensure_writable() -> None:
    """Raise `DataDamaged` (the first problem) when a write must wait for a human to fix a file."""
    problems = data_problems()
    if problems:
        raise DataDamaged.of(problems[0])


def jsonl_sync(
    *, kinds: Iterable[str] = KINDS, force: bool = False, progress: Callable[[str], None] | None = None
) -> SyncResult:
    """Import what changed in the JSONL files since the last import (by anyone). `progress` hears about
    a first import, the one that can take a while on a large repository."""
    lay = layout()
    result = SyncResult()
    stats = {kind: _stat(lay.jsonl_path(kind)) for kind in kinds}
    pending = [k for k in kinds if force or _seen.get((str(lay.jsonl_path(k)), k)) != stats[k]]
    if not pending:
        return result
    if not force:
        # One read, no lock: most of the time another process already imported what is on disk.
        imported = {
            kind: (size, mtime)
            for kind, size, mtime in JsonlFile.objects.filter(kind__in=pending).values_list("kind", "size", "mtime_ns")
        }
        for kind in [k for k in pending if imported.get(k) == stats[k]]:
            _seen[(str(lay.jsonl_path(kind)), kind)] = stats[kind]
            _problems.pop((str(lay.jsonl_path(kind)), kind), None)
            pending.remove(kind)
    for kind in pending:
        path = lay.jsonl_path(kind)
        try:
            with file_lock(lay.lock_path(kind)), transaction.atomic():
                state = JsonlFile.objects.filter(kind=kind).first()
                snapshot = jsonl.read_jsonl(path, kind)
                if force or not state or state.sha256 != snapshot.content_sha256:
                    if progress and not state and len(snapshot.records) > 100:
                        progress(f"Importing {path.name} ({len(snapshot.records)} {kind}s)...")
                    result.changes += _import(snapshot)
                seen = (snapshot.size, snapshot.mtime_ns) if snapshot.exists else (-1, -1)
                _remember(kind, *seen, snapshot.content_sha256)
        except jsonl.JsonlFormatError as exc:
            # The last good import stays; looked at again when the file changes (its stat, remembered here).
            if str(_problems.get((str(path), kind))) != str(exc):
                logger.error("cannot import %s, serving the last good import: %s", path.name, exc.short)
            _problems[(str(path), kind)] = exc
            _seen[(str(path), kind)] = stats[kind]
            continue
        if _problems.pop((str(path), kind), None) is not None:
            logger.warning("%s is readable again and imported", path.name)
        _seen[(str(path), kind)] = seen
    return result


@contextmanager
def write_batch(kind: str) -> Iterator[None]:
    """One writer's turn at the file of `kind`: its cross-process lock, then one database transaction. Every
    `write_through` of `kind` inside is part of that transaction, and so is whatever else the caller records
    around it (a request's row, its audit rows and events): one BEGIN, one COMMIT, one wake-up of the outbox's
    listeners instead of one per step. The file is written (and fsynced) by each write_through inside; the
    transaction commits when the block ends. Lock order: the file's lock, then the
    database's (SQLite's BEGIN IMMEDIATE), as in every writer, so two writers never wait for each other. The lock
    is let go as the transaction commits, before its on-commit hooks (wake-ups, a git commit) run."""
    with file_lock(layout().lock_path(kind)) as lock, transaction.atomic():
        transaction.on_commit(lock.release)  # the first hook: the others run without the lock
        yield


def write_through(kind: str, compute: Callable[[jsonl.JsonlSnapshot], Edit]) -> tuple[Edit, SyncResult]:
    """Apply `compute(snapshot)` to the file of `kind` and to the database, atomically and without losing a
    change another tool made. `compute` may run more than once (after a conflict) and must not have side
    effects outside the database. Returns the edit that was applied and what was imported on the way.
    Raises `DataDamaged` while any JSONL file cannot be read (all writes wait for a human to fix it). Inside
    `write_batch(kind)` it is part of the batch's transaction."""
    lay = layout()
    path = lay.jsonl_path(kind)
    for problem in data_problems():
        if problem.path != str(path):  # this kind's file is read again below: it may have been fixed since
            raise DataDamaged.of(problem)
    with file_lock(lay.lock_path(kind)):
        for _attempt in range(_WRITE_ATTEMPTS):
            with transaction.atomic():
                try:
                    snapshot = jsonl.read_jsonl(path, kind)
                    imported = SyncResult(_import_if_changed(snapshot))
                except jsonl.JsonlFormatError as exc:
                    _problems[(str(path), kind)] = exc
                    raise DataDamaged.of(exc) from None
                edit = compute(snapshot)
                if not edit.upserts and not edit.deletes:
                    return edit, imported
                content, sha256 = jsonl.render(snapshot, upserts=edit.upserts, deletes=edit.deletes)
                _apply_edit(kind, snapshot, edit)
                if _changed_since(path, snapshot):
                    transaction.set_rollback(True)
                    logger.info("%s changed while we wrote it; re-reading", path.name)
                    continue
                jsonl.write_atomic(path, content)
                size, mtime_ns = _stat(path)
                _remember(kind, size, mtime_ns, sha256)
                # Imported as far as this process knows once the database says so (a batch commits later; one
                # rolled back leaves the file to be imported again).
                transaction.on_commit(lambda seen=(size, mtime_ns): _imported(path, kind, seen))
            return edit, imported
    raise WriteConflict(f"{path} kept changing while we tried to write it; try again")


def _changed_since(path, snapshot: jsonl.JsonlSnapshot) -> bool:
    now = _stat(path)
    then = (snapshot.size, snapshot.mtime_ns) if snapshot.exists else (-1, -1)
    if now == then:
        return False
    if now[0] == -1 or now[0] != then[0]:
        return True
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest() != snapshot.content_sha256


def _imported(path, kind: str, seen: tuple[int, int]) -> None:
    _seen[(str(path), kind)] = seen
    _problems.pop((str(path), kind), None)


def _remember(kind: str, size: int, mtime_ns: int, sha256: str) -> None:
    fields = {"size": size, "mtime_ns": mtime_ns, "sha256": sha256, "imported_at": timezone.now()}
    if not JsonlFile.objects.filter(kind=kind).update(**fields):
        JsonlFile.objects.create(kind=kind, **fields)


def _import_if_changed(snapshot: jsonl.JsonlSnapshot) -> list[Change]:
    state = JsonlFile.objects.filter(kind=snapshot.kind).first()
    if state and state.sha256 == snapshot.content_sha256:
        return []
    return _import(snapshot)


def _import(snapshot: jsonl.JsonlSnapshot) -> list[Change]:
    """Bring the database in line with `snapshot`, touching only entities whose line changed."""
    kind = snapshot.kind
    _check_unique_ids(snapshot)
    incoming = snapshot.by_uuid()
    known = dict(Entity.objects.filter(kind=kind).values_list("uuid", "raw_sha"))
    changed = [u for u, (line, _rec) in incoming.items() if known.get(u) != _sha(line)]
    gone = [u for u in known if u not in incoming]
    before = _records(changed + gone)
    _delete(changed + gone)
    _insert(kind, [(incoming[u][0], incoming[u][1]) for u in changed])
    changes = [Change(kind, u, before.get(u), incoming[u][1]) for u in changed]
    changes += [Change(kind, u, before.get(u), None) for u in gone]
    record_changes(kind, [(c.uuid, c.before, c.after) for c in changes])
    if changes:
        logger.info("imported %s: %d changed, %d removed", snapshot.path.name, len(changed), len(gone))
    return changes


def _check_unique_ids(snapshot: jsonl.JsonlSnapshot) -> None:
    seen: dict[str, int] = {}
    numbers = snapshot.line_numbers or range(1, len(snapshot.records) + 1)
    for lineno, record in zip(numbers, snapshot.records, strict=True):
        if record["id"] in seen:
            raise jsonl.JsonlFormatError(
                str(snapshot.path),
                lineno,
                f"id {record['id']!r} is on line {seen[record['id']]} and again on line {lineno}, for two "
                "different records (a merge kept both): give one of them another id",
            )
        seen[record["id"]] = lineno


def _records(uuids: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i in range(0, len(uuids), _CHUNK):
        for uuid, raw in Entity.objects.filter(uuid__in=uuids[i : i + _CHUNK]).values_list("uuid", "raw"):
            out[uuid] = json.loads(raw)
    return out


def _delete(uuids: list[str]) -> None:
    for i in range(0, len(uuids), _CHUNK):
        Entity.objects.filter(uuid__in=uuids[i : i + _CHUNK]).delete()


def _apply_edit(kind: str, snapshot: jsonl.JsonlSnapshot, edit: Edit) -> None:
    # Only entities already in the file have rows to read and replace (a create has none: no query).
    known = jsonl.snapshot_uuids(snapshot)
    uuids = [u for u in [*edit.upserts, *edit.deletes] if u in known]
    before = _records(uuids)
    _delete(uuids)
    ending = jsonl.carriage_return(snapshot)  # the line as render_lines writes it
    _insert(kind, [(jsonl.dump_record(rec) + ending, rec) for rec in edit.upserts.values()])
    record_changes(
        kind,
        [(u, before.get(u), rec) for u, rec in edit.upserts.items()]
        + [(u, before[u], None) for u in edit.deletes if u in before],
    )


def _insert(kind: str, rows: list[tuple[str, dict]]) -> None:
    entities, tags, rels, content_refs = [], [], [], []
    for line, record in rows:
        entity = entity_from_record(kind, line, record)
        entities.append(entity)
        tags += [Tag(entity=entity, position=i, name=t) for i, t in enumerate(record.get("tags") or [])]
        rels += [
            Relationship(
                source=entity,
                position=i,
                from_id=r.get("from", ""),
                from_type=r.get("from_type", ""),
                to_id=r.get("to", ""),
                to_type=r.get("to_type", ""),
                type=r.get("type", ""),
            )
            for i, r in enumerate(record.get("relationships") or [])
        ]
        content_refs += [
            ContentRef(
                entity=entity,
                position=i,
                repo=ref.repo or "",
                target_id=ref.target_id,
                rel_type=ref.rel_type or "",
                display=(ref.display or "")[:500],
                mention=ref.mention,
            )
            for i, ref in enumerate(refs.parse_refs(record.get("content") or ""))
        ]
    Entity.objects.bulk_create(entities, batch_size=_CHUNK)
    Tag.objects.bulk_create(tags, batch_size=_CHUNK)
    Relationship.objects.bulk_create(rels, batch_size=_CHUNK)
    ContentRef.objects.bulk_create(content_refs, batch_size=_CHUNK)


def entity_from_record(kind: str, line: str, record: dict) -> Entity:
    return Entity(
        uuid=record["uuid"],
        kind=kind,
        sudocode_id=record["id"],
        title=record.get("title") or "",
        content=record.get("content") or "",
        status=record.get("status") or "",
        priority=record.get("priority", 2),
        assignee=record.get("assignee"),
        archived=bool(record.get("archived")),
        file_path=record.get("file_path") or "",
        parent_id=record.get("parent_id"),
        parent_uuid=record.get("parent_uuid"),
        created_at=record.get("created_at") or "",
        updated_at=record.get("updated_at") or "",
        closed_at=record.get("closed_at"),
        created=jsonl.parse_timestamp(record.get("created_at")),
        updated=jsonl.parse_timestamp(record.get("updated_at")),
        raw=line,
        raw_sha=_sha(line),
    )
