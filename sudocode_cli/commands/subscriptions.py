"""`subscriptions list` and `subscription redeliver`: thin callers of the subscriptions app."""

from __future__ import annotations

import argparse
import sys

from sudocode_cli import runtime
from sudocode_cli.errors import CliError
from sudocode_cli.output import print_json, print_table


def list_(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from subscriptions.selectors import subscription_summary, subscriptions_list, watch_text

    rows = subscriptions_list(direction=args.direction, limit=args.limit)
    if args.format == "json":
        print_json([subscription_summary(r) for r in rows])
        return 0
    if not rows:
        sys.stderr.write("No subscriptions.\n")
        return 0
    print_table(
        [
            (
                r.subscription_id,
                r.direction,
                r.from_repo if r.direction == "incoming" else r.to_repo,
                watch_text(r.watch_config or {}),
                r.status,
                r.delivery_status,
                f"{r.cursor_seq}/{r.last_seq}" if r.direction == "incoming" else r.last_seq,
                r.attempts,
                r.last_error,
            )
            for r in rows
        ],
        ("id", "dir", "remote", "watch", "status", "delivery", "seq", "tries", "last error"),
    )
    return 0


def redeliver(args: argparse.Namespace) -> int:
    runtime.setup(args.repo)
    from subscriptions import delivery
    from subscriptions.models import Subscription

    row = Subscription.objects.filter(pk=args.subscription_id, direction="incoming").first()
    if row is None:
        raise Subscription.DoesNotExist(
            f"no incoming subscription {args.subscription_id!r}: see `sudocode-fed subscriptions list`"
        )
    if not delivery.redeliver(row.subscription_id):
        raise CliError(f"{row.subscription_id} is not dead (its delivery is {row.delivery_status}); nothing to do")
    print(f"→ {row.subscription_id}: delivering again from event #{row.cursor_seq} to {row.callback_url}")
    print("→ The worker of `sudocode-fed serve` sends it")
    return 0
