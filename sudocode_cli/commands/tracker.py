"""`issue ...` and `spec ...`: thin callers of tracker.services and tracker.selectors."""

from __future__ import annotations

import argparse
import sys

from sudocode_cli import runtime
from sudocode_cli.output import print_json, print_table

REL_TYPES = ("blocks", "depends-on", "implements", "references", "related", "discovered-from")


def _relationships(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(rel, target) for rel in REL_TYPES for target in getattr(args, f"rel_{rel.replace('-', '_')}", [])]


def _given(args: argparse.Namespace, *names: str) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def issue_create(args: argparse.Namespace) -> int:
    return _create(args, "issue")


def spec_create(args: argparse.Namespace) -> int:
    return _create(args, "spec")


def _create(args: argparse.Namespace, kind: str) -> int:
    lay = runtime.setup(args.repo)
    from tracker import services

    fields = _given(args, "content", "priority", "tags", "parent", "sudocode_id")
    if kind == "issue":
        fields |= _given(args, "status", "assignee")
        entity = services.issue_create(
            title=args.title, actor=runtime.actor(lay), relationships=_relationships(args), **fields
        )
    else:
        entity = services.spec_create(
            title=args.title, actor=runtime.actor(lay), relationships=_relationships(args), **fields
        )
    return _show_entity(entity, args.format, created=True)


def issue_update(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from tracker import services

    fields = _given(args, "title", "content", "priority", "tags", "status", "assignee", "archived")
    entity = services.issue_update(
        issue=args.ref, actor=runtime.actor(lay), add_relationships=_relationships(args), **fields
    )
    return _show_entity(entity, args.format)


def issue_close(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from tracker import services

    entity = services.issue_close(issue=args.ref, actor=runtime.actor(lay))
    return _show_entity(entity, args.format)


def issue_show(args: argparse.Namespace) -> int:
    return _show(args, "issue")


def spec_show(args: argparse.Namespace) -> int:
    return _show(args, "spec")


def _show(args: argparse.Namespace, kind: str) -> int:
    runtime.setup(args.repo)
    from tracker.selectors import entity_get

    return _show_entity(entity_get(kind=kind, ref=args.ref), args.format)


def _show_entity(entity, fmt: str, *, created: bool = False) -> int:
    from remotes.sync import entity_detail_with_cross_repo
    from requests_app import delegation
    from tracker.selectors import open_blockers

    detail = entity_detail_with_cross_repo(entity=entity)
    cross_repo = detail["cross_repo"]
    if fmt == "json":
        print_json(detail)
        return 0
    w = sys.stdout.write
    if created:
        w(f"Created {entity.kind} {entity.sudocode_id}\n")
    w(f"{entity.kind.capitalize()}: {entity.sudocode_id} - {entity.title}\n")
    if entity.is_issue:
        # detail's status: showing the issue may just have refreshed its remote blockers and unblocked it.
        w(f"  Status: {detail.get('status', entity.status)}    Priority: {entity.priority}\n")
    else:
        w(f"  Priority: {entity.priority}    File: {entity.file_path}\n")
    if detail["tags"]:
        w(f"  Tags: {', '.join(detail['tags'])}\n")
    if entity.parent_id:
        w(f"  Parent: {entity.parent_id}\n")
    w(f"  Created: {entity.created_at}    Updated: {entity.updated_at}\n")
    if entity.archived:
        w("  Archived\n")
    provenance = delegation.provenance(entity)
    if provenance:
        origin = f" for {provenance['canonical_ref']}" if provenance.get("canonical_ref") else ""
        w(f"  Delegated by: {provenance['repo']}{origin} (delegation {provenance.get('request_id', '?')})\n")
        if provenance.get("chain"):
            w(f"  Delegation chain: {' -> '.join(provenance['chain'])} -> here\n")
    if entity.is_issue:
        blockers = open_blockers(detail)
        # A cross-repo blocker whose status we do not know (an undeclared remote, never fetched) is not "none".
        unknown = [r for r in cross_repo if r["type"] in ("blocked-by", "depends-on") and not r["status"]]
        if detail["blocked_by"]:
            if blockers:
                note = ""
            elif unknown:
                note = f" (none open here; {len(unknown)} cross-repo blocker(s) of unknown status, under Cross-repo)"
            else:
                note = " (none open - ready to proceed!)"
            w("  Blocked by:" + note + "\n")
            for b in detail["blocked_by"]:
                w(f"    - {_edge(b)}\n")
    for title, edges in (
        ("Relationships", detail["relationships"]),
        ("Referenced by", detail["incoming_relationships"]),
    ):
        if edges:
            w(f"  {title}:\n")
            for e in edges:
                w(f"    - {e['type']} {_edge(e)}\n")
    if cross_repo:
        w("  Cross-repo:\n")
        for ref in cross_repo:
            w(f"    - {ref['type']} {_cross_ref(ref)}\n")
    local_refs = [r for r in detail["references"] if not r["repo"]]  # cross-repo ones are shown above
    if local_refs:
        w("  References in content:\n")
        for r in local_refs:
            where = f'({r["status"]}) - "{r["title"]}"' if r.get("exists") else "(not in this repository)"
            w(f"    - {(r['type'] + ' ') if r['type'] else ''}{r['ref']} {where}\n")
    if entity.content:
        w("\n" + entity.content.rstrip() + "\n")
    return 0


def _cross_ref(ref: dict) -> str:
    if ref["remote"] is None:
        return f"{ref['ref']} (unknown remote {ref['repo']}: `sudocode-fed remote add`)"
    if ref["title"] is None:
        return f"{ref['ref']} (not fetched: {ref['error'] or 'pending'})"
    when = ref["last_fetched_at"] or "never"
    freshness = "fresh" if ref["freshness"] == "fresh" else f"{ref['freshness']}, fetched {when}"
    down = "; its node is unreachable now" if ref["remote_sync_status"] == "unreachable" else ""
    status = f" ({ref['status']})" if ref["status"] else ""  # specs have none
    return f'{ref["ref"]}{status} - "{ref["title"]}" [{freshness}{down}]'


def _edge(e: dict) -> str:
    if not e["exists"]:
        return f"{e['id']} (not in this repository)"
    status = f" ({e['status']})" if e["status"] else ""
    return f'{e["id"]}{status} - "{e["title"]}"'


def issue_why_blocked(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.blocking import why_blocked
    from sudocode_cli.errors import UsageError
    from tracker.models import Entity

    try:
        result = why_blocked(entity=args.ref)
    except Entity.DoesNotExist as exc:
        raise UsageError(str(exc)) from None
    if args.format == "json":
        print_json(result)
    else:
        sys.stdout.write(result["text"] + "\n")
    return 0


def issue_list(args: argparse.Namespace) -> int:
    return _list(args, "issue")


def spec_list(args: argparse.Namespace) -> int:
    return _list(args, "spec")


def _list(args: argparse.Namespace, kind: str) -> int:
    runtime.setup(args.repo)
    from tracker.selectors import entity_list, entity_summaries

    archived = None if args.all else args.archived
    qs = entity_list(
        kind=kind,
        status=getattr(args, "status", None),
        priority=args.priority,
        tags=args.tags,
        archived=archived,
        search=args.search,
    )
    if args.limit is not None:
        qs = qs[: max(args.limit, 0)]
    rows = entity_summaries(qs)
    if args.format == "json":
        print_json(rows)
        return 0
    if not rows:
        sys.stderr.write(f"No {kind}s match.\n")
        return 0
    if kind == "issue":
        print_table(
            [(r["id"], r["status"], r["priority"], ",".join(r["tags"]), r["title"]) for r in rows],
            ("id", "status", "p", "tags", "title"),
        )
    else:
        print_table(
            [(r["id"], r["priority"], ",".join(r["tags"]), r["title"]) for r in rows],
            ("id", "p", "tags", "title"),
        )
    return 0


def search(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.search import search_everywhere
    from sudocode_cli.errors import UsageError
    from sudocode_cli.output import note, warn

    if not args.text.strip() or not any(ch.isalnum() for ch in args.text):
        raise UsageError('give words to search for, e.g. sudocode-fed search "authentication bug"')
    if not 1 <= args.limit <= 500:
        raise UsageError(f"--limit must be from 1 to 500, not {args.limit}")
    kinds = [args.entity] if args.entity else ["issue", "spec"]
    answer = search_everywhere(text=args.text, kinds=kinds, all_repos=args.all_repos, limit=args.limit)
    for remote in answer["remotes"]:
        if not remote["ok"]:
            warn(f"{remote['url']} was not searched: {remote['error']}")
    if args.format == "json":
        print_json(answer)
        return 0
    if not answer["results"]:
        note(f"Nothing matches {args.text!r}" + ("" if args.all_repos else " here (--all-repos: everywhere)"))
        return 0
    print_table(
        [(r["canonical_ref"], r["status"] or r["kind"], r["title"], r["snippet"]) for r in answer["results"]],
        ("ref", "status", "title", "matched"),
    )
    return 0
