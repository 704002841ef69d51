"""The watching node's subscriptions (outgoing rows): which remote entities we watch, and telling the remotes.

Auto-subscribe: a node watches the remote entities its issues and specs reference or are blocked by. The wanted
subscriptions are derived from the cross_repo_references rows: one per (remote, remote entity kind) watching
exactly the referenced ids (`{"entity_type": "issue", "filters": {"ids": [...]}}`), under an id we choose and
that never changes, "auto-" + a hash of (our identity, the remote, the kind); a remote watched for more than
500 ids gets "-1", "-2"... rows for the next ones. `subscriptions_reconcile` brings the outgoing rows in line
(created, watch changed, no longer needed: cancelled) and marks each changed row `pending`;
`subscription_push` then tells the remote (subscribe, or DELETE for a cancelled row), claiming the row first
and backing off with jitter while the remote is down. Nothing here talks to the network inside a transaction.

The callback we give remotes is our REST base + "/webhooks/cross-repo": `endpoints.rest` in
federation.config.json (the base that ends in /api/v1), else the address `sudocode-fed serve` is bound to
(identity.rest_base). A node with neither cannot be called back: its rows are dead with that reason until the
endpoint is declared (the next reconcile revives them).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from federation_site import identity
from federation_site.backoff import backoff
from protocol import messages
from remotes.models import CrossRepoReference, FetchStatus, RemoteRepo
from subscriptions import signals, signing
from subscriptions.models import DeliveryStatus, Direction, Subscription, SubscriptionStatus

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/cross-repo"  # under our REST base (…/api/v1)
IDS_PER_SUBSCRIPTION = 500  # the most ids one watch filter may list (protocol.messages.Ids)
CLAIM_SECONDS = 5 * 60  # a claimed row whose worker died is due again after this


# --- what we want to watch ---------------------------------------------------------------------------------


def callback_url() -> str:
    """Where remotes POST our events: our REST base (identity.rest_base) + /webhooks/cross-repo ("" when unknown)."""
    rest = identity.rest_base()
    return f"{rest}{WEBHOOK_PATH}" if rest else ""


def auto_subscription_id(*, remote_url: str, kind: str, chunk: int = 0) -> str:
    """The id of our auto-subscription to `remote_url`'s entities of `kind`: the same on every run, so
    subscribing again is an idempotent replace at the remote."""
    key = f"{identity.local_url().lower()}|{remote_url.lower()}|{kind}"
    base = "auto-" + hashlib.sha256(key.encode()).hexdigest()[:20]
    return base if chunk == 0 else f"{base}-{chunk}"


def wanted_subscriptions(*, remote: RemoteRepo | None = None) -> dict[str, dict[str, Any]]:
    """The auto-subscriptions the references call for: {subscription_id: {remote, watch}}."""
    refs = CrossRepoReference.objects.exclude(remote_repo=None)
    if remote is not None:
        refs = refs.filter(remote_repo=remote)
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    from remotes.services import kind_of_id

    for url, kind, remote_id in refs.values_list("remote_repo_id", "remote_entity_type", "remote_id"):
        ids[(url, kind or kind_of_id(remote_id))].add(remote_id)
    wanted = {}
    for (url, kind), found in ids.items():
        ordered = sorted(found)
        for chunk, start in enumerate(range(0, len(ordered), IDS_PER_SUBSCRIPTION)):
            watch = {"entity_type": kind, "filters": {"ids": ordered[start : start + IDS_PER_SUBSCRIPTION]}}
            wanted[auto_subscription_id(remote_url=url, kind=kind, chunk=chunk)] = {"remote": url, "watch": watch}
    return wanted


# --- keeping the rows in line ------------------------------------------------------------------------------


def subscriptions_reconcile(*, remote: RemoteRepo | None = None) -> dict[str, list[str]]:
    """Make the outgoing auto-subscriptions (of `remote`, or all) match the cross-repo references: create the
    missing ones, change the watch of those whose ids changed, cancel those no longer needed; each changed row
    is left `pending` for subscription_push. Returns the ids {created, updated, cancelled}. No network."""
    from remotes.services import references_rebuild

    references_rebuild()
    wanted = wanted_subscriptions(remote=remote)
    callback = callback_url()
    local = identity.local_url()
    now = timezone.now()
    summary: dict[str, list[str]] = {"created": [], "updated": [], "cancelled": []}
    with transaction.atomic():
        rows = Subscription.objects.select_for_update().filter(direction=Direction.OUTGOING, auto=True)
        if remote is not None:
            rows = rows.filter(to_repo=remote.url)
        have = {row.subscription_id: row for row in rows}
        for subscription_id, want in wanted.items():
            row = have.get(subscription_id)
            if row is None:
                _create_row(
                    subscription_id=subscription_id,
                    remote_url=want["remote"],
                    watch=want["watch"],
                    callback=callback,
                    local=local,
                    auto=True,
                    now=now,
                )
                summary["created"].append(subscription_id)
            elif (
                row.watch_config != want["watch"]
                or row.callback_url != callback
                or row.status == SubscriptionStatus.CANCELLED
            ):
                Subscription.objects.filter(pk=row.pk).update(
                    watch_config=want["watch"],
                    callback_url=callback,
                    status=SubscriptionStatus.ACTIVE,
                    **_due(now),
                )
                summary["updated"].append(subscription_id)
        for subscription_id, row in have.items():
            if subscription_id not in wanted and row.status != SubscriptionStatus.CANCELLED:
                # Cancelled here first (a webhook for it is answered 410 from now on), then at the remote.
                Subscription.objects.filter(pk=row.pk).update(status=SubscriptionStatus.CANCELLED, **_due(now))
                summary["cancelled"].append(subscription_id)
    if any(summary.values()):
        logger.info("outgoing subscriptions: %s", {k: v for k, v in summary.items() if v})
    return summary


def _due(now) -> dict[str, Any]:
    return {
        "delivery_status": DeliveryStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": "",
        "updated_at": now,
    }


def _create_row(
    *, subscription_id: str, remote_url: str, watch: dict, callback: str, local: str, auto: bool, now
) -> Subscription:
    return Subscription.objects.create(
        subscription_id=subscription_id,
        direction=Direction.OUTGOING,
        from_repo=local,
        to_repo=remote_url,
        watch_config=watch,
        callback_url=callback,
        # The token the remote sends back with every webhook, and the key it signs them with: both ours.
        callback_auth={"type": "bearer", "token": secrets.token_urlsafe(32)},
        secret=signing.new_secret(),
        status=SubscriptionStatus.ACTIVE,
        auto=auto,
        created_at=now,
        updated_at=now,
        delivery_status=DeliveryStatus.PENDING,
        next_attempt_at=now,
    )


def subscription_create(
    *, remote: RemoteRepo, watch: dict[str, Any], since: int | None = None, subscription_id: str | None = None
) -> Subscription:
    """A subscription a person asked for (`sudocode-fed remote subscribe`), pending until pushed. `watch` is
    the seed's {entity_type, filters}; a bad one is a ValidationError naming the field."""
    subscription_id = subscription_id or f"sub-{uuid.uuid4().hex[:16]}"
    _check_message(
        _message(
            remote_url=remote.url,
            watch=watch,
            callback="https://x.invalid/",
            token="t",
            since=since,
            secret=signing.new_secret(),
            subscription_id=subscription_id,
        )
    )
    now = timezone.now()
    if Subscription.objects.filter(pk=subscription_id).exists():
        raise ValidationError({"subscription_id": f"{subscription_id} is already used here"})
    row = _create_row(
        subscription_id=subscription_id,
        remote_url=remote.url,
        watch=watch,
        callback=callback_url(),
        local=identity.local_url(),
        auto=False,
        now=now,
    )
    if since is not None:
        # Asked to hear from `since` on: applied events start there (the remote delivers from there too).
        Subscription.objects.filter(pk=row.pk).update(last_seq=since)
        row.last_seq = since
    transaction.on_commit(lambda: queue_push(row.subscription_id))
    return row


def subscription_cancel(*, subscription_id: str) -> Subscription:
    """Stop watching: cancelled here at once, and at the remote by the next push."""
    row = Subscription.objects.get(pk=subscription_id, direction=Direction.OUTGOING)
    if row.status != SubscriptionStatus.CANCELLED:
        Subscription.objects.filter(pk=row.pk).update(status=SubscriptionStatus.CANCELLED, **_due(timezone.now()))
        transaction.on_commit(lambda: queue_push(subscription_id))
        row.refresh_from_db()
    return row


RETRYABLE = (DeliveryStatus.DEAD, DeliveryStatus.RETRYING, DeliveryStatus.PENDING)


def subscription_retry(*, subscription_id: str) -> Subscription:
    """Push a dead (or waiting) outgoing row again now: after the remote raised our trust level, say (the
    "Retry now" button of /subscriptions/, `subscription retry`). DoesNotExist for an unknown id; a confirmed
    row is left as it is."""
    row = Subscription.objects.get(pk=subscription_id, direction=Direction.OUTGOING)
    if row.delivery_status in RETRYABLE:
        Subscription.objects.filter(pk=row.pk).exclude(delivery_status=DeliveryStatus.SENDING).update(
            **_due(timezone.now())
        )
        transaction.on_commit(lambda: queue_push(subscription_id))
        row.refresh_from_db()
    return row


def subscriptions_retry_failed(*, remote_urls: list[str] | None = None) -> list[str]:
    """Every outgoing row (to `remote_urls`, or to any remote) that failed or waits for its next try is due
    now: what a change of federation.config.json (a trust level, permissions, an endpoint) triggers through
    remotes.signals.remotes_changed, and `subscription retry --all`. Returns the ids made due."""
    rows = Subscription.objects.filter(direction=Direction.OUTGOING, delivery_status__in=RETRYABLE)
    if remote_urls is not None:
        rows = rows.filter(to_repo__in=remote_urls)
    ids = list(rows.values_list("subscription_id", flat=True))
    if not ids:
        return []
    Subscription.objects.filter(pk__in=ids).exclude(delivery_status=DeliveryStatus.SENDING).update(
        **_due(timezone.now())
    )
    for subscription_id in ids:
        transaction.on_commit(lambda subscription_id=subscription_id: queue_push(subscription_id))
    logger.info("outgoing subscriptions retried now: %s", ids)
    return ids


# --- telling the remote ------------------------------------------------------------------------------------


class _Permanent(Exception):
    pass


class _Refused(Exception):
    """The remote refused us (403: not trusted enough; 404: it takes no subscriptions) - its maintainers may
    change that at any time, and nothing tells us when: retried with backoff (capped at 30 minutes), and at
    once when our config changes or someone presses "Retry now"."""


REFUSALS_RETRIED = (403, 404)


def _message(
    *, remote_url: str, watch: dict, callback: str, token: str, secret: str, subscription_id: str, since=None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "subscribe",
        "from": identity.local_url(),
        "to": remote_url,
        "timestamp": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "watch": watch,
        "callback": {"url": callback, "auth": {"type": "bearer", "token": token}, "secret": secret},
        "subscription_id": subscription_id,
    }
    if since is not None:
        message["since"] = since
    return message


def _check_message(message: dict) -> None:
    try:
        messages.parse_message(message)
    except messages.MessageError as exc:
        first = exc.errors[0]
        raise ValidationError({first["path"] or "message": first["message"]}) from None


def subscription_push(*, subscription_id: str) -> str:
    """Tell the remote about one outgoing row if it is due: subscribe (idempotent under our id) or, for a
    cancelled row, DELETE. Only the run that claims the row calls out. Returns what happened: "confirmed",
    "cancelled", "retrying", "refused" (403/404: retried with backoff), "paused" (the remote's circuit breaker
    is open), "dead" or "not due"."""
    from remotes.breaker import CircuitOpen

    now = timezone.now()
    claimed = Subscription.objects.filter(
        pk=subscription_id,
        direction=Direction.OUTGOING,
        delivery_status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
        next_attempt_at__lte=now,
    ).update(
        delivery_status=DeliveryStatus.SENDING,
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
        updated_at=now,
    )
    if not claimed:
        return "not due"
    row = Subscription.objects.get(pk=subscription_id)
    remote = RemoteRepo.objects.filter(url=row.to_repo).first()
    try:
        if row.status == SubscriptionStatus.CANCELLED:
            outcome = _push_cancel(row, remote)
        else:
            outcome = _push_subscribe(row, remote)
    except _Permanent as exc:
        _finish(row, DeliveryStatus.DEAD, error=str(exc))
        logger.warning("subscription %s to %s: %s", row.subscription_id, row.to_repo, exc)
        return "dead"
    except _Refused as exc:
        retry_at = timezone.now() + backoff(row.attempts)
        _finish(row, DeliveryStatus.RETRYING, error=str(exc), next_attempt_at=retry_at)
        logger.info(
            "subscription %s refused by %s (attempt %d): %s", row.subscription_id, row.to_repo, row.attempts, exc
        )
        return "refused"
    except CircuitOpen as exc:  # nothing was sent: wait for the probe time, the attempt not counted
        _finish(row, DeliveryStatus.RETRYING, error=str(exc), next_attempt_at=exc.retry_at, uncount=True)
        return "paused"
    except Exception as exc:  # transient: the remote is down, slow, or answered 5xx; try again later
        _finish(row, DeliveryStatus.RETRYING, error=str(exc), next_attempt_at=timezone.now() + backoff(row.attempts))
        logger.info(
            "subscription %s to %s failed (attempt %d): %s", row.subscription_id, row.to_repo, row.attempts, exc
        )
        return "retrying"
    return outcome


def _push_subscribe(row: Subscription, remote: RemoteRepo | None) -> str:
    from remotes.client import RemoteRejected
    from remotes.sync import audited_call, client_for

    if remote is None:
        raise _Permanent(f"{row.to_repo} is no longer a remote of this node")
    if not row.callback_url:
        raise _Permanent(
            "this node declares no REST endpoint, so the remote could not call us back: set endpoints.rest in "
            ".sudocode/federation.config.json (e.g. https://frontend.dev/api/v1)"
        )
    if not identity.local_url():
        raise _Permanent("this node has no local_identity.url in federation.config.json")
    token = (row.callback_auth or {}).get("token") or ""
    # A subscription asked to start at `since` says so until its first event arrives; any other starts at the
    # remote's head when it first accepts us (then last_seq is 0 and nothing was received yet).
    since = row.last_seq if (not row.auto and row.event_count == 0 and row.last_seq) else None
    new = since is None and row.last_seq == 0 and row.event_count == 0
    message = _message(
        remote_url=remote.url,
        watch=row.watch_config,
        callback=row.callback_url,
        token=token,
        secret=row.secret,
        subscription_id=row.subscription_id,
        since=since,
    )
    try:
        _check_message(message)
    except ValidationError as exc:
        raise _Permanent(f"our subscribe message is not valid: {'; '.join(exc.messages)}") from None
    filters = row.watch_config.get("filters") or {}
    try:
        response = audited_call(
            remote,
            "subscribe",
            lambda: client_for(remote, "subscribe", retries=0).post("/federation/subscribe", message),
            payload={
                "subscription_id": row.subscription_id,
                "entity_type": row.watch_config.get("entity_type"),
                "ids": len(filters.get("ids") or []),
                "filters": sorted(filters),
            },
        )
    except RemoteRejected as exc:  # 403 (not trusted enough), 400, 404 (no subscriptions there), 409
        if exc.status in REFUSALS_RETRIED:
            raise _Refused(str(exc)) from exc
        raise _Permanent(str(exc)) from exc
    try:
        answer = messages.parse_response(response.data)
    except messages.MessageError as exc:
        raise _Permanent(f"{remote.url} answered the subscribe call with no subscribe_response: {exc}") from None
    if answer.type != "subscribe_response" or answer.subscription_id != row.subscription_id:
        raise _Permanent(f"{remote.url} answered for another subscription ({getattr(answer, 'subscription_id', '?')})")
    _finish(row, DeliveryStatus.CONFIRMED, status=answer.status, secret=answer.secret)
    if new:
        # Events up to the remote's head when it accepted us are not ours to hear: we start there. (Never
        # backwards: an event may already have arrived and been applied while we waited for this answer.)
        Subscription.objects.filter(pk=row.pk, last_seq__lt=answer.head_seq).update(last_seq=answer.head_seq)
    _refresh_watched(row)
    return "confirmed"


def _push_cancel(row: Subscription, remote: RemoteRepo | None) -> str:
    from remotes.client import RemoteRejected
    from remotes.sync import audited_call, client_for

    if remote is None or not remote.rest_endpoint:
        _finish(row, DeliveryStatus.CONFIRMED, error="the remote is gone: nothing to cancel there")
        return "cancelled"
    try:
        audited_call(
            remote,
            "unsubscribe",
            lambda: client_for(remote, "subscribe", retries=0).delete(f"/federation/subscribe/{row.subscription_id}"),
            payload={"subscription_id": row.subscription_id},
        )
    except RemoteRejected as exc:
        if exc.status not in (404, 410):
            raise _Permanent(str(exc)) from exc
        # It does not know the subscription (any more): cancelled is what we wanted.
    _finish(row, DeliveryStatus.CONFIRMED)
    return "cancelled"


def _finish(
    row: Subscription,
    delivery_status: str,
    *,
    error: str = "",
    next_attempt_at=None,
    uncount: bool = False,
    **fields: Any,
) -> None:
    updates: dict[str, Any] = {
        "delivery_status": delivery_status,
        "last_error": error[:2000],
        "next_attempt_at": next_attempt_at,
        "updated_at": timezone.now(),
    }
    if delivery_status == DeliveryStatus.CONFIRMED:
        updates["attempts"] = 0
    elif uncount:
        updates["attempts"] = F("attempts") - 1
    if fields.get("status") and row.status != SubscriptionStatus.CANCELLED:
        updates["status"] = fields["status"]
    if fields.get("secret"):
        updates["secret"] = fields["secret"]
    # Only if still ours: a reconcile that changed the watch meanwhile left the row pending, to be pushed again.
    Subscription.objects.filter(pk=row.pk, delivery_status=DeliveryStatus.SENDING).update(**updates)


def _refresh_watched(row: Subscription) -> None:
    """After a (re)subscription: fetch the watched references never fetched, or stale, so an entity that
    changed before we subscribed (a blocker already closed) is known without waiting for its next event."""
    from remotes.client import RemoteError
    from remotes.sync import references_refresh

    ids = (row.watch_config.get("filters") or {}).get("ids") or []
    if not ids:
        return
    refs = list(
        CrossRepoReference.objects.filter(remote_repo_id=row.to_repo, remote_id__in=ids).select_related("remote_repo")
    )
    try:
        references_refresh(refs=refs)
    except RemoteError as exc:  # the events will bring it; the lazy refresh too
        logger.info("could not refresh the references watched by %s: %s", row.subscription_id, exc)


def due(*, limit: int = 200) -> list[str]:
    """Outgoing rows whose push is due, including those a crashed worker left claimed."""
    now = timezone.now()
    Subscription.objects.filter(
        direction=Direction.OUTGOING, delivery_status=DeliveryStatus.SENDING, next_attempt_at__lte=now
    ).update(delivery_status=DeliveryStatus.RETRYING)
    return list(
        Subscription.objects.filter(
            direction=Direction.OUTGOING,
            delivery_status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING],
            next_attempt_at__lte=now,
        )
        .order_by("next_attempt_at")
        .values_list("subscription_id", flat=True)[:limit]
    )


def subscriptions_resume() -> int:
    """When this node starts (`serve`): subscribe again to everything it watches. A remote that kept failing to
    reach us backs off, up to half an hour between tries; a subscribe with the same id makes that stream due at
    once, so what we missed while down arrives now. It also tells remotes our callback address if it changed
    (another port). No network here: the push task sends them (within seconds, by beat)."""
    now = timezone.now()
    rows = Subscription.objects.filter(direction=Direction.OUTGOING, status=SubscriptionStatus.ACTIVE).exclude(
        delivery_status=DeliveryStatus.SENDING
    )
    url = callback_url()
    if url:
        rows.filter(auto=True).update(callback_url=url)
    return rows.update(delivery_status=DeliveryStatus.PENDING, next_attempt_at=now, attempts=0, updated_at=now)


def push_due() -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for subscription_id in due():
        counts[subscription_push(subscription_id=subscription_id)] += 1
    return dict(counts)


def subscriptions_sync() -> dict[str, Any]:
    """Reconcile every outgoing auto-subscription, then push what is due (the periodic task, and what a change
    of references queues). Never inside a transaction: pushes call out."""
    summary: dict[str, Any] = dict(subscriptions_reconcile())
    summary["pushed"] = push_due()
    summary["fetched"] = _fetch_new_references()
    return summary


def _fetch_new_references() -> int:
    """References never fetched (a new reference to an entity already watched brings no push, and its entity
    may never change again: a blocker closed long ago) get their cached data now, in one query per remote."""
    from remotes.client import RemoteError
    from remotes.sync import references_refresh

    # Never tried (pending): one that failed waits for its subscription's confirmation, an event, or a lazy
    # refresh, rather than a query (and an audit row) every minute to a remote that is down.
    new = list(
        CrossRepoReference.objects.filter(last_fetched_at=None, fetch_status=FetchStatus.PENDING)
        .exclude(remote_repo=None)
        .exclude(remote_repo__rest_endpoint="")
        .select_related("remote_repo")
    )
    if not new:
        return 0
    try:
        return references_refresh(refs=new)
    except RemoteError as exc:
        logger.info("could not fetch new references: %s", exc)
        return 0


# --- queueing (after the commit that changed the references) ------------------------------------------------


def references_changed() -> None:
    """Queue a reconcile and push after the current transaction commits (at once outside of one): what
    tracker writes call when an entity's cross-repo references may have changed."""
    transaction.on_commit(_queue_sync)


def _queue_sync() -> None:
    signals.auto_subscriptions_due.send(sender=Subscription)


def queue_push(subscription_id: str) -> None:
    signals.push_due.send(sender=Subscription, subscription_id=subscription_id)
