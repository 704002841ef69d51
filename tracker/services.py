"""Writes to the repository's issues and specs. Every edge (CLI, REST API, admin, later the federation
handlers) calls these; each one validates, writes through to the JSONL file and, when the config says so,
commits it to git."""

from __future__ import annotations

import json
import logging
import uuid as uuidlib
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from federation_site import node
from tracker import gitops, ids, jsonl, signals
from tracker.locks import file_lock
from tracker.models import Entity, EntityKind, IssueStatus, PendingCommit
from tracker.selectors import entity_get
from tracker.sync import Edit, write_through

logger = logging.getLogger(__name__)

RELATIONSHIP_TYPES = ("blocks", "depends-on", "implements", "references", "related", "discovered-from")
TITLE_MAX = 500
_UNSET: object = object()


def issue_create(
    *,
    title: str,
    actor: str,
    content: str = "",
    status: str = IssueStatus.OPEN,
    priority: int = 2,
    tags: Sequence[str] = (),
    assignee: str | None = None,
    parent: str | None = None,
    sudocode_id: str | None = None,
    relationships: Sequence[tuple[str, str]] = (),
    remote_relationships: Sequence[dict] = (),
    from_remote: bool = False,
    uuid: str | None = None,
    extensions: dict | None = None,
) -> Entity:
    """Create an issue. `relationships` are (type, target id) pairs to local issues or specs;
    `remote_relationships` are the seed's JSONL extension (type, remote_repo, remote_id, canonical_ref, ...).
    `from_remote`: another repository made us do it (an approved request): committed by default. `uuid`: the
    new entity's (default: a random one); creating it twice is a ValidationError at `uuid`, so a caller that
    derives it from a request can carry the request out again safely. `extensions`: further JSONL fields of
    ours, kept in the record as they are (e.g. `delegated_from`, requests_app.delegation)."""
    return _entity_create(
        kind=EntityKind.ISSUE,
        title=title,
        actor=actor,
        content=content,
        status=status,
        priority=priority,
        tags=tags,
        assignee=assignee,
        parent=parent,
        sudocode_id=sudocode_id,
        relationships=relationships,
        remote_relationships=remote_relationships,
        from_remote=from_remote,
        uuid=uuid,
        extensions=extensions,
    )


def spec_create(
    *,
    title: str,
    actor: str,
    content: str = "",
    priority: int = 2,
    tags: Sequence[str] = (),
    parent: str | None = None,
    sudocode_id: str | None = None,
    relationships: Sequence[tuple[str, str]] = (),
    remote_relationships: Sequence[dict] = (),
    from_remote: bool = False,
    uuid: str | None = None,
    extensions: dict | None = None,
) -> Entity:
    """Create a spec; the keywords are issue_create's."""
    return _entity_create(
        kind=EntityKind.SPEC,
        title=title,
        actor=actor,
        content=content,
        status=None,
        priority=priority,
        tags=tags,
        assignee=None,
        parent=parent,
        sudocode_id=sudocode_id,
        relationships=relationships,
        remote_relationships=remote_relationships,
        from_remote=from_remote,
        uuid=uuid,
        extensions=extensions,
    )


def issue_update(
    *,
    issue: str,
    actor: str,
    title: str | object = _UNSET,
    content: str | object = _UNSET,
    status: str | object = _UNSET,
    priority: int | object = _UNSET,
    tags: Sequence[str] | object = _UNSET,
    assignee: str | None | object = _UNSET,
    archived: bool | object = _UNSET,
    add_relationships: Sequence[tuple[str, str]] = (),
    add_remote_relationships: Sequence[dict] = (),
    from_remote: bool = False,
) -> Entity:
    """Change the given fields of an issue (by id or uuid). Fields left out stay as they are; a call that
    changes nothing writes nothing. `from_remote` as for `issue_create`."""
    fields = {
        "title": _clean_title(title) if title is not _UNSET else _UNSET,
        "content": content,
        "status": _clean_status(status) if status is not _UNSET else _UNSET,
        "priority": _clean_priority(priority) if priority is not _UNSET else _UNSET,
        "tags": _clean_tags(tags) if tags is not _UNSET else _UNSET,
        "assignee": assignee,
    }
    fields = {k: v for k, v in fields.items() if v is not _UNSET}
    return _entity_update(
        kind=EntityKind.ISSUE,
        ref=issue,
        actor=actor,
        fields=fields,
        archived=archived,
        add_relationships=add_relationships,
        add_remote_relationships=add_remote_relationships,
        from_remote=from_remote,
    )


def entity_link_remote(*, ref: str, relationships: Sequence[dict], actor: str, from_remote: bool = False) -> Entity:
    """Add remote relationships (the seed's JSONL extension) to an issue or a spec, by id or uuid."""
    found = entity_get(kind=None, ref=ref)
    return _entity_update(
        kind=found.kind,
        ref=found.uuid,
        actor=actor,
        fields={},
        archived=_UNSET,
        add_relationships=(),
        add_remote_relationships=relationships,
        from_remote=from_remote,
    )


def issue_close(*, issue: str, actor: str) -> Entity:
    return issue_update(issue=issue, actor=actor, status=IssueStatus.CLOSED)


def _entity_create(
    *,
    kind: str,
    title: str,
    actor: str,
    content: str,
    status: str | None,
    priority: int,
    tags: Sequence[str],
    assignee: str | None,
    parent: str | None,
    sudocode_id: str | None,
    relationships: Sequence[tuple[str, str]],
    remote_relationships: Sequence[dict] = (),
    from_remote: bool = False,
    uuid: str | None = None,
    extensions: dict | None = None,
) -> Entity:
    title = _clean_title(title)
    priority = _clean_priority(priority)
    tags = _clean_tags(tags)
    if status is not None:
        status = _clean_status(status)
    if sudocode_id is not None and not ids.is_valid_id(sudocode_id):
        raise ValidationError({"id": f"{sudocode_id!r} is not a sudocode id (like issue-100, ISSUE-001 or i-x7k9)"})
    new_uuid = str(uuidlib.UUID(uuid)) if uuid else str(uuidlib.uuid4())

    def compute(snapshot: jsonl.JsonlSnapshot) -> Edit:
        # The database holds exactly the snapshot here (write_through imported it in this transaction): ask its
        # indexes, so a create costs the same in a file of 10 or 10,000 records.
        if uuid and Entity.objects.filter(uuid=new_uuid).exists():
            raise ValidationError({"uuid": f"{kind} {new_uuid} already exists"})
        taken = _TakenIds(kind)
        if sudocode_id is not None:
            if sudocode_id in taken:
                raise ValidationError({"id": f"{kind} {sudocode_id} already exists"})
            new_id = sudocode_id
        else:
            # sudocode sizes a new hash id by how many entities of that kind the repository holds.
            new_id = ids.generate_id(kind, new_uuid, entity_count=len(snapshot.records), taken=taken)
        parent_entity = _parent(kind, parent)
        now = jsonl.sqlite_timestamp()
        common = dict(
            id=new_id,
            uuid=new_uuid,
            title=title,
            content=content,
            priority=priority,
            created_at=now,
            updated_at=now,
            parent_id=parent_entity.sudocode_id if parent_entity else None,
            parent_uuid=parent_entity.uuid if parent_entity else None,
            relationships=_relationships(kind, new_id, relationships),
            tags=tags,
        )
        if kind == EntityKind.ISSUE:
            record = jsonl.new_issue_record(status=status, assignee=assignee, **common)
        else:
            record = jsonl.new_spec_record(file_path=_spec_file_path(new_id, title), **common)
        if remote_relationships:
            record["remote_relationships"] = _merge_remote([], remote_relationships)
        for key, value in (extensions or {}).items():
            record.setdefault(key, value)
        return Edit(upserts={new_uuid: record})

    edit, _ = write_through(kind, compute)
    record = edit.upserts[new_uuid]
    _commit(kind, f"create {kind} {record['id']}: {title}", actor, from_remote=from_remote)
    if remote_relationships or "[[" in content:
        _references_changed()
    return Entity.objects.get(uuid=new_uuid)


def _entity_update(
    *,
    kind: str,
    ref: str,
    actor: str,
    fields: dict,
    archived: bool | object,
    add_relationships: Sequence[tuple[str, str]],
    add_remote_relationships: Sequence[dict] = (),
    from_remote: bool = False,
) -> Entity:
    summary: list[str] = []

    def compute(snapshot: jsonl.JsonlSnapshot) -> Edit:
        entity = entity_get(kind=kind, ref=ref)
        record = json.loads(entity.raw)
        before = dict(record)
        for name, value in fields.items():
            record[name] = value
        now = jsonl.iso_timestamp()
        if "status" in fields and fields["status"] != before.get("status"):
            record["closed_at"] = now if fields["status"] == IssueStatus.CLOSED else None
        if archived is not _UNSET and int(bool(archived)) != before.get("archived"):
            record["archived"] = int(bool(archived))
            record["archived_at"] = now if archived else None
        if add_relationships:
            merged = list(record.get("relationships") or [])
            for rel in _relationships(kind, record["id"], add_relationships):
                if rel not in merged:
                    merged.append(rel)
            record["relationships"] = _sorted_relationships(merged)
        if add_remote_relationships:
            record["remote_relationships"] = _merge_remote(record.get("remote_relationships"), add_remote_relationships)
        changed = [k for k in record if record.get(k) != before.get(k)]
        summary[:] = changed
        if not changed:
            return Edit()
        record["updated_at"] = now
        return Edit(upserts={entity.uuid: record})

    edit, _ = write_through(kind, compute)
    entity = entity_get(kind=kind, ref=ref)
    if edit.upserts:
        _commit(kind, f"update {kind} {entity.sudocode_id}: {', '.join(summary)}", actor, from_remote=from_remote)
        if {"content", "remote_relationships"} & set(summary):
            _references_changed()
    return entity


def _references_changed() -> None:
    signals.references_changed.send(sender=Entity)


REMOTE_RELATIONSHIP_KEYS = ("type", "remote_repo", "remote_entity_type", "remote_id", "remote_uuid", "canonical_ref")


def _merge_remote(existing: object, new: Sequence[dict]) -> list[dict]:
    """The seed's `remote_relationships` JSONL extension: one entry per (type, remote_repo, remote_id)."""
    merged = [r for r in existing if isinstance(r, dict)] if isinstance(existing, list) else []
    for rel in new:
        missing = [k for k in ("type", "remote_repo", "remote_id") if not rel.get(k)]
        if missing:
            raise ValidationError({"remote_relationships": f"missing {', '.join(missing)}"})
        entry = {k: rel[k] for k in REMOTE_RELATIONSHIP_KEYS if rel.get(k) is not None}
        key = (entry["type"], entry["remote_repo"], entry["remote_id"])
        if not any((r.get("type"), r.get("remote_repo"), r.get("remote_id")) == key for r in merged):
            merged.append(entry)
    return merged


class _TakenIds:
    """The ids of `kind` in use, asked one at a time of the database (ids.generate_id usually asks once)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __contains__(self, sudocode_id: object) -> bool:
        return Entity.objects.filter(kind=self.kind, sudocode_id=sudocode_id).exists()


def _parent(kind: str, parent: str | None) -> Entity | None:
    if not parent:
        return None
    try:
        return entity_get(kind=kind, ref=parent)
    except Entity.DoesNotExist:
        raise ValidationError({"parent": f"no {kind} {parent!r} in this repository"}) from None


def _relationships(kind: str, from_id: str, pairs: Sequence[tuple[str, str]]) -> list[dict]:
    out = []
    for rel_type, target in pairs:
        if rel_type not in RELATIONSHIP_TYPES:
            raise ValidationError({"relationships": f"{rel_type!r} is not one of {', '.join(RELATIONSHIP_TYPES)}"})
        try:
            to = entity_get(kind=None, ref=target)
        except Entity.DoesNotExist:
            raise ValidationError({"relationships": f"no issue or spec {target!r} in this repository"}) from None
        out.append({"from": from_id, "from_type": kind, "to": to.sudocode_id, "to_type": to.kind, "type": rel_type})
    return _sorted_relationships(out)


def _sorted_relationships(rels: list[dict]) -> list[dict]:
    # The order current sudocode writes: by target, target type, type, case-insensitively.
    return sorted(rels, key=lambda r: (r["to"].lower(), r["to_type"], r["type"]))


def _spec_file_path(spec_id: str, title: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in title.lower()).strip("_")
    slug = "_".join(part for part in slug.split("_") if part)[:60]
    return f"specs/{spec_id}_{slug}.md" if slug else f"specs/{spec_id}.md"


def _clean_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise ValidationError({"title": "a title is required"})
    if len(title) > TITLE_MAX:
        raise ValidationError({"title": f"at most {TITLE_MAX} characters (got {len(title)})"})
    return title


def _clean_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
        raise ValidationError({"priority": f"must be an integer from 0 (highest) to 4, got {priority!r}"})
    return priority


def _clean_status(status: object) -> str:
    if status not in IssueStatus.values:
        raise ValidationError({"status": f"{status!r} is not one of {', '.join(IssueStatus.values)}"})
    return str(status)


def _clean_tags(tags: object) -> list[str]:
    if isinstance(tags, str) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise ValidationError({"tags": "must be a list of non-empty strings"})
    out: list[str] = []
    for t in tags:
        if t.strip() not in out:
            out.append(t.strip())
    return out


def _commit(kind: str, message: str, actor: str, *, from_remote: bool = False) -> None:
    """Owe git a commit of the file of `kind` when the config says so: changes made here with
    `git.auto_commit`, changes another repository made us make (`from_remote`) with `git.commit_remote_changes`
    (on by default). Made after the current transaction commits; waits while git is busy (`git_commit_pending`)."""
    git = node.git_settings()
    if git is None or not (git.auto_commit or (from_remote and git.commit_remote_changes)):
        return
    if not gitops.is_git_repo(node.layout().root):
        return  # a repository that is not (yet) a git one has nothing to commit to
    PendingCommit.objects.create(kind=kind, message=f"sudocode-fed: {message}\n\nBy: {actor}")
    transaction.on_commit(git_commit_pending)


def git_commit_pending() -> int:
    """Make the commits that are owed, as one commit of the JSONL files they touch (only those files, never
    what else the user has staged), and push when `git.push` says so. Returns how many were made; while the
    repository is mid-merge, mid-rebase or detached they wait for the next call (beat, every 10 s)."""
    if not PendingCommit.objects.exists():
        return 0
    lay = node.layout()
    git = node.git_settings()
    with file_lock(lay.lock_path("git")):
        owed = list(PendingCommit.objects.all())
        if not owed:
            return 0
        if len(owed) == 1:
            message = owed[0].message
        else:
            lines = [f"- {row.message.split(': ', 1)[-1].splitlines()[0]}" for row in owed]
            by = sorted({row.message.rsplit("By: ", 1)[-1] for row in owed})
            message = f"sudocode-fed: {len(owed)} changes\n\n" + "\n".join(lines) + "\n\nBy: " + "; ".join(by)
        paths = [lay.jsonl_path(kind) for kind in sorted({row.kind for row in owed})]
        claimed = PendingCommit.objects.filter(pk__in=[row.pk for row in owed])
        try:
            sha = gitops.commit_files(lay.root, paths, message)
            if sha and git is not None and git.push:
                gitops.push(lay.root)
        except gitops.GitBusy as exc:
            claimed.update(attempts=F("attempts") + 1, last_error=str(exc))
            logger.info("%d commit(s) of .sudocode wait: %s", len(owed), exc)
            return 0
        except gitops.GitError as exc:
            # The change is written; only its commit failed. Say so loudly, don't pretend the change failed.
            claimed.delete()
            logger.warning("%s updated but not committed: %s", ", ".join(p.name for p in paths), exc)
            return 0
        claimed.delete()
    return len(owed)
