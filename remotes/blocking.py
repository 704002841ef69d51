"""Issues blocked by entities of other repositories: keeping their status in line with what we know of their
blockers, and explaining why an issue is blocked.

A local issue with remote blockers (cross-repo references of a type in `REMOTE_BLOCKING`) is `blocked` while
any remote blocker is not known to be closed (a blocker we know nothing about, or one deleted at its remote,
counts as open: we never unblock on a guess), and goes back to `open` once no blocker, local (`blocks` /
`depends-on` relationships to open local issues, as `tracker.selectors.open_blockers` says) or remote, is open.
Only `open` and `blocked` issues are touched: an issue someone is working on, reviewing or has closed keeps its
status. Every status change is a normal tracker write (JSONL, git commit, event), made after any transaction.

What we know of a remote blocker is its cross-repo reference's cached data, kept current by the events of the
auto-subscription (subscriptions.inbox) and by lazy or batch refreshes (remotes.sync.references_refresh).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from federation_site import identity
from remotes.models import CrossRepoReference
from remotes.sync import REMOTE_BLOCKING
from tracker.models import Entity, EntityKind, IssueStatus

logger = logging.getLogger(__name__)

# Statuses the reconcile may change; every other one is a person's decision.
_MANAGED = (IssueStatus.OPEN, IssueStatus.BLOCKED)
_CHAIN_DEPTH = 5


# --- selectors ---------------------------------------------------------------------------------------------


def remote_status(ref: CrossRepoReference) -> str | None:
    """The remote entity's last known status; None when we do not know it (never fetched, not found there,
    deleted there, or a remote we do not know)."""
    data = ref.cached_data or {}
    if ref.remote_repo_id is None or data.get("deleted"):
        return None
    status = data.get("status")
    return str(status) if status else None


def blocker_is_open(ref: CrossRepoReference) -> bool:
    return remote_status(ref) != IssueStatus.CLOSED


def remote_blockers(*, local_uuids: Iterable[str] | None = None) -> dict[str, list[CrossRepoReference]]:
    """The remote blockers of local issues, by local uuid."""
    qs = CrossRepoReference.objects.filter(
        relationship_type__in=REMOTE_BLOCKING, local_entity_type=EntityKind.ISSUE
    ).select_related("remote_repo")
    if local_uuids is not None:
        qs = qs.filter(local_uuid__in=list(local_uuids))
    out: dict[str, list[CrossRepoReference]] = defaultdict(list)
    for ref in qs.order_by("local_uuid", "canonical_ref"):
        out[ref.local_uuid].append(ref)
    return dict(out)


def local_open_blockers(entity: Entity) -> list[dict]:
    from tracker.selectors import entity_detail, open_blockers

    return open_blockers(entity_detail(entity))


# --- the reconcile -----------------------------------------------------------------------------------------


def blocked_status_reconcile(*, local_uuids: Iterable[str] | None = None) -> list[dict]:
    """Set `blocked` / `open` on the local issues with remote blockers (those of `local_uuids`, or all) as
    their blockers say. Returns one {id, uuid, from, to, reason} per issue changed. Safe to run at any time
    and twice; it writes only when a status must change.

    Tracker writes take the file lock and then their own transaction, so they must not run inside another
    one: called inside a transaction, the reconcile runs after its commit (and returns [])."""
    uuids = None if local_uuids is None else sorted(set(local_uuids))
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _reconcile_quietly(uuids))
        return []
    return _reconcile(uuids)


def _reconcile_quietly(uuids: list[str] | None) -> None:
    try:
        _reconcile(uuids)
    except Exception:  # the periodic reconcile repairs whatever this one could not do
        logger.exception("could not reconcile the blocked status of %s", uuids or "every issue")


def _reconcile(uuids: list[str] | None) -> list[dict]:
    from tracker import services as tracker
    from tracker.sync import data_problems

    if data_problems():
        return []  # writes wait until the file is fixed; the periodic reconcile comes back then
    blockers = remote_blockers(local_uuids=uuids)
    if not blockers:
        return []
    issues = Entity.objects.filter(uuid__in=list(blockers), kind=EntityKind.ISSUE, status__in=_MANAGED)
    changes = []
    for issue in issues:
        refs = blockers[issue.uuid]
        still_open = [r for r in refs if blocker_is_open(r)]
        if issue.status == IssueStatus.OPEN and still_open:
            target = IssueStatus.BLOCKED
            reason = f"remote blocker open: {', '.join(r.canonical_ref for r in still_open)}"
        elif issue.status == IssueStatus.BLOCKED and not still_open and not local_open_blockers(issue):
            target = IssueStatus.OPEN
            closed = sorted(refs, key=_updated_at, reverse=True)
            reason = f"remote blocker closed: {closed[0].canonical_ref}"
        else:
            continue
        try:
            tracker.issue_update(issue=issue.uuid, actor=f"sudocode-fed ({reason})", status=target, from_remote=True)
        except Exception as exc:  # one issue that cannot be written must not stop the others
            logger.warning("could not set %s %s: %s", issue.sudocode_id, target, exc)
            continue
        changes.append(
            {"id": issue.sudocode_id, "uuid": issue.uuid, "from": issue.status, "to": str(target), "reason": reason}
        )
        logger.info("%s: %s -> %s (%s)", issue.sudocode_id, issue.status, target, reason)
    return changes


def _updated_at(ref: CrossRepoReference) -> str:
    return str((ref.cached_data or {}).get("updated_at") or "")


# --- why is it blocked? ------------------------------------------------------------------------------------


def why_blocked_target(*, ref: str) -> Entity | list[CrossRepoReference]:
    """What `ref` names: a local issue (id, uuid, or our own canonical ref "org/repo#id"), or the references
    we hold to a remote entity ("org/other#id"). Entity.DoesNotExist when it is neither."""
    from tracker.selectors import entity_get

    repo, sep, target_id = ref.rpartition("#")
    own = identity.repo_path(identity.local_url()) if identity.local_url() else ""
    if not sep or (own and repo.lower() == own.lower()):
        return entity_get(kind=EntityKind.ISSUE, ref=target_id if sep else ref)
    refs = list(
        CrossRepoReference.objects.filter(canonical_ref__iexact=ref).select_related("remote_repo")
        or CrossRepoReference.objects.filter(repo__iexact=repo, remote_id__iexact=target_id).select_related(
            "remote_repo"
        )
    )
    if not refs:
        raise Entity.DoesNotExist(
            f"no issue {ref!r} here, and no issue of this repository references it: "
            "give a local issue id, or the org/repo#id of a remote issue one of ours references"
        )
    return refs


def why_blocked(*, entity: Entity | str) -> dict[str, Any]:
    """Why an issue is blocked: its open local blockers (and theirs, down the chain), and its remote blockers
    with their last known status and how fresh that is. `entity` may also be a ref (see why_blocked_target),
    including a remote entity's "org/repo#id": then it says what we know of it and which of our issues it
    blocks. The dict has a `text` for the CLI."""
    from remotes.services import references_rebuild
    from remotes.sync import entity_cross_repo

    if isinstance(entity, str):
        references_rebuild()  # a remote ref is looked up among the references: make them current
        remote = _remote_named(entity)
        if remote is not None:
            result = _why_remote_asked(entity, remote)
            result["text"] = "\n".join(_text_remote(result))
            return result
    target = why_blocked_target(ref=entity) if isinstance(entity, str) else entity
    if isinstance(target, Entity):
        # Its references, current and refreshed when stale (as showing the issue does); that may unblock it.
        entity_cross_repo(entity=target)
        target = Entity.objects.get(pk=target.pk)
        result = _why_local(target, seen=set(), depth=0)
        result["text"] = "\n".join(_text_local(result, indent=""))
    else:
        result = _why_remote(target)
        result["text"] = "\n".join(_text_remote(result))
    return result


def _why_local(entity: Entity, *, seen: set[str], depth: int) -> dict[str, Any]:
    from remotes.selectors import reference_summary
    from tracker.selectors import entity_detail

    seen.add(entity.uuid)
    detail = entity_detail(entity)
    local = []
    for edge in detail["blocked_by"]:
        item = {**edge, "open": edge.get("status") not in (IssueStatus.CLOSED, None)}
        if item["open"] and edge.get("status") == IssueStatus.BLOCKED and depth < _CHAIN_DEPTH:
            other = Entity.objects.filter(sudocode_id=edge["id"], kind=edge["kind"]).first()
            if other is not None and other.uuid not in seen:
                item["blocked_by"] = _why_local(other, seen=seen, depth=depth + 1)
        local.append(item)
    remote = []
    for ref in remote_blockers(local_uuids=[entity.uuid]).get(entity.uuid, []):
        summary = reference_summary(ref)
        data = ref.cached_data or {}
        item = {**summary, "open": blocker_is_open(ref), "deleted": bool(data.get("deleted"))}
        item["note"] = _remote_note(ref, summary)
        remote.append(item)
    open_count = sum(1 for b in local if b["open"]) + sum(1 for b in remote if b["open"])
    return {
        "id": entity.sudocode_id,
        "uuid": entity.uuid,
        "ref": identity.canonical_ref(entity.sudocode_id),
        "title": entity.title,
        "status": entity.status,
        "blocked": open_count > 0,
        "open_blockers": open_count,
        "local_blockers": local,
        "remote_blockers": remote,
    }


def _remote_note(ref: CrossRepoReference, summary: dict) -> str:
    data = ref.cached_data or {}
    where = ref.remote_repo.url if ref.remote_repo else ref.repo
    if ref.remote_repo is None:
        from remotes.selectors import ambiguity, remotes_for_repo

        matches = remotes_for_repo(ref.repo)
        if len(matches) > 1:
            return ambiguity(ref.repo, matches)
        return f"{ref.repo} is not a known remote: add it (`sudocode-fed remote add`) to learn its status"
    if data.get("deleted"):
        return f"deleted in {where}; remove the relationship if it no longer blocks this issue"
    if summary["status"] is None:
        return f"status unknown ({summary['error'] or 'not fetched yet'}); counted as open"
    if summary["status"] == IssueStatus.BLOCKED:
        return f"itself blocked in {where}; what blocks it is known there (`sudocode-fed issue why-blocked` on it)"
    if summary["freshness"] != "fresh":
        return f"last known status, fetched {summary['last_fetched_at'] or 'never'}"
    return ""


def _why_remote(refs: list[CrossRepoReference]) -> dict[str, Any]:
    from remotes.selectors import reference_summary

    first = refs[0]
    summary = reference_summary(first)
    local = {r.local_uuid: r.relationship_type for r in refs}
    entities = {e.uuid: e for e in Entity.objects.filter(uuid__in=list(local))}
    return {
        **summary,
        "remote": True,
        "blocked": summary["status"] == IssueStatus.BLOCKED,
        "note": _remote_note(first, summary),
        "referenced_by": [
            {
                "id": entities[u].sudocode_id,
                "title": entities[u].title,
                "status": entities[u].status or None,
                "type": rel,
                "blocks_it": rel in REMOTE_BLOCKING,
            }
            for u, rel in local.items()
            if u in entities
        ],
    }


ASK_TIMEOUT = 5.0  # seconds to wait for a remote explaining its own issue's blockers


def _remote_named(ref: str):
    """The remote a ref "org/repo#id" points into, when it is a known remote (not this repository)."""
    from remotes.models import RemoteRepo
    from remotes.selectors import remote_get

    repo, sep, _ = ref.rpartition("#")
    own = identity.repo_path(identity.local_url()) if identity.local_url() else ""
    if not sep or (own and repo.lower() == own.lower()):
        return None
    try:
        return remote_get(url=repo)
    except RemoteRepo.DoesNotExist:
        return None


def _why_remote_asked(ref: str, remote) -> dict[str, Any]:
    """A remote issue explained by its own node (issue 13): what we hold of it (the references of our issues),
    then its blockers as that node tells them (`blocked_by`, one query). Entity.DoesNotExist when we hold no
    reference to it and the remote does not show it to us (or cannot be asked)."""
    from remotes.client import RemoteError
    from remotes.sync import remote_query

    repo, _, remote_id = ref.rpartition("#")
    refs = list(
        CrossRepoReference.objects.filter(repo__iexact=repo, remote_id__iexact=remote_id).select_related("remote_repo")
        or CrossRepoReference.objects.filter(remote_repo=remote, remote_id__iexact=remote_id).select_related(
            "remote_repo"
        )
    )
    body = {"entity": "issue", "filters": {"ids": [remote_id]}, "include": ["blocked_by"], "limit": 1}
    answer, error = None, None
    try:
        page = remote_query(remote=remote, query=body, timeout=ASK_TIMEOUT, retries=0)
        answer = next(iter(page.get("results") or []), None)
    except RemoteError as exc:
        error = str(exc)
    if not refs and answer is None:
        why = f"{remote.url} could not be asked: {error}" if error else f"{remote.url} does not show it to us"
        raise Entity.DoesNotExist(f"no issue {ref!r} is referenced here, and {why}")
    if refs:
        result = _why_remote(refs)
    else:
        result = {"ref": f"{repo}#{remote_id}", "remote": True, "referenced_by": [], "note": "", "freshness": "fresh",
                  "last_fetched_at": None, "status": None, "title": None}  # fmt: skip
    if answer is not None:  # what its node says now beats our cached copy
        result.update(status=answer.get("status"), title=answer.get("title"), freshness="fresh")
        result["blocked"] = answer.get("status") == IssueStatus.BLOCKED
        if result["note"].startswith("itself blocked"):
            result["note"] = ""
    result["their_blockers"] = answer.get("blocked_by") if answer is not None else None
    result["asked_error"] = error
    return result


def _describe_remote(b: dict) -> str:
    status = b["status"] or "status unknown"
    title = f' - "{b["title"]}"' if b["title"] else ""
    fetched = (
        b["freshness"] if b["freshness"] == "fresh" else f"{b['freshness']}, fetched {b['last_fetched_at'] or 'never'}"
    )
    return f"{b['ref']} ({status}){title} [remote, {fetched}]"


def _text_local(result: dict, *, indent: str) -> list[str]:
    head = f'{indent}{result["id"]} ({result["status"]}) - "{result["title"]}"'
    local, remote = result["local_blockers"], result["remote_blockers"]
    if not local and not remote:
        return [f"{head} has no blockers."]
    if not result["blocked"]:
        soon = " (sudocode-fed sets it open at its next reconcile)" if result["status"] == "blocked" and remote else ""
        return (
            [f"{head} is not blocked: every blocker is closed{soon}."]
            + [f"{indent}  - {_describe_edge(b)}" for b in local]
            + [f"{indent}  - {_describe_remote(b)}" for b in remote]
        )
    lines = [f"{head} is blocked by:"]
    for b in local:
        if not b["open"]:
            continue
        lines.append(f"{indent}  - {_describe_edge(b)} [local]")
        if "blocked_by" in b:
            lines += _text_local(b["blocked_by"], indent=indent + "      ")[1:]
    for b in remote:
        if not b["open"]:
            continue
        lines.append(f"{indent}  - {_describe_remote(b)}")
        if b["note"]:
            lines.append(f"{indent}      {b['note']}")
    closed = [b for b in local if not b["open"]] + [b for b in remote if not b["open"]]
    if closed:
        lines.append(f"{indent}  (closed: {', '.join(b.get('ref') or b['id'] for b in closed)})")
    return lines


def _describe_edge(b: dict) -> str:
    if not b["exists"]:
        return f"{b['id']} (not in this repository)"
    return f'{b["id"]} ({b["status"] or b["kind"]}) - "{b["title"]}"'


def _text_remote(result: dict) -> list[str]:
    lines = [f"{_describe_remote(result)}"]
    theirs = result.get("their_blockers")
    if theirs is not None:
        still = [b for b in theirs if b["open"]]
        lines[0] += " is blocked by:" if still else " has no open blockers."
        for b in still:
            title = f' - "{b["title"]}"' if b.get("title") else ""
            lines.append(f"  - {b['ref']} ({b.get('status') or 'status unknown'}){title}")
            if b.get("estimated_completion"):
                lines.append(f"    Estimated completion: {b['estimated_completion']}")
    elif result.get("asked_error"):
        lines.append(f"  Could not ask its node what blocks it: {result['asked_error']}")
    if result["note"]:
        lines.append(f"  {result['note']}")
    blocks = [r for r in result["referenced_by"] if r["blocks_it"]]
    if blocks:
        lines.append("  It blocks here:")
        lines += [f'    - {r["id"]} ({r["status"] or "spec"}) - "{r["title"]}"' for r in blocks]
    return lines
