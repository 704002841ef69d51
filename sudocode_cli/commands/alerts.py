"""`sudocode-fed alerts list|check`: the seed's alerts (alerts/), thin over its selectors and services."""

from __future__ import annotations

import argparse

from sudocode_cli import runtime
from sudocode_cli.output import print_json, print_table


def alerts_list(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from alerts.selectors import alerts_recent

    alerts = alerts_recent(days=args.days)
    if args.format == "json":
        print_json(alerts)
        return 0
    if not alerts:
        print(f"No alert firing or resolved in the last {args.days:g} days.")
        return 0
    print_table(
        [(a["status"], a["kind"], a["fired_at"][:19], (a["resolved_at"] or "")[:19], a["summary"]) for a in alerts],
        ("status", "alert", "fired", "resolved", "what"),
    )
    return 0


def alerts_check(args: argparse.Namespace) -> int:
    """Evaluate the alerts now and send what they owe (what the worker's beat does every 30 s)."""
    runtime.setup(args.repo)
    from alerts.delivery import deliver_due
    from alerts.services import alerts_evaluate

    outcome = alerts_evaluate()
    sent = deliver_due()
    if args.format == "json":
        print_json({**outcome, "deliveries": sent})
        return 0
    for summary in outcome["fired"]:
        print(f"fired: {summary}")
    for summary in outcome["resolved"]:
        print(f"resolved: {summary}")
    if not outcome["fired"] and not outcome["resolved"]:
        print("Nothing changed.")
    if sent:
        print("notifications: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(sent.items())))
    return 0
