"""`remote delegate`, `delegates pending|list` and `delegate show|accept|reject`: thin callers of
requests_app (a delegation is a request of type `delegate`; requests_app.delegation holds its particulars)."""

from __future__ import annotations

import argparse
import json
import sys

from sudocode_cli import runtime
from sudocode_cli.commands.requests import (
    _decision_line,
    _summary,
    matching,
    print_fields,
    print_outcome,
    status_line,
)
from sudocode_cli.output import print_json


def delegate(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from remotes.selectors import remote_get
    from requests_app.delegation import task_for
    from requests_app.services import delegation_send

    remote = remote_get(url=args.url)
    task = task_for(
        kind=args.type,
        title=args.title,
        description=args.description or None,
        requirements=args.requirements,
        context=args.context,
        origin=args.origin,
        hop_limit=args.hop_limit,
        priority=args.priority,
        labels=args.labels,
    )
    request = delegation_send(remote=remote, task=task, requester=args.requester or runtime.actor(lay))
    if args.format == "json":
        print_json(_delegation(request))
        return 0
    name = remote.url.split("/", 1)[-1]
    print(f"→ Delegation sent to {name}" if request.sent else f"→ Delegation recorded for {name}")
    print(f"→ ID: {request.request_id}")
    print(f"→ Status: {status_line(request)}")
    return print_outcome(request)


def _delegation(request) -> dict:
    task = request.data
    context = task.get("context") or {}
    info = _summary(request)
    info.update(
        {
            "entity_type": task.get("type"),
            "description": task.get("description"),
            "requirements": task.get("requirements") or {},
            "context": {k: v for k, v in context.items() if k not in ("chain", "hop_limit", "triggered_by")},
            "chain": context.get("chain") or [],
            "hop_limit": context.get("hop_limit"),
            "accepted": request.status == "completed",
        }
    )
    return info


def pending(args: argparse.Namespace) -> int:
    args.direction, args.status = "incoming", "pending"
    return list_(args)


def list_(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from requests_app.models import CrossRepoRequest, RequestType

    delegations = CrossRepoRequest.objects.filter(request_type=RequestType.DELEGATE)
    rows = [_delegation(r) for r in matching(delegations, args)[: args.limit]]
    if args.format == "json":
        print_json(rows)
        return 0
    if not rows:
        sys.stderr.write("No delegations match.\n")
        return 0
    for r in rows:
        incoming = r["direction"] == "incoming"
        other = r["from"] if incoming else r["to"]
        who = other.rsplit("/", 1)[-1].capitalize()
        if incoming:
            print(f'→ [{r["request_id"]}] {who} requests: "{r["title"]}" ({r["status"]})')
        else:
            print(f'→ [{r["request_id"]}] we asked {who}: "{r["title"]}" ({r["status"]})')
        print(f"  {'From' if incoming else 'To'}: {other}")
        print(f"  Type: {r['entity_type']}")
        if r["context"]:
            print(f"  Context: {json.dumps(r['context'], ensure_ascii=False)}")
        if r["chain"]:
            print(f"  Chain: {' -> '.join(r['chain'])}")
        if r["decision"]:
            print(f"  Policy: {_decision_line(r['decision'])}")
    return 0


def _find(request_id: str):
    from requests_app.models import CrossRepoRequest, RequestType

    found = (
        CrossRepoRequest.objects.filter(request_id=request_id, request_type=RequestType.DELEGATE)
        .order_by("direction")
        .first()
    )
    if found is None:
        raise CrossRepoRequest.DoesNotExist(f"no delegation {request_id!r}: see `sudocode-fed delegates list`")
    return found


def show(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    request = _find(args.request_id)
    info = _delegation(request)
    if args.format == "json":
        print_json(info | {"payload": request.payload})
        return 0
    if info["decision"]:
        info["decision"] = _decision_line(info["decision"])
    if info["chain"]:
        info["chain"] = " -> ".join(info["chain"])
    print_fields(info)
    return 0


def accept(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from requests_app.services import request_approve

    request = request_approve(
        request_id=_find(args.request_id).request_id,
        actor=runtime.actor(lay),
        assignee=args.assignee,
        estimated_completion=args.estimated_completion,
    )
    created = (request.result or {}).get("created")
    if request.status == "completed" and created:
        print(f"→ Created: {created['id']} in {request.to_repo.rsplit('/', 1)[-1]}")
        task_context = request.data.get("context") or {}
        origin = task_context.get("triggered_by")
        print(f"→ Bidirectional link established{f' with {origin}' if origin else ''}")
    else:
        print(f"→ {request.request_id} is {request.status}: {request.last_error or ''}".rstrip(": "))
    return 0 if request.status != "failed" else 1


def reject(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from requests_app.services import request_reject

    request = request_reject(
        request_id=_find(args.request_id).request_id, actor=runtime.actor(lay), reason=args.reason or ""
    )
    print(f"→ Rejected {request.request_id}: {request.rejection_reason}")
    return 0
