"""`policy check` and `policy test`: the config's rules checked, and a dry run of the decision function
(requests_app.policy.evaluate) for a made-up message. Nothing is recorded."""

from __future__ import annotations

import argparse
import os
import sys

from sudocode_cli import runtime
from sudocode_cli.errors import UsageError
from sudocode_cli.output import print_json


def _load(args: argparse.Namespace):
    """The config to judge by: --file, or the repository's. A ConfigError is exit 2 with its message."""
    from federation_site.config import ConfigError, load_config
    from federation_site.node import REPO_ENV, RepoLayout, RepoNotFound, find_repo

    if args.file:
        path = args.file
    else:
        try:
            path = RepoLayout(find_repo(explicit=args.repo or os.environ.get(REPO_ENV) or None)).config_path
        except RepoNotFound as exc:
            raise UsageError(str(exc)) from None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _rules(config) -> list[dict]:
    from requests_app.policy import rules_of

    rules = rules_of(config)
    listed = [{"rule": r.path, "kind": r.kind, "condition": str(r.condition)} for r in (*rules.require, *rules.approve)]
    for path, own in rules.by_remote.values():
        listed.append({"rule": path, "kind": "approve", "condition": " && ".join(str(r.condition) for r in own)})
    if rules.delegate is not None:
        listed.append({"rule": rules.delegate.path, "kind": "approve", "condition": str(rules.delegate.condition)})
    return listed


def check(args: argparse.Namespace) -> int:
    config = _load(args)  # before Django: a broken file is this command's answer, not a start-up failure
    runtime.setup(args.repo, sync=False)
    rules = _rules(config)
    if args.format == "json":
        print_json({"valid": True, "rules": rules})
        return 0
    print(f"→ {args.file or 'federation.config.json'} is valid: {len(rules)} policy rule(s)")
    for rule in rules:
        print(f"  {rule['kind']:<8}{rule['rule']}: {rule['condition']}")
    return 0


def test(args: argparse.Namespace) -> int:
    config = _load(args)
    runtime.setup(args.repo)
    from remotes.models import RemoteRepo
    from remotes.policy import Caller, PermissionDenied, RateLimited
    from requests_app import policy

    declared = config.remote(args.sender)
    row = RemoteRepo.objects.filter(url=declared.url if declared else args.sender).first()
    if declared is not None:  # the file decides the trust level (it may be another file than the node's)
        row = row or RemoteRepo(url=declared.url)
        row.trust_level = declared.trust_level
    caller = Caller(row) if row is not None else Caller()
    from protocol import messages
    from requests_app import delegation

    metadata = {"request_id": "dry-run", "requester": "policy test", "auto_approve": args.auto_approve}
    data = dict(args.data)
    if args.operation == "delegate":
        data.setdefault("type", "spec")
        data.setdefault("title", "(dry run)")
        message = {"type": "delegate", "from": args.sender, "task": data, "metadata": metadata}
    else:
        if args.operation.startswith("create_"):
            data.setdefault("title", "(dry run)")
        if args.operation == "update_issue":
            data.setdefault("id", "i-dryrun")
        message = {"type": "mutate", "from": args.sender, "operation": args.operation, "data": data}
        message["metadata"] = metadata
    try:  # the data as the real endpoint would take it: a message it refuses is refused here too
        parsed = messages.parse_message(message)
    except messages.MessageError as exc:
        raise UsageError(f"--data is not what the endpoint takes: {exc}") from None
    data = messages.dump(parsed.task if args.operation == "delegate" else parsed.data)
    try:
        if args.operation == "delegate":
            delegation.chain_check(data)
        decision = policy.evaluate(caller, args.operation, data, config, metadata=metadata)
        result = {"outcome": decision.outcome, **decision.as_json()}
    except PermissionDenied as exc:
        result = {"outcome": "refused", "http_status": 403, "reason": str(exc)}
    except RateLimited as exc:
        result = {"outcome": "refused", "http_status": 429, "reason": str(exc), "retry_after": exc.retry_after}
    result = {"from": args.sender, "trust_level": caller.trust_level, "operation": args.operation, **result}
    if args.format == "json":
        print_json(result)
        return 0
    words = {"approve": "approved at once", "human": "waits for a maintainer", "refused": "refused"}
    sys.stdout.write(f"→ Decision: {words[result['outcome']]}\n")
    if result.get("rule"):
        condition = f"  ({result['condition']})" if result.get("condition") else ""
        sys.stdout.write(f"→ Rule: {result['rule']}{condition}\n")
    elif result["outcome"] != "refused":
        sys.stdout.write("→ Rule: none matched\n")
    sys.stdout.write(f"→ Why: {result['reason']}\n")
    sys.stdout.write(f"→ Caller: {args.sender} (trust level {caller.trust_level})\n")
    return 0
