"""`sudocode-fed`: the command line of a sudocode federation node.

The parser is built here; each command is a function in `sudocode_cli.commands.*`, imported only when it runs,
so `--help` and usage errors answer at once. Commands are thin: they call the apps' services and selectors.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from sudocode_cli.errors import CliError

PROG = "sudocode-fed"
STATUSES = ("open", "in_progress", "blocked", "needs_review", "closed")
TRUST_LEVELS = ("untrusted", "verified", "trusted")
REL_OPTIONS = ("blocks", "depends-on", "implements", "references", "related", "discovered-from")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _priority(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number from 0 (highest) to 4") from None
    if not 0 <= number <= 4:
        raise argparse.ArgumentTypeError(f"{number} is not a priority from 0 (highest) to 4")
    return number


def _priorities(value: str) -> list[int]:
    return [_priority(v) for v in _csv(value)]


def _statuses(value: str) -> list[str]:
    values = _csv(value)
    for v in values:
        if v not in STATUSES:
            raise argparse.ArgumentTypeError(f"{v!r} is not one of {', '.join(STATUSES)}")
    return values


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 600:
        raise argparse.ArgumentTypeError(f"{value} is not a number of seconds from above 0 to 600")
    return seconds


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (0 to 65535; 0: any free port)")
    return int(value)


def _processes(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of processes from 1 to 64")
    return int(value)


def _hop_limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 20:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of hops from 1 to 20")
    return int(value)


def _json_object(value: str) -> dict:
    import json

    try:
        data = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError('expected a JSON object like \'{"key": "value"}\'')
    return data


def _command(parser: argparse.ArgumentParser, target: str) -> None:
    parser.set_defaults(_target=target)


def _format(parser: argparse.ArgumentParser, choices: Sequence[str] = ("text", "json")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0], help="output format (default: %(default)s)")


def _entity_fields(parser: argparse.ArgumentParser, *, kind: str, create: bool) -> None:
    if create:
        parser.add_argument("title", help=f"the {kind}'s title")
        parser.add_argument(
            "--id",
            dest="sudocode_id",
            metavar="ID",
            help="use this id instead of a generated one (e.g. issue-100)",
        )
    else:
        parser.add_argument("--title", help="new title")
    parser.add_argument(
        "-d",
        "--description",
        "--content",
        dest="content",
        metavar="TEXT",
        help="markdown body; [[i-xxxx]] and [[org/repo#id]] references are recognised",
    )
    parser.add_argument(
        "-p", "--priority", type=_priority, help="0 (highest) to 4" + (" (default 2)" if create else "")
    )
    parser.add_argument(
        "--tags", type=_csv, metavar="A,B", help="comma-separated tags" + ("" if create else " (replaces)")
    )
    if kind == "issue":
        parser.add_argument("--status", choices=STATUSES, help="status" + (" (default open)" if create else ""))
        parser.add_argument("--assignee", help="who works on it")
    if create:
        parser.add_argument("--parent", metavar="ID", help=f"parent {kind}")
    for rel in REL_OPTIONS:
        parser.add_argument(
            f"--{rel}",
            dest=f"rel_{rel.replace('-', '_')}",
            action="append",
            default=[],
            metavar="ID",
            help=f"add a '{rel}' relationship to a local issue or spec (repeatable)",
        )


def _depth(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 50:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of edges from 0 to 50")
    return int(value)


def _deps_commands(commands) -> None:
    group = commands.add_parser("deps", help="the dependency graph, across repositories")
    group.set_defaults(_group=group)
    sub = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    graph = sub.add_parser(
        "graph",
        help="issues and specs, their relationships and cross-repo references, with status and freshness",
        description="Draw the dependency graph: this repository's issues and specs, their relationships, the "
        "remote entities they reference (last known status, and how fresh), and cycles of blocking edges. "
        "Legend: ✓=closed, →=in-progress, ✗=blocked, ⧗=open. The dashboard draws the same graph at /graph/.",
    )
    graph.add_argument(
        "--cross-repo",
        action="store_true",
        help="expand remote nodes: ask each remote (one batched query per remote and level) what they depend on",
    )
    graph.add_argument("--root", metavar="ID|REF", help="only what is within --depth edges of this issue or spec")
    graph.add_argument(
        "--depth", type=_depth, metavar="N", help="how many edges from the root (or this repository) (default: 10)"
    )
    _format(graph, ("ascii", "json", "dot", "mermaid"))
    _command(graph, "deps:deps_graph")


def _remote_commands(commands) -> None:
    group = commands.add_parser(
        "remote",
        help="other nodes: add, list, sync, query",
        description="Remote repositories this node knows. They are declared in .sudocode/federation.config.json "
        "(commit it: git records every trust decision); runtime state lives in the database.",
    )
    group.set_defaults(_group=group)
    sub = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    add = sub.add_parser(
        "add",
        help="declare a remote, issue its API key, discover it",
        description="Declare a remote and print the API key it must present to this node "
        "(shown once). With --endpoint, discovery runs at once when the remote answers.",
    )
    add.add_argument("url", help="the remote's identity, e.g. github.com/org/api-service")
    add.add_argument("--trust", choices=TRUST_LEVELS, default="untrusted", help="trust level (default: %(default)s)")
    add.add_argument(
        "--endpoint",
        metavar="URL",
        help="its REST base, e.g. https://api-service.dev/api/v1 (with --transport a2a: where its agent card is)",
    )
    add.add_argument(
        "--transport",
        choices=("rest", "a2a"),
        default="rest",
        help="call it over our REST API (default) or A2A 1.0; a REST endpoint that turns out to serve only an "
        "A2A agent card switches to a2a by itself",
    )
    add.add_argument("--name", help="display name (default: the last part of the url)")
    add.add_argument("--token", help="the API key that remote gave us (stored in secrets.env)")
    add.add_argument("--no-discover", action="store_true", help="do not contact it now")
    add.add_argument(
        "--public-key", metavar="KEY", help="pin its signing key (ed25519:...; default: its discover answer's)"
    )
    add.add_argument("--require-signatures", action="store_true", help="refuse its unsigned messages (401)")
    _command(add, "remotes:add")

    key = sub.add_parser(
        "key",
        help="show, pin or unpin a remote's signing key; require its messages signed",
        description="Without options: the pinned key and its fingerprint (compare it with the fingerprint "
        "`sudocode-fed status` shows on that node). Written to federation.config.json.",
    )
    key.add_argument("url", help="the remote")
    key.add_argument("--pin", metavar="KEY", help="pin this key (ed25519:<base64url>)")
    key.add_argument("--unpin", action="store_true", help="forget the pinned key")
    key.add_argument("--require-signatures", choices=("on", "off"), help="refuse its unsigned messages (401)")
    _command(key, "remotes:key")

    listing = sub.add_parser("list", help="list remotes")
    _format(listing, ("table", "json", "url"))
    _command(listing, "remotes:list_")

    for name, helptext, target in (
        ("show", "one remote in detail", "remotes:show"),
        ("remove", "forget a remote (and revoke its API key)", "remotes:remove"),
        ("rotate-key", "issue a new API key for a remote", "remotes:rotate_key"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("url", help="the remote's identity (or its short org/repo form)")
        if name == "show":
            _format(cmd)
        _command(cmd, target)

    sync = sub.add_parser("sync", help="discover a remote again and refresh every reference to it")
    sync.add_argument("url", nargs="?", help="the remote (or --all)")
    sync.add_argument("--all", action="store_true", help="every remote")
    _command(sync, "remotes:sync")

    trust = sub.add_parser(
        "trust",
        help="change a remote's trust level (its next message is judged at the new level)",
        description="Writes the level to federation.config.json (commit it: git records every trust decision). "
        "Takes effect on the remote's next query, request, subscription or WebSocket message.",
    )
    trust.add_argument("url", help="the remote")
    trust.add_argument("level", choices=TRUST_LEVELS, help="the new trust level")
    _command(trust, "remotes:trust")

    update = sub.add_parser(
        "update",
        help="change a remote's trust level, endpoint or display name",
        description="Writes the changes to federation.config.json (commit it: git records every trust decision).",
    )
    update.add_argument("url", help="the remote")
    update.add_argument("--trust", choices=TRUST_LEVELS, help="the new trust level")
    update.add_argument("--endpoint", metavar="URL", help="its REST base (an A2A remote: where its agent card is)")
    update.add_argument("--name", help="its display name")
    _command(update, "remotes:update")

    token = sub.add_parser("set-token", help="store the API key a remote gave us (secrets.env)")
    token.add_argument("url", help="the remote")
    token.add_argument("token", help="the key, or - to read it from standard input")
    _command(token, "remotes:set_token")

    create = sub.add_parser(
        "create-issue",
        help="ask a remote to create an issue (its maintainers or policy decide)",
        description="Send a create_issue request. It is recorded here first, so it is never lost: if the remote "
        "does not answer, `sudocode-fed serve` sends it again. The outcome comes back by callback or polling.",
    )
    create.add_argument("url", help="the remote")
    create.add_argument("--title", required=True, help="the issue's title")
    create.add_argument("--description", default="", help="markdown body")
    create.add_argument("--priority", type=_priority, help="0 (highest) to 4")
    create.add_argument("--labels", type=_csv, metavar="A,B", help="tags for the new issue")
    create.add_argument(
        "--discovered-from", metavar="ID", help="the local issue that needs it: it becomes blocked by the new issue"
    )
    create.add_argument("--requester", help="who asks (default: git user.name)")
    create.add_argument("--auto-approve", action="store_true", help="ask for auto-approval (their policy decides)")
    _format(create)
    _command(create, "requests:create_issue")

    delegate = sub.add_parser(
        "delegate",
        help="hand a remote a task: it accepts it as a spec or issue of its own (Use Case 2)",
        description="Send a delegate message. Recorded here first and sent again until the remote has it. The "
        "remote's maintainers (or its a2a_policies.delegate.auto_accept) accept or reject it; once accepted, the "
        "entity given with --from is linked to the one the remote created (delegated-to), and the remote's issues "
        'under it can be listed with `remote query URL issue --filters \'{"spec_refs": ["spec-015"]}\'`.',
    )
    delegate.add_argument("url", help="the remote")
    delegate.add_argument("--type", choices=("spec", "issue"), required=True, help="what the remote should create")
    delegate.add_argument("--title", required=True, help="the task's title")
    delegate.add_argument("--description", default="", help="markdown body")
    delegate.add_argument("--priority", type=_priority, help="0 (highest) to 4")
    delegate.add_argument("--labels", type=_csv, metavar="A,B", help="tags for the new entity")
    delegate.add_argument("--requirements", type=_json_object, metavar="JSON", help="a JSON object, kept with it")
    delegate.add_argument("--context", type=_json_object, metavar="JSON", help="a JSON object (the seed's context)")
    delegate.add_argument(
        "--from",
        dest="origin",
        metavar="ID",
        help="the local spec or issue this task comes from: linked both ways, and the start of its chain",
    )
    delegate.add_argument(
        "--hop-limit",
        type=_hop_limit,
        metavar="N",
        help="how many hands it may pass through, 1-20 (default: a2a_policies.delegate.hop_limit, 3)",
    )
    delegate.add_argument("--requester", help="who asks (default: git user.name)")
    _format(delegate)
    _command(delegate, "delegations:delegate")

    query = sub.add_parser(
        "query",
        help="query a remote's issues or specs",
        description="Ask a remote for its issues or specs, within what it lets us see.",
    )
    query.add_argument("url", help="the remote")
    query.add_argument("entity", choices=("issue", "spec"), help="what to query")
    query.add_argument("--status", type=_statuses, metavar="S,S", help="only these statuses")
    query.add_argument("--labels", type=_csv, metavar="A,B", help="only those with all of these labels (tags)")
    query.add_argument("--priority", type=_priorities, metavar="N,N", help="only these priorities")
    query.add_argument("--ids", type=_csv, metavar="ID,ID", help="only these ids")
    query.add_argument("--filters", metavar="JSON", help="filters as JSON (the seed's query filters)")
    query.add_argument("--include", type=_csv, metavar="X,Y", help="relationships, spec_refs")
    query.add_argument("--limit", type=int, default=50, help="page size, 1-500 (default: %(default)s)")
    query.add_argument("--all-pages", action="store_true", help="follow the cursor to the last page")
    _format(query, ("table", "json"))
    _command(query, "remotes:query")

    discover = sub.add_parser(
        "discover",
        help="find repositories in directories by a pattern, and add them (Use Case 3)",
        description="Read the directories of discovery.sources in federation.config.json (or --source), keep the "
        "repositories whose identity matches PATTERN (a glob: github.com/org/*), ask each of them discover in "
        "parallel, and print what answered. --auto-add declares those as remotes at --trust.",
    )
    discover.add_argument("pattern", help="a glob over identities, e.g. 'github.com/org/*' (quote it for the shell)")
    discover.add_argument("--source", action="append", metavar="URL", help="a directory's REST base (repeatable)")
    discover.add_argument("--auto-add", action="store_true", help="add what answered and is not a remote yet")
    discover.add_argument(
        "--trust", choices=TRUST_LEVELS, default="untrusted", help="trust level of those added (default: %(default)s)"
    )
    _format(discover, ("table", "json"))
    _command(discover, "remotes:discover")

    query_all = sub.add_parser(
        "query-all",
        help="query every remote at once and count the results by status (Use Case 3)",
        description="Send the same query to every remote with an endpoint, in parallel, each followed to its last "
        "page. Prints the total and the count per status; a remote that fails is named and does not fail the rest "
        "(exit 1 only when every remote failed). --format json adds the rows, each with its repo.",
    )
    query_all.add_argument("entity", choices=("issue", "spec"), help="what to query")
    query_all.add_argument("--status", type=_statuses, metavar="S,S", help="only these statuses")
    query_all.add_argument("--labels", type=_csv, metavar="A,B", help="only those with all of these labels (tags)")
    query_all.add_argument("--priority", type=_priorities, metavar="N,N", help="only these priorities")
    query_all.add_argument("--filters", metavar="JSON", help="filters as JSON (the seed's query filters)")
    query_all.add_argument(
        "--timeout", type=_positive_seconds, default=10.0, help="seconds per remote call (default: %(default)s)"
    )
    _format(query_all, ("table", "json"))
    _command(query_all, "remotes:query_all")

    subscribe = sub.add_parser(
        "subscribe",
        help="watch a remote's issues or specs: their changes come here by signed webhook",
        description="Subscribe to changes of a remote's issues or specs that match the filters. Events arrive at "
        "this node's /api/v1/webhooks/cross-repo, so endpoints.rest must be declared in federation.config.json. "
        "(The entities this repository references are watched automatically.)",
    )
    subscribe.add_argument("url", help="the remote")
    subscribe.add_argument("--entity", choices=("issue", "spec"), default="issue", help="what to watch")
    subscribe.add_argument("--label", dest="label", action="append", default=[], help="with this label (repeatable)")
    subscribe.add_argument("--labels", type=_csv, metavar="A,B", help="with all of these labels")
    subscribe.add_argument("--status", type=_statuses, metavar="S,S", help="with one of these statuses")
    subscribe.add_argument("--priority", type=_priorities, metavar="N,N", help="with one of these priorities")
    subscribe.add_argument("--ids", type=_csv, metavar="ID,ID", help="only these ids")
    subscribe.add_argument("--filters", metavar="JSON", help="filters as JSON (the seed's query filters)")
    subscribe.add_argument("--since", type=int, metavar="SEQ", help="also the events after this sequence number")
    _format(subscribe)
    _command(subscribe, "remotes:subscribe")


def _listing_commands(commands, name: str, *, module: str, help: str, description: str, pending_help: str) -> None:
    """`NAME pending` and `NAME list`, for requests and delegations alike."""
    many = commands.add_parser(name, help=help, description=description)
    many.set_defaults(_group=many)
    sub = many.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    pending = sub.add_parser("pending", help=pending_help)
    pending.add_argument("--limit", type=int, default=50, help="at most N (default: %(default)s)")
    _format(pending)
    _command(pending, f"{module}:pending")
    listing = sub.add_parser("list", help=f"list {help.split(':')[0]}")
    listing.add_argument("--direction", choices=("incoming", "outgoing"), help="only this direction")
    listing.add_argument("--status", choices=("pending", "approved", "rejected", "completed", "failed", "cancelled"))
    listing.add_argument("--limit", type=int, default=50, help="at most N (default: %(default)s)")
    _format(listing)
    _command(listing, f"{module}:list_")


def _request_commands(commands) -> None:
    _listing_commands(
        commands,
        "requests",
        module="requests",
        help="requests between nodes: pending, list",
        description="Requests other nodes made here (incoming) and ours (outgoing).",
        pending_help="incoming requests waiting for a decision",
    )

    one = commands.add_parser("request", help="show, approve or reject one request")
    one.set_defaults(_group=one)
    sub = one.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    show = sub.add_parser("show", help="a request with its whole message")
    show.add_argument("request_id")
    _format(show)
    _command(show, "requests:show")
    approve = sub.add_parser("approve", help="approve a pending incoming request: the entity is created")
    approve.add_argument("request_id")
    approve.add_argument(
        "--estimated-completion", metavar="ISO8601", help="when, e.g. 2025-11-08 (shown by why-blocked elsewhere)"
    )
    _command(approve, "requests:approve")
    reject = sub.add_parser("reject", help="reject a pending incoming request")
    reject.add_argument("request_id")
    reject.add_argument("--reason", required=True, help="why, for the requester")
    _command(reject, "requests:reject")

    _listing_commands(
        commands,
        "delegates",
        module="delegations",
        help="delegations: pending, list",
        description="Tasks other repositories handed to this one (incoming) and ours to them (outgoing).",
        pending_help="incoming delegations waiting to be accepted or rejected",
    )

    one = commands.add_parser("delegate", help="show, accept or reject one delegation")
    one.set_defaults(_group=one)
    sub = one.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    show = sub.add_parser("show", help="a delegation: its task, chain, decision and outcome")
    show.add_argument("request_id", metavar="ID")
    _format(show)
    _command(show, "delegations:show")
    accept = sub.add_parser("accept", help="accept a pending delegation: the spec or issue is created and linked")
    accept.add_argument("request_id", metavar="ID")
    accept.add_argument("--assignee", help="who will do it (told to the delegator; the new issue's assignee)")
    accept.add_argument("--estimated-completion", metavar="ISO8601", help="when, e.g. 2025-11-08T12:00:00Z")
    _command(accept, "delegations:accept")
    reject = sub.add_parser("reject", help="reject a pending delegation")
    reject.add_argument("request_id", metavar="ID")
    reject.add_argument("--reason", required=True, help="why, for the delegator")
    _command(reject, "delegations:reject")

    mcp = commands.add_parser(
        "mcp",
        help="serve this repository's tools to a coding agent over MCP (stdio)",
        description="Runs an MCP server on standard input and output for an agent working in this repository "
        "(Claude Code: `claude mcp add sudocode -- sudocode-fed mcp`). It acts as the local maintainer, as the CLI "
        "does: cross_repo_query, cross_repo_create_issue, cross_repo_watch, cross_repo_delegate, cross_repo_events, "
        "request_status, request_list, issue_list, issue_show, issue_create, issue_update, why_blocked, remote_list, "
        "and the resources sudocode://issue/<id> and sudocode://spec/<id>. Logs go to standard error.",
    )
    _command(mcp, "agents:mcp")

    policy = commands.add_parser(
        "policy",
        help="the policy engine: check the config's rules, or try a message against them",
        description="Conditions are CEL with the seed's spellings (see PROTOCOL.md, Policy variables).",
    )
    policy.set_defaults(_group=policy)
    sub = policy.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    check = sub.add_parser(
        "check",
        help="validate federation.config.json, policies included (exit 2 with the error)",
    )
    check.add_argument("--file", metavar="PATH", help="another file to check (default: this repository's)")
    _format(check)
    _command(check, "policy:check")
    dry = sub.add_parser(
        "test",
        help="dry run: the decision and the deciding rule for a sender, an operation and its data",
        description="Nothing is recorded and no quota is used; the sender's request counts are read as they are.",
    )
    dry.add_argument("--from", dest="sender", required=True, metavar="REPO", help="the sender's identity")
    dry.add_argument(
        "--operation",
        required=True,
        choices=("create_issue", "create_spec", "update_issue", "delegate"),
        help="what the sender asks for",
    )
    dry.add_argument(
        "--data", type=_json_object, default={}, metavar="JSON", help="the mutate's data or the delegation's task"
    )
    dry.add_argument("--auto-approve", action="store_true", help="the message asks for auto-approval")
    dry.add_argument("--file", metavar="PATH", help="judge by this config file instead of the repository's")
    _format(dry)
    _command(dry, "policy:test")

    audit = commands.add_parser("audit", help="the audit log of cross-repo operations")
    audit.set_defaults(_group=audit)
    sub = audit.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="recent audit entries, newest first")
    listing.add_argument("--direction", choices=("incoming", "outgoing"))
    listing.add_argument("--operation", help="query, discover, mutate, approve, reject, callback, ...")
    listing.add_argument("--status", choices=("success", "failed", "pending"))
    listing.add_argument("--remote", help="only entries with this remote (substring)")
    listing.add_argument("--request-id", help="only entries of this request")
    listing.add_argument("--limit", type=int, default=50, help="at most N (default: %(default)s)")
    _format(listing)
    _command(listing, "requests:audit_list")
    stats = sub.add_parser(
        "stats",
        help="totals by operation, status and remote, and duration percentiles",
        description="Over the entries matching the filters; without --since, the 24 hours before --until (or now).",
    )
    stats.add_argument("--direction", choices=("incoming", "outgoing"))
    stats.add_argument("--operation", help="query, discover, mutate, approve, reject, callback, ...")
    stats.add_argument("--status", choices=("success", "failed", "pending"))
    stats.add_argument("--remote", help="only entries with this remote (substring)")
    stats.add_argument("--since", help="ISO 8601 datetime or date, inclusive (default: 24 hours before --until)")
    stats.add_argument("--until", help="ISO 8601 datetime or date, exclusive (default: now)")
    stats.add_argument("--correlation-id", help="only the entries of one call")
    _format(stats)
    _command(stats, "requests:audit_stats")
    prune = sub.add_parser(
        "prune",
        help="remove what retention says is old (the hourly task does it too); --dry-run shows what would go",
        description="Outbox events older than retention.events_days that every subscription has been sent, "
        "received events older than retention.received_events_days, and audit entries older than "
        "retention.audit_days (default 90), exported first to .sudocode/audit-archive/<time>.jsonl.",
    )
    prune.add_argument("--dry-run", action="store_true", help="count only; delete nothing")
    prune.add_argument("--now", metavar="WHEN", help="as if it were WHEN (ISO 8601), e.g. to see what goes next week")
    _format(prune)
    _command(prune, "requests:audit_prune")


def _alert_commands(commands) -> None:
    alerts = commands.add_parser(
        "alerts",
        help="the seed's alerts: list, check",
        description="A remote unreachable, an approval backlog, a remote's error rate (thresholds: `alerts` in "
        "federation.config.json). The worker checks them every 30 s and notifies the channels of `notifications`.",
    )
    alerts.set_defaults(_group=alerts)
    sub = alerts.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="the alerts firing, and those resolved recently, newest first")
    listing.add_argument("--days", type=float, default=7, help="resolved within N days (default: %(default)s)")
    _format(listing)
    _command(listing, "alerts:alerts_list")
    check = sub.add_parser("check", help="evaluate the alerts now and send their notifications")
    _format(check)
    _command(check, "alerts:alerts_check")


def _subscription_commands(commands) -> None:
    many = commands.add_parser(
        "subscriptions",
        help="subscriptions between nodes: list",
        description="Who watches this node (incoming: events go to their webhooks) and what it watches (outgoing).",
    )
    many.set_defaults(_group=many)
    sub = many.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="list subscriptions with their delivery state")
    listing.add_argument("--direction", choices=("incoming", "outgoing"), help="only this direction")
    listing.add_argument("--limit", type=int, default=200, help="at most N (default: %(default)s)")
    _format(listing)
    _command(listing, "subscriptions:list_")

    one = commands.add_parser("subscription", help="act on one subscription")
    one.set_defaults(_group=one)
    sub = one.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    redeliver = sub.add_parser(
        "redeliver",
        help="deliver a dead webhook stream again",
        description="An incoming subscription whose webhooks gave up (dead) starts again from the event it stopped at.",
    )
    redeliver.add_argument("subscription_id")
    _command(redeliver, "subscriptions:redeliver")
    retry = sub.add_parser(
        "retry",
        help="subscribe again now: an outgoing subscription that failed or waits for its next try",
        description="An outgoing subscription the remote refused (e.g. 403: it did not trust us) or could not be "
        "reached is retried with backoff by itself; this tries now (after the remote raised our trust level).",
    )
    retry.add_argument("subscription_id", nargs="?", help="the outgoing subscription (see `subscriptions list`)")
    retry.add_argument("--all", action="store_true", help="every outgoing subscription that failed or waits")
    _command(retry, "subscriptions:retry")


class _Unbuilt:
    """Stands for the parsers of the commands a run does not use: takes every builder call and keeps nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """The top-level subparsers, building in full only the parser of `name`; every other command is still
    listed (name and help, for `--help` and "invalid choice") with a parser that takes no option."""

    def __init__(self, commands: argparse._SubParsersAction, name: str) -> None:
        self._commands = commands
        self._name = name

    def add_parser(self, name: str, **kwargs):
        parser = self._commands.add_parser(name, **kwargs)
        return parser if name == self._name else _Unbuilt()


def _command_name(argv: Sequence[str]) -> str | None:
    """The top-level command `argv` runs (`issue` in `--repo X issue list`), or None when unsure: the first word
    that is not an option or the value of `--repo` (or an abbreviation of it, which argparse accepts)."""
    value_follows = False
    for arg in argv:
        if value_follows:
            value_follows = False
        elif arg == "--":
            return None
        elif arg.startswith("-"):
            value_follows = len(arg) > 2 and "=" not in arg and "--repo".startswith(arg)
        else:
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command`, only that top-level command's options are built (the others are listed
    but take none): building all ~150 parsers is ~15 ms of every start (issue 16)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a sudocode federation node for this git repository and work with its issues and specs.",
        epilog="The repository is found from the current directory (the folder holding .sudocode/), "
        "or given with --repo / SUDOCODE_REPO. Run `%(prog)s COMMAND --help` for a command's options.",
    )
    parser.add_argument("--repo", metavar="PATH", help="the repository to work on (default: found from the cwd)")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    if command is not None:
        commands = _OnlyCommand(commands, command)

    init = commands.add_parser(
        "init",
        help="set up federation in this git repository",
        description="Create .sudocode/ (if missing), federation.config.json, secrets.env "
        "and the .gitignore lines. Existing sudocode data is never changed.",
    )
    init.add_argument("--url", help="this repository's federation identity (default: from the git remote origin)")
    init.add_argument("--display-name", help="a human name for this node (default: the repository's name)")
    init.add_argument("--description", default="", help="one line about this repository")
    _command(init, "node:init")

    search = commands.add_parser(
        "search",
        help="full-text search over issues and specs, here or in every repository (--all-repos)",
        description="Rank this repository's issues and specs by TEXT (every word must match; the last one as a "
        "prefix; titles weigh more). --all-repos asks every remote at once too, within what each lets us see.",
    )
    search.add_argument("text", help='what to look for, e.g. "authentication bug"')
    search.add_argument("--all-repos", action="store_true", help="search every remote too")
    search.add_argument("--entity", choices=("issue", "spec"), help="only issues or only specs (default: both)")
    search.add_argument("--limit", type=int, default=20, help="most results per repository and kind (default 20)")
    _format(search, ("table", "json"))
    _command(search, "tracker:search")

    serve = commands.add_parser(
        "serve",
        help="run the node's web server (daphne)",
        description="Apply migrations, import the JSONL files and serve the dashboard, "
        "the API and the admin with daphne.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--access-log", metavar="FILE", help="log every request to FILE ('-' for stdout)")
    serve.add_argument("--no-worker", action="store_true", help="do not start the Celery worker and beat")
    serve.add_argument(
        "--workers", type=_processes, metavar="N", help="web processes on one socket (default: the number of cores)"
    )
    serve.add_argument(
        "--a2a-conformance",
        action="store_true",
        help="answer A2A messages that carry no federation message with the A2A conformance kit's scenarios "
        "(testing only; see README)",
    )
    # Logs (README "Operating a node"): JSON lines on stderr by default, for the worker and beat too.
    serve.add_argument("--log-format", choices=("json", "text"), help="log lines (default: json)")
    serve.add_argument("--debug-a2a", action="store_true", help="log every A2A message in and out (redacted)")
    serve.add_argument("--certfile", metavar="PEM", help="serve HTTPS (TLS 1.2+, HTTP/2) with this certificate chain")
    serve.add_argument("--keyfile", metavar="PEM", help="the certificate's private key (with --certfile)")
    _command(serve, "node:serve")

    signing = commands.add_parser("key", help="this node's signing key (Ed25519; remotes pin it)")
    signing.set_defaults(_group=signing)
    signing_sub = signing.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    rotate = signing_sub.add_parser(
        "rotate",
        help="make a new key and announce it to every remote, signed with the old one",
        description="Make a new Ed25519 key pair for this node (the private key in secrets.env, the public key in "
        "federation.config.json) and announce the new public key to every remote, REST or A2A, in a message signed "
        "with the old key: a remote that pinned the old key pins the new one. Remotes that cannot be reached now "
        "are listed, and the command exits 1: their admin pins the new key by hand with "
        "`sudocode-fed remote key <this node> --pin <key>`.",
    )
    _command(rotate, "node:key_rotate")

    staff = commands.add_parser("staff", help="people who may log in to the dashboard")
    staff.set_defaults(_group=staff)
    staff_sub = staff.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    staff_add = staff_sub.add_parser("add", help="add (or update) a staff user; asks for the password")
    staff_add.add_argument("username")
    staff_add.add_argument("--email", default="", help="their email address")
    staff_add.add_argument("--superuser", action="store_true", help="may also change everything in the admin")
    staff_add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _command(staff_add, "node:staff_add")

    merge = commands.add_parser(
        "merge-driver",
        help="git's merge driver for .sudocode/*.jsonl (registered by init)",
        description="Merge two versions of issues.jsonl or specs.jsonl by record uuid: both sides' new records "
        "kept, field-level changes merged, the same field changed on both sides by last write (updated_at). "
        "git runs it during a merge as `merge-driver %%O %%A %%B %%P`; the result goes to %%A.",
    )
    merge.add_argument("base", help="%%O: the common ancestor's version")
    merge.add_argument("ours", help="%%A: our version, replaced by the merge")
    merge.add_argument("theirs", help="%%B: their version")
    merge.add_argument("path", help="%%P: the file's path in the repository")
    _command(merge, "node:merge_driver")

    doctor = commands.add_parser(
        "doctor",
        help="list every problem in the repository's issues, specs and config",
        description="Read issues.jsonl, specs.jsonl and federation.config.json and list what is wrong: git "
        "conflict markers, malformed lines, duplicated ids or uuids, references to ids that do not exist or to "
        "remotes the config does not declare, secrets.env tracked by git. Works when the node cannot read its "
        "data. Exit 1 when something is wrong.",
    )
    doctor.add_argument("--fix", action="store_true", help="repair what is safe to (duplicated ids), as one commit")
    _format(doctor)
    _command(doctor, "node:doctor")

    status = commands.add_parser("status", help="what this node serves and how it is set up")
    _format(status)
    _command(status, "node:status")

    _remote_commands(commands)
    _request_commands(commands)
    _subscription_commands(commands)
    _alert_commands(commands)
    _deps_commands(commands)

    for kind, plural in (("issue", "issues"), ("spec", "specs")):
        group = commands.add_parser(
            kind,
            help=f"create, show and list {plural}",
            description=f"Work with this repository's {plural} (.sudocode/{plural}.jsonl).",
        )
        sub = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
        group.set_defaults(_group=group)

        create = sub.add_parser(
            "create",
            help=f"create a {kind}",
            description=f"Create a {kind}, write it to .sudocode/{plural}.jsonl and, with git.auto_commit, commit it.",
        )
        _entity_fields(create, kind=kind, create=True)
        _format(create)
        _command(create, f"tracker:{kind}_create")

        show = sub.add_parser("show", help=f"show one {kind} with its relationships")
        show.add_argument("ref", metavar="ID", help=f"the {kind}'s id (or uuid)")
        _format(show)
        _command(show, f"tracker:{kind}_show")

        listing = sub.add_parser("list", help=f"list {plural}")
        if kind == "issue":
            listing.add_argument("--status", type=_statuses, metavar="S,S", help=f"only these ({', '.join(STATUSES)})")
        listing.add_argument("--priority", type=_priorities, metavar="N,N", help="only these priorities")
        listing.add_argument("--tags", type=_csv, metavar="A,B", help="only those with all of these tags")
        listing.add_argument("--search", metavar="TEXT", help="only those whose title or content contains TEXT")
        listing.add_argument("--archived", action="store_true", help="list archived ones instead")
        listing.add_argument("--all", action="store_true", help="archived ones too")
        listing.add_argument("--limit", type=int, metavar="N", help="at most N")
        _format(listing)
        _command(listing, f"tracker:{kind}_list")

        if kind == "issue":
            update = sub.add_parser("update", help="change an issue's fields")
            update.add_argument("ref", metavar="ID", help="the issue's id (or uuid)")
            _entity_fields(update, kind=kind, create=False)
            archive = update.add_mutually_exclusive_group()
            archive.add_argument("--archive", dest="archived", action="store_const", const=True, help="archive it")
            archive.add_argument("--unarchive", dest="archived", action="store_const", const=False, help="unarchive it")
            _format(update)
            _command(update, "tracker:issue_update")

            close = sub.add_parser("close", help="close an issue")
            close.add_argument("ref", metavar="ID", help="the issue's id (or uuid)")
            _format(close)
            _command(close, "tracker:issue_close")

            why = sub.add_parser(
                "why-blocked",
                help="why an issue is blocked: its local and remote blockers, down the chain",
                description="Explain what blocks an issue: open local blockers (and theirs), and remote blockers "
                "with their last known status and how fresh it is. Give a local id, or the org/repo#id of a remote "
                "issue one of ours references to see what we know of it.",
            )
            why.add_argument("ref", metavar="ID|REF", help="issue-100, or org/api-service#issue-084")
            _format(why)
            _command(why, "tracker:issue_why_blocked")
    return parser


class _VersionAction(argparse.Action):
    # argparse's own version action wants the string up front; reading package metadata costs 25 ms.
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(message=f"{parser.prog} {_version()}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sudocode-federation")
    except PackageNotFoundError:
        return "dev"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code. As the process's entry point (`argv` None: the console script,
    `python -m sudocode_cli.main`), end the process when the command is done, without the interpreter's teardown
    (`_end_process`)."""
    code = _run(argv)
    if argv is None:
        _end_process(code)
    return code


def _end_process(code: int) -> None:
    """Exit now: flush the output, run the atexit hooks (logging's flush, audit rows still batched), close the
    database connections, then `os._exit`. Tearing down ~500 modules and their objects is ~50 ms of a ~250 ms
    `issue list` (issue 16) and does nothing a finished command needs. While a non-daemon thread still runs,
    the normal exit instead (it waits for the thread)."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`... | head`): nothing more to say, as in main
        pass
    atexit._run_exitfuncs()
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()
    sys.stderr.flush()
    os._exit(code)


def _run(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_name(argv))
    args = parser.parse_args(argv)
    target = getattr(args, "_target", None)
    if target is None:
        (getattr(args, "_group", None) or parser).print_help(sys.stderr)
        return 2
    module_name, func_name = target.split(":")
    handler = getattr(importlib.import_module(f"sudocode_cli.commands.{module_name}"), func_name)
    try:
        code = handler(args) or 0
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `... | head`: the reader has what it wanted; say nothing more (Python's own advice)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # one error path for every command: a message, never a traceback
        code, message = _explain(exc)
        if code is None:
            raise
        sys.stderr.write(f"error: {message}\n")
        return code


def _explain(exc: Exception) -> tuple[int | None, str]:
    if isinstance(exc, CliError):
        return exc.code, str(exc)
    from django.core.exceptions import ObjectDoesNotExist, ValidationError

    from federation_site.config import ConfigError, ConfigNotFoundError
    from tracker.jsonl import JsonlFormatError
    from tracker.sync import WriteConflict

    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return 2, "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        return 2, " ".join(exc.messages)
    if isinstance(exc, ObjectDoesNotExist):
        return 1, str(exc)
    if isinstance(exc, ConfigError) and not isinstance(exc, ConfigNotFoundError):
        return 1, (
            f"{exc}\n(a running node keeps its last good config until the file is fixed; "
            "`sudocode-fed policy check` checks the file)"
        )
    if isinstance(exc, (ConfigError, JsonlFormatError, WriteConflict)):
        return 1, str(exc)
    from remotes.client import RemoteError

    if isinstance(exc, RemoteError):
        return 1, str(exc)
    return None, ""


if __name__ == "__main__":
    sys.exit(main())
