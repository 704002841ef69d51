"""`remote create-issue`, `requests ...`, `request ...`, `audit list` and `audit stats`: thin callers of
requests_app and audit."""

from __future__ import annotations

import argparse
import json
import sys

from sudocode_cli import runtime
from sudocode_cli.errors import UsageError
from sudocode_cli.output import print_json, print_table


def create_issue(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from remotes.selectors import remote_get
    from requests_app.services import request_send

    remote = remote_get(url=args.url)
    data = {"title": args.title, "description": args.description, "priority": args.priority, "labels": args.labels}
    request = request_send(
        remote=remote,
        operation="create_issue",
        data=data,
        requester=args.requester or runtime.actor(lay),
        auto_approve=args.auto_approve,
        origin=args.discovered_from,
    )
    if args.format == "json":
        print_json(_summary(request))
        return 0
    print(f"→ Request ID: {request.request_id}")
    print(f"→ Status: {status_line(request)}")
    if request.approval_url and request.status == "pending":
        print(f"→ Approval URL: {request.approval_url}")
    return print_outcome(request)


def print_outcome(request) -> int:
    """The end of what `remote create-issue` and `remote delegate` print; their exit code."""
    if request.decision:  # the other node's policy, as its answer said
        print(f"→ Their policy: {_decision_line(request.decision)}")
    created = (request.result or {}).get("created")
    if created:
        print(f"→ Created: {created['canonical_ref']}")
    if not request.sent:
        print(f"→ Not delivered yet ({request.last_error}); it is sent again while `sudocode-fed serve` runs")
    return 0 if request.status != "failed" else 1


def status_line(request) -> str:
    """An outgoing request's or delegation's state, for `remote create-issue` and `remote delegate`."""
    name = request.to_repo.rsplit("/", 1)[-1]
    if request.status == "pending":
        if not request.sent:
            return "Not sent yet (will retry)"
        return "Pending acceptance" if request.is_delegation else f"Pending approval from {name} maintainers"
    if request.status == "completed" and request.is_delegation:
        return "Accepted"
    if request.status == "failed":
        return f"Failed: {request.last_error}"
    if request.status == "rejected":
        return f"Rejected: {request.rejection_reason}"
    return request.status.capitalize()


def matching(qs, args: argparse.Namespace):
    """`qs` narrowed to --direction and --status when given (the `requests` and `delegates` listings)."""
    if getattr(args, "direction", None):
        qs = qs.filter(direction=args.direction)
    if getattr(args, "status", None):
        qs = qs.filter(status=args.status)
    return qs


def _summary(request) -> dict:
    from requests_app.selectors import request_summary

    return request_summary(request)


def pending(args: argparse.Namespace) -> int:
    args.direction, args.status = "incoming", "pending"
    return list_(args)


def list_(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from requests_app.models import CrossRepoRequest

    rows = [_summary(r) for r in matching(CrossRepoRequest.objects.all(), args)[: args.limit]]
    if args.format == "json":
        print_json(rows)
        return 0
    if not rows:
        sys.stderr.write("No requests match.\n")
        return 0
    for r in rows:
        other = r["from"] if r["direction"] == "incoming" else r["to"]
        if r["direction"] == "incoming":
            print(f'→ [{r["request_id"]}] {other} requests: "{r["title"]}" ({r["status"]})')
        else:
            print(f'→ [{r["request_id"]}] you asked {other}: "{r["title"]}" ({r["status"]})')
        print(f"  {'From' if r['direction'] == 'incoming' else 'To'}: {other}")
        print(f"  {'Received' if r['direction'] == 'incoming' else 'Sent'}: {r['created_at']}")
        print(f"  Requested by: {r['requester'] or 'unknown'}")
        if r["status"] == "rejected":
            print(f"  Reason: {r['rejection_reason'] or 'none given'}")
        created = (r["result"] or {}).get("created") or {}
        if created.get("canonical_ref"):
            print(f"  Created: {created['canonical_ref']}{' ' + created['url'] if created.get('url') else ''}")
        if r["direction"] == "outgoing" and r["status"] == "pending" and r["approval_url"]:
            print(f"  Decided at: {r['approval_url']}")
        print(f"  Priority: {r['priority'] if r['priority'] is not None else 2}")
        print(f"  Labels: {', '.join(r['labels']) or 'none'}")
        if r["decision"]:
            print(f"  Policy: {_decision_line(r['decision'])}")
    return 0


def _decision_line(decision: dict) -> str:
    rule = decision.get("rule")
    return f"{decision['reason']}" + (f" [{rule}]" if rule and rule not in decision["reason"] else "")


def show(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    request = _find(args.request_id)
    if args.format == "json":
        print_json(_summary(request) | {"payload": request.payload})
        return 0
    info = _summary(request)
    if info["decision"]:
        info["decision"] = _decision_line(info["decision"])
    print_fields(info)
    print("Message:")
    print(json.dumps(request.payload, indent=2, ensure_ascii=False))
    return 0


def print_fields(info: dict) -> None:
    """`Key:  value` lines for `request show` and `delegate show`: lists joined, yes/no, objects as JSON; empty
    values left out."""
    for key, value in info.items():
        if value in (None, [], "", {}):
            continue
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, list):
            shown = ", ".join(map(str, value))
        elif isinstance(value, dict):
            shown = json.dumps(value, ensure_ascii=False)
        else:
            shown = value
        print(f"{key.replace('_', ' ').capitalize() + ':':<18}{shown}")


def _find(request_id: str):
    from requests_app.models import CrossRepoRequest

    found = CrossRepoRequest.objects.filter(request_id=request_id).order_by("direction").first()
    if found is None:
        raise CrossRepoRequest.DoesNotExist(f"no request {request_id!r}: see `sudocode-fed requests list`")
    return found


def approve(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from requests_app.services import request_approve

    request = request_approve(
        request_id=args.request_id,
        actor=runtime.actor(lay),
        estimated_completion=args.estimated_completion,
    )
    created = (request.result or {}).get("created")
    if request.status == "completed" and created:
        print(f"→ Created: {created['id']} in {request.to_repo.rsplit('/', 1)[-1]}")
        for rel in request.data.get("relationships") or []:
            kind = "Blocks" if rel["type"] in ("discovered-from", "blocks") else rel["type"]
            print(f"→ Relationships: {kind} {rel['remote_ref']}")
    else:
        print(f"→ {request.request_id} is {request.status}: {request.last_error or ''}".rstrip(": "))
    return 0 if request.status != "failed" else 1


def reject(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from requests_app.services import request_reject

    request = request_reject(request_id=args.request_id, actor=runtime.actor(lay), reason=args.reason or "")
    print(f"→ Rejected {request.request_id}: {request.rejection_reason}")
    return 0


def _audit_decision(entry: dict) -> str:
    decision = (entry.get("payload") or {}).get("decision") if isinstance(entry.get("payload"), dict) else None
    if not decision:
        return ""
    return f"{decision['outcome']}" + (f" by {decision['rule']}" if decision.get("rule") else "")


def audit_list(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from audit.selectors import audit_entries

    rows = audit_entries(
        direction=args.direction,
        operation=args.operation,
        status=args.status,
        remote=args.remote,
        request_id=args.request_id,
        limit=args.limit,
    )
    if args.format == "json":
        print_json(rows)
        return 0
    if not rows:
        sys.stderr.write("No audit entries match.\n")
        return 0
    print_table(
        [
            (
                r["timestamp"][:19],
                r["direction"],
                r["operation"],
                r["remote_repo"],
                r["status"],
                r["duration_ms"] if r["duration_ms"] is not None else "",
                r["request_id"] or r["error"] or "",
                _audit_decision(r),
            )
            for r in rows
        ],
        ("time", "dir", "operation", "remote", "status", "ms", "request / error", "policy"),
    )
    return 0


def audit_stats(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from audit.selectors import audit_filters
    from audit.selectors import audit_stats as stats_of

    stats = stats_of(
        **audit_filters(
            {
                "direction": args.direction,
                "operation": args.operation,
                "status": args.status,
                "remote": args.remote,
                "since": args.since,
                "until": args.until,
                "correlation_id": args.correlation_id,
            }
        )
    )
    if args.format == "json":
        print_json(stats)
        return 0
    window = stats["window"]
    durations = stats["duration_ms"]
    print(f"{stats['total']} entries from {window['since'][:19]} to {(window['until'] or 'now')[:19]}")
    if durations["count"]:
        print(f"duration (ms, {durations['count']} timed): p50 {durations['p50']}  p95 {durations['p95']}  "
              f"p99 {durations['p99']}")  # fmt: skip
    for title, counts in (("operation", "by_operation"), ("status", "by_status"), ("remote", "by_remote")):
        if stats[counts]:
            print()
            print_table(list(stats[counts].items()), (title, "entries"))
    return 0


def audit_prune(args: argparse.Namespace) -> int:
    """Retention now (subscriptions.retention): what went, or with --dry-run what would go."""
    runtime.setup(args.repo)
    from audit.selectors import audit_moment
    from subscriptions.retention import retention_prune

    now = None
    if args.now:
        try:
            now = audit_moment(args.now)
        except ValueError:
            raise UsageError(f"--now: {args.now[:40]!r} is not an ISO 8601 date or time (2026-11-30T09:00Z)") from None
    result = retention_prune(now=now, dry_run=args.dry_run)
    if args.format == "json":
        print_json(result)
        return 0
    verb = "would go" if args.dry_run else "pruned"
    events, received, audit = result["events"], result["received_events"], result["audit"]
    print(f"outbox events {verb}: {events['count']} (older than {events['before'][:19]}, seq <= {events['up_to_seq']})")
    print(f"received events {verb}: {received['count']} (older than {received['before'][:19]})")
    span = f", {audit['oldest'][:19]} to {audit['newest'][:19]}" if audit["count"] else ""
    print(f"audit entries {verb}: {audit['count']} (older than {audit['before'][:19]}{span})")
    if audit["archive"]:
        print(f"archived to {audit['archive']}")
    return 0
