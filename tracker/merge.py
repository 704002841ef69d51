"""Three-way merge of two versions of an issues.jsonl or specs.jsonl file, by record (git's merge driver).

`git merge` and `git pull` of diverged branches otherwise merge these files line by line, and two branches that
each added or changed an issue near the same place leave `<<<<<<<` markers in a file the node then cannot read.
This merges by `uuid`, the records' stable identity, the way sudocode's own merge resolver does:

- a record added on one side, or on both, is kept; a record changed on one side only takes that change;
- a record changed on both sides merges field by field: a field changed on one side takes that change, a field
  changed on both sides to different values takes the side whose `updated_at` is later (last write wins, the
  seed's default), and `updated_at` becomes the later of the two;
- what cannot be merged safely keeps one side and is listed as a conflict for a human: a record changed on one
  side and deleted on the other (the changed one is kept), and two different records with the same `id` (the
  one from the other branch is renamed `<id>.1`, as sudocode's resolver does);
- untouched lines stay byte for byte, and the file keeps sudocode's line order.

Pure: no Django, no database. `sudocode-fed merge-driver %O %A %B %P` (sudocode_cli) is the git edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tracker import jsonl


@dataclass(frozen=True)
class Conflict:
    """Something the merge decided that a human should look at."""

    id: str
    uuid: str
    reason: str  # plain words: what happened and what was kept

    def as_dict(self) -> dict:
        return {"id": self.id, "uuid": self.uuid, "reason": self.reason}


@dataclass
class MergeResult:
    content: bytes
    conflicts: list[Conflict] = field(default_factory=list)
    merged_fields: int = 0  # records changed on both sides and merged field by field


def merge_files(base: Path, ours: Path, theirs: Path, *, kind: str) -> MergeResult:
    """Merge three versions of one file (git's %O, %A, %B). Raises jsonl.JsonlFormatError when a version cannot
    be read (conflict markers already in it, a malformed line): the caller leaves the merge to git then."""
    return merge_snapshots(
        jsonl.read_jsonl(base, kind), jsonl.read_jsonl(ours, kind), jsonl.read_jsonl(theirs, kind), kind=kind
    )


def merge_snapshots(
    base: jsonl.JsonlSnapshot, ours: jsonl.JsonlSnapshot, theirs: jsonl.JsonlSnapshot, *, kind: str
) -> MergeResult:
    base_by, ours_by, theirs_by = base.by_uuid(), ours.by_uuid(), theirs.by_uuid()
    result = MergeResult(content=b"")
    # Start from ours (its lines kept byte for byte), then apply what theirs did since the base.
    upserts: dict[str, dict] = {}
    deletes: set[str] = set()
    for uuid, (their_line, their_record) in theirs_by.items():
        base_line = base_by.get(uuid, (None, None))[0]
        if uuid not in ours_by:
            if base_line is None:
                upserts[uuid] = their_record  # added there
            elif their_line != base_line:
                upserts[uuid] = their_record  # deleted here, changed there: keep the change
                result.conflicts.append(
                    Conflict(their_record["id"], uuid, "deleted on this branch, changed on the other: kept the change")
                )
            continue
        our_line, our_record = ours_by[uuid]
        if their_line == our_line or their_line == base_line:
            continue  # the same on both sides, or changed here only: ours stands
        if our_line == base_line or base_line is None:
            if base_line is None:  # added on both sides with different content: merge as if from nothing
                upserts[uuid] = _merge_fields({}, our_record, their_record)
                result.merged_fields += 1
            else:
                upserts[uuid] = their_record  # changed there only
            continue
        upserts[uuid] = _merge_fields(base_by[uuid][1], our_record, their_record)
        result.merged_fields += 1
    for uuid, (base_line, _base_record) in base_by.items():
        if uuid in ours_by and uuid not in theirs_by:
            our_line, our_record = ours_by[uuid]
            if our_line == base_line:
                deletes.add(uuid)  # deleted there, untouched here
            else:
                result.conflicts.append(
                    Conflict(our_record["id"], uuid, "changed on this branch, deleted on the other: kept the change")
                )
    _rename_colliding_ids(ours_by, upserts, deletes, result)
    result.content = jsonl.render_lines(ours, upserts=upserts, deletes=deletes)
    return result


def _merge_fields(base: dict, ours: dict, theirs: dict) -> dict:
    """One record changed on both sides: field by field, last write (by updated_at) wins where both changed it."""
    theirs_later = _later(theirs, ours)
    merged: dict = {}
    for key in list(ours) + [k for k in theirs if k not in ours]:
        b, o, t = base.get(key, _ABSENT), ours.get(key, _ABSENT), theirs.get(key, _ABSENT)
        if o == t or t == b:
            value = o
        elif o == b:
            value = t
        else:
            value = t if theirs_later else o
        if value is not _ABSENT:
            merged[key] = value
    stamps = [r["updated_at"] for r in (ours, theirs) if isinstance(r.get("updated_at"), str)]
    if stamps:
        merged["updated_at"] = max(stamps, key=lambda s: (jsonl.parse_timestamp(s) or _EPOCH, s))
    return merged


def _later(a: dict, b: dict) -> bool:
    """Whether `a` was written after `b` (by updated_at; zone-less times are UTC, as sudocode reads them)."""
    return (jsonl.parse_timestamp(a.get("updated_at")) or _EPOCH) > (
        jsonl.parse_timestamp(b.get("updated_at")) or _EPOCH
    )


def _rename_colliding_ids(ours_by: dict, upserts: dict[str, dict], deletes: set[str], result: MergeResult) -> None:
    """Two different records (uuids) with one id: the one that came from the other branch becomes `<id>.1`
    (`.2`, ...), as sudocode's merge resolver names them; a human decides which keeps the id."""
    taken = {record["id"]: uuid for uuid, (_line, record) in ours_by.items() if uuid not in deletes}
    for uuid, record in upserts.items():
        owner = taken.get(record["id"])
        if owner is None or owner == uuid:
            taken[record["id"]] = uuid
            continue
        n = 1
        while f"{record['id']}.{n}" in taken:
            n += 1
        new_id = f"{record['id']}.{n}"
        result.conflicts.append(
            Conflict(
                new_id, uuid, f"id {record['id']!r} was also given to another record on this branch: renamed {new_id}"
            )
        )
        upserts[uuid] = dict(record, id=new_id)
        taken[new_id] = uuid


_ABSENT = object()
_EPOCH = jsonl.parse_timestamp("1970-01-01 00:00:00")
