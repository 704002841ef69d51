"""`subscriptions list`, `subscription redeliver` and `subscription retry`: thin callers of the subscriptions app."""

from __future__ import annotations

import argparse
import sys

from sudocode_cli import runtime
from sudocode_cli.errors import CliError, UsageError
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


def retry(args: argparse.Namespace) -> int:
    if bool(args.subscription_id) == bool(args.all):
        raise UsageError("give one outgoing subscription id, or --all (see `sudocode-fed subscriptions list`)")
    runtime.setup(args.repo)
    from subscriptions import outgoing
    from subscriptions.models import Subscription

    if args.all:
        ids = outgoing.subscriptions_retry_failed()
        print(f"→ {len(ids)} outgoing subscription(s) due now{': ' + ', '.join(ids) if ids else ''}")
    else:
        try:
            row = outgoing.subscription_retry(subscription_id=args.subscription_id)
        except Subscription.DoesNotExist:
            raise Subscription.DoesNotExist(
                f"no outgoing subscription {args.subscription_id!r}: see `sudocode-fed subscriptions list "
                "--direction outgoing`"
            ) from None
        if row.delivery_status not in outgoing.RETRYABLE:
            raise CliError(f"{row.subscription_id} is {row.delivery_status}: nothing to retry")
        print(f"→ {row.subscription_id}: subscribing again to {row.to_repo} now")
    print("→ The worker of `sudocode-fed serve` sends it")
    return 0
