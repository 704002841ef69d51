"""`remote ...`: declare, inspect, sync and query other nodes. Thin callers of remotes.services/sync."""

from __future__ import annotations

import argparse
import json
import sys

from sudocode_cli import runtime
from sudocode_cli.errors import UsageError
from sudocode_cli.output import note, print_json, print_table, warn


def _remote(url: str):
    from remotes.selectors import remote_get

    return remote_get(url=url)


def add(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from remotes import services

    remote, key = services.remote_add(
        url=args.url,
        actor=runtime.actor(lay),
        trust_level=args.trust,
        endpoint=args.endpoint,
        display_name=args.name,
        token=args.token,
        discover=not args.no_discover,
        transport=args.transport,
        public_key=args.public_key,
        require_signatures=args.require_signatures,
    )
    print(f"Added remote {remote.url} ({remote.trust_level}), written to .sudocode/federation.config.json")
    _print_key(remote.url)
    if remote.rest_endpoint:
        state = {"synced": "reachable", "unknown": "not contacted yet"}.get(
            remote.sync_status, f"{remote.sync_status}: {remote.last_error}"
        )
        from remotes.selectors import remote_summary

        over = " over A2A 1.0" if remote_summary(remote)["transport"] == "a2a" else ""
        print(f"  Endpoint: {remote.rest_endpoint}{over} ({state})")
    else:
        print("  No endpoint yet: `sudocode-fed remote add` again with --endpoint, or edit the config")
    print(f"  API key for {remote.url} to present to this node (shown once, stored hashed):\n    {key}")
    from federation_site import identity

    print(f"  On that node: sudocode-fed remote set-token {identity.local_url()} {key}")
    return 0


def list_(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.models import RemoteRepo
    from remotes.selectors import remote_summary

    rows = [remote_summary(r) for r in RemoteRepo.objects.all()]
    if args.format == "json":
        print_json(rows)
    elif args.format == "url":
        for r in rows:
            print(r["url"])
    elif not rows:
        note("No remotes: add one with `sudocode-fed remote add <url> --endpoint URL`.")
    else:
        print_table(
            [
                (r["url"], r["trust_level"], r["sync_status"], r["last_synced_at"] or "never", r["rest_endpoint"] or "")
                for r in rows
            ],
            ("url", "trust", "sync", "last sync", "endpoint"),
        )
    return 0


def show(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.selectors import remote_summary

    remote = _remote(args.url)
    info = remote_summary(remote) | {"references": remote.references.count()}
    if args.format == "json":
        print_json(info)
        return 0
    w = sys.stdout.write
    w(f"Remote: {info['url']} - {info['display_name']}\n")
    w(f"  Trust level: {info['trust_level']}\n")
    over = " (A2A 1.0)" if info["transport"] == "a2a" else ""
    w(f"  Endpoint:    {info['rest_endpoint'] or '(none)'}{over}\n")
    w(f"  Sync:        {info['sync_status']} (last: {info['last_synced_at'] or 'never'})\n")
    if info["last_error"]:
        w(f"  Last error:  {info['last_error']}\n")
    w(f"  Calls:       {_breaker_line(info['circuit_breaker'])}\n")
    w(f"  API key:     {'issued' if info['has_api_key'] else 'none (remote rotate-key)'}\n")
    w(f"  References:  {info['references']} from this repository\n")
    caps = info["capabilities"] or {}
    if caps:
        w(f"  Operations:  {', '.join(caps.get('operations') or [])}\n")
        w(f"  It trusts us as: {caps.get('trust_level')}\n")
    return 0


def _breaker_line(breaker: dict) -> str:
    """The circuit breaker in words: "going (circuit breaker closed)", "paused after 5 failures in a row until
    ... (circuit breaker open)", "one probe call under way (circuit breaker half-open)"."""
    failures = breaker["failures"]
    if breaker["state"] == "open":
        return f"paused after {failures} failures in a row, next try at {breaker['next_try_at']} (circuit breaker open)"
    if breaker["state"] == "half_open":
        return "one probe call under way (circuit breaker half-open)"
    tail = f", {failures} failed in a row" if failures else ""
    return f"going (circuit breaker closed{tail})"


def remove(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes import services

    remote = _remote(args.url)
    services.remote_remove(remote=remote)
    print(f"Removed remote {remote.url} from .sudocode/federation.config.json; its API key no longer works.")
    return 0


def sync(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.client import RemoteError
    from remotes.models import RemoteRepo
    from remotes.sync import remote_sync

    if args.all:
        remotes = list(RemoteRepo.objects.all())
    elif args.url:
        remotes = [_remote(args.url)]
    else:
        raise UsageError("name a remote, or pass --all")
    failed = 0
    for remote in remotes:
        note(f"Syncing {remote.url} ...")
        try:
            result = remote_sync(remote=remote)
        except RemoteError as exc:
            failed += 1
            print(f"{remote.url}: unreachable ({exc}); cached data kept")
            continue
        print(f"{remote.url}: synced, {result['refreshed']} of {result['references']} references refreshed")
    return 1 if failed else 0


def set_token(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes import services

    token = args.token if args.token != "-" else sys.stdin.readline().strip()
    remote = _remote(args.url)
    name = services.remote_set_token(remote=remote, token=token)
    print(f"Stored as {name} in .sudocode/secrets.env (a running node picks it up at once).")
    if remote.rest_endpoint:
        print(f"  `sudocode-fed remote sync {remote.url}` asks it again how far it trusts us, now that it knows us.")
    return 0


def trust(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes import services

    remote = _remote(args.url)
    before = remote.trust_level
    remote = services.remote_update(remote=remote, trust_level=args.level)
    print(f"{remote.url}: trust level {before} -> {remote.trust_level} (its next message is judged at it)")
    return 0


def update(args: argparse.Namespace) -> int:
    changes = {"trust_level": args.trust, "endpoint": args.endpoint, "display_name": args.name}
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        raise UsageError("nothing to change: give --trust, --endpoint or --name")
    runtime.setup(args.repo)
    from remotes import services
    from remotes.selectors import remote_summary

    remote = _remote(args.url)
    before = remote_summary(remote)
    after = remote_summary(services.remote_update(remote=remote, **changes))
    print(f"Updated remote {remote.url} in .sudocode/federation.config.json")
    for field in ("trust_level", "rest_endpoint", "display_name"):
        if before[field] != after[field]:
            print(f"  {field.replace('_', ' ').capitalize()}: {before[field] or '(none)'} -> {after[field]}")
    return 0


def _print_key(url: str) -> None:
    from federation_site import node
    from federation_site.keys import fingerprint

    cfg = node.config()
    declared, _ = cfg.remote_index(url) if cfg else (None, None)
    if declared is None or not declared.public_key:
        print("  Signing key: none pinned (`sudocode-fed remote key URL --pin ed25519:...`)")
        return
    required = "required" if declared.require_signatures else "checked when present"
    print(f"  Signing key: {fingerprint(declared.public_key)} (signatures {required})")
    print("    Compare it with the fingerprint `sudocode-fed status` shows on that node.")


def key(args: argparse.Namespace) -> int:
    if args.pin and args.unpin:
        raise UsageError("give --pin KEY or --unpin, not both")
    runtime.setup(args.repo)
    from remotes import services

    remote = _remote(args.url)
    if args.pin or args.unpin or args.require_signatures:
        from federation_site import node

        cfg = node.config()
        declared, _ = cfg.remote_index(remote.url) if cfg else (None, None)
        pinned = args.pin or (None if args.unpin else (declared.public_key if declared else None))
        required = None if args.require_signatures is None else args.require_signatures == "on"
        services.remote_pin_key(url=remote.url, public_key=pinned, require_signatures=required)
        print(f"Updated remote {remote.url} in .sudocode/federation.config.json")
    else:
        print(f"Remote {remote.url}")
    _print_key(remote.url)
    return 0


def rotate_key(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes import services

    remote = _remote(args.url)
    key = services.remote_rotate_key(remote=remote)
    print(f"New API key for {remote.url} (shown once; the old one stops working now):\n    {key}")
    return 0


def _filters_arg(text: str | None) -> dict:
    """--filters JSON: the seed's query filters, as an object."""
    if not text:
        return {}
    try:
        filters = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--filters is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(filters, dict):
        raise UsageError('--filters must be a JSON object, e.g. \'{"labels": ["api"]}\'')
    return filters


def query(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.sync import remote_query

    remote = _remote(args.url)
    filters = _filters_arg(args.filters)
    for name in ("status", "labels", "priority", "ids"):
        value = getattr(args, name)
        if value is not None:
            filters[name] = value
    body = {"entity": args.entity, "filters": filters, "limit": args.limit}
    if args.include:
        body["include"] = args.include
    results: list[dict] = []
    total = 0
    while True:
        page = remote_query(remote=remote, query=body)
        results += page.get("results") or []
        meta = page.get("metadata") or {}
        total = meta.get("total", len(results))
        cursor = meta.get("next_cursor")
        if not (args.all_pages and cursor):
            break
        note(f"  {len(results)} of {total} ...")
        body["cursor"] = cursor
    if args.format == "json":
        print_json({"results": results, "total": total})
        return 0
    if not results:
        note(f"No {args.entity}s match in {remote.url}.")
        return 0
    print_table(
        [
            (r.get("canonical_ref") or r.get("id"), r.get("status", ""), r.get("priority", ""), r.get("title", ""))
            for r in results
        ],
        ("ref", "status", "p", "title"),
    )
    if len(results) < total:
        note(f"{len(results)} of {total} shown; --all-pages for the rest")
    return 0


def discover(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from remotes.discovery import remotes_discover

    try:
        answer = remotes_discover(
            pattern=args.pattern,
            sources=args.source,
            auto_add=args.auto_add,
            trust_level=args.trust,
            actor=runtime.actor(lay),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for source in answer["sources"]:
        if not source["ok"]:
            warn(f"directory {source['url']} could not be read: {source['error']}")
    if args.format == "json":
        print_json(answer)
        return 0 if any(s["ok"] for s in answer["sources"]) else 1
    found = answer["found"]
    reachable = [f for f in found if f["reachable"]]
    print(f"→ Found {len(found)} repositories matching {args.pattern} ({len(reachable)} answered)")
    added = [f["display_name"] for f in found if f["added"]]
    if added:
        print(f"→ Added: {', '.join(added)}")
    for item in found:
        state = "already a remote" if item["known"] else ("added" if item["added"] else "")
        if not item["reachable"]:
            state = f"did not answer: {item['error']}"
        print(f"  {item['url']}  {item['endpoint'] or '(no endpoint)'}  {state}".rstrip())
    if found and not args.auto_add and any(f["reachable"] and not f["known"] for f in found):
        note("Add them with --auto-add (and --trust LEVEL), or one by one with `sudocode-fed remote add`.")
    return 0 if any(s["ok"] for s in answer["sources"]) else 1


def query_all(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from remotes.sync import remotes_query_all

    filters = _filters_arg(args.filters)
    for name in ("status", "labels", "priority"):
        value = getattr(args, name)
        if value is not None:
            filters[name] = value
    answer = remotes_query_all(query={"entity": args.entity, "filters": filters}, timeout=args.timeout)
    failed = [r for r in answer["remotes"] if not r["ok"]]
    if args.format == "json":
        print_json(answer)
    elif not answer["remotes"]:
        note("No remote has an endpoint: add one with `sudocode-fed remote add URL --endpoint ...`.")
    else:
        asked = len(answer["remotes"])
        print(f"Total: {answer['total']} {args.entity}s in {asked - len(failed)} of {asked} remotes")
        order = ["open", "in_progress", "needs_review", "blocked", "closed"] if args.entity == "issue" else []
        for status in order + sorted(set(answer["by_status"]) - set(order) - {"unknown"}):
            if status in order or answer["by_status"].get(status):
                print(f"  {status.replace('_', ' ').capitalize()}: {answer['by_status'].get(status, 0)}")
    for remote in failed:
        warn(f"{remote['url']} did not answer: {remote['error']}")
    return 1 if answer["remotes"] and len(failed) == len(answer["remotes"]) else 0


def subscribe(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from subscriptions import outgoing
    from subscriptions.selectors import subscription_summary

    remote = _remote(args.url)
    filters = _filters_arg(args.filters)
    labels = [*args.label, *(args.labels or [])]
    if labels:
        filters["labels"] = labels
    for name in ("status", "priority", "ids"):
        if getattr(args, name) is not None:
            filters[name] = getattr(args, name)
    row = outgoing.subscription_create(
        remote=remote, watch={"entity_type": args.entity, "filters": filters}, since=args.since
    )
    outgoing.subscription_push(subscription_id=row.subscription_id)  # now, to say how it went
    row.refresh_from_db()
    info = subscription_summary(row)
    if args.format == "json":
        print_json(info)
        return 0 if row.delivery_status == "confirmed" else 1
    print(f"Subscription {row.subscription_id} to {remote.url}'s {args.entity}s {json.dumps(filters)}")
    if row.delivery_status == "confirmed":
        print(f"  Confirmed: events come to {row.callback_url}")
        return 0
    if row.delivery_status == "dead":
        print(f"  Refused: {row.last_error}")
        return 1
    print(f"  Not confirmed yet ({row.last_error or row.delivery_status}); `sudocode-fed serve` keeps trying")
    return 1
