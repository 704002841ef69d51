"""Celery tasks: each loads its row and calls a service; all are safe to run twice."""

from federation_site.celery import app  # noqa: F401

# --- webhook delivery (the watched node) ---------------------------------------------------------------------


@app.task(ignore_result=True)
def fan_out() -> int:
    """Woken after every committed event: deliver each subscription that is behind, concurrently."""
    from subscriptions import delivery

    return len(delivery.fan_out())


@app.task(ignore_result=True)
def deliver_due() -> int:
    """Periodic: what a lost wake-up, a retry coming due or a crashed worker's expired claim left waiting."""
    from subscriptions import delivery

    return len(delivery.fan_out())


# --- auto-subscribe and repairs (the watching node) ----------------------------------------------------------


@app.task(ignore_result=True)
def sync_outgoing() -> dict:
    """Queued after references change, and periodic: outgoing auto-subscriptions in line with the references,
    then every due push (subscribe or cancel at the remote)."""
    from subscriptions import outgoing

    return outgoing.subscriptions_sync()


@app.task(ignore_result=True)
def push_outgoing(subscription_id: str) -> str:
    from subscriptions import outgoing

    return outgoing.subscription_push(subscription_id=subscription_id)


@app.task(ignore_result=True)
def push_outgoing_due() -> dict:
    """Periodic: pushes whose retry came due, and those a crashed worker left claimed."""
    from subscriptions import outgoing

    return outgoing.push_due()


@app.task(ignore_result=True)
def reconcile_blocked() -> int:
    """Periodic and cheap: issues blocked by remote entities follow what we know of them (a repair: events and
    refreshes reconcile the issues they touch at once)."""
    from remotes.blocking import blocked_status_reconcile

    return len(blocked_status_reconcile())


# --- retention ------------------------------------------------------------------------------------------------


@app.task(ignore_result=True)
def prune_retention() -> dict:
    """Periodic (hourly): old outbox events, received events and audit rows (subscriptions/retention.py)."""
    from subscriptions.retention import retention_prune

    return retention_prune()
