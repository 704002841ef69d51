"""The watched node's side of subscriptions: accepting one (subscribe), cancelling it, and the catch-up feed.

An incoming subscription is one row keyed by the subscriber-chosen `subscription_id`; the same row is the
delivery state of its webhook stream (subscriptions.delivery). Who may subscribe and which fields an event
shows them is subscriptions.policy's call, asked again at every delivery and every catch-up read, so a remote
whose trust is lowered stops hearing what it may no longer see.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from events.selectors import event_body, event_matches, events_after, head_seq
from federation_site import identity, node
from protocol import messages
from remotes import policy as remote_policy
from remotes.models import RemoteRepo
from remotes.policy import Caller, PermissionDenied
from remotes.selectors import url_refusal
from subscriptions import signing
from subscriptions.models import DeliveryStatus, Direction, Subscription, SubscriptionStatus
from subscriptions.policy import subscribe_fields, subscriptions_max

FEED_LIMIT = 100  # events per catch-up page, by default
FEED_MAX_LIMIT = 500
FEED_SCAN = 5000  # outbox rows one catch-up read looks at (most may not match the watch)

# The entity field each filter reads: a subscriber may only filter on what it may see, or the matches alone
# would tell it the hidden value.
_FILTER_FIELDS = {
    "status": "status",
    "labels": "tags",
    "priority": "priority",
    "ids": "id",
    "spec_refs": "spec_refs",
    "updated_since": "updated_at",
}


class SubscriptionConflict(Exception):
    """The subscription_id is taken by another repository (HTTP 409)."""


def new_subscription_id() -> str:
    return f"sub-{uuid.uuid4().hex[:16]}"


def watch_fields(*, caller: Caller, watch: messages.Watch) -> frozenset[str]:
    """The fields `caller` hears about on a subscription to `watch`, or PermissionDenied: it may not subscribe,
    may not see that kind of entity, or filters on something it may not see. (The WebSocket endpoint asks the
    same question.)"""
    cfg = node.config()
    fields = subscribe_fields(caller, cfg)
    used = {name for name in remote_policy.FILTERS if getattr(watch.filters, name, None) is not None}
    try:
        grant = remote_policy.query_grant(caller, cfg)
    except PermissionDenied:
        grant = None  # may subscribe without querying (permissions.subscribe.allowed): public fields only
    if grant is not None:
        remote_policy.check_query(grant, caller, entity=watch.entity_type, filters=used, include=set())
    hidden = sorted(name for name in used if _FILTER_FIELDS[name] not in fields)
    if hidden:
        raise PermissionDenied(f"{caller} may not filter on {', '.join(hidden)} (it cannot see those fields)")
    if watch.entity_type == "spec" and watch.filters.status is not None:
        raise messages.MessageError.at("watch.filters.status", "specs have no status")
    return fields


def subscription_receive(
    *, caller: Caller, message: messages.SubscribeMessage, correlation_id: str, base_url: str
) -> tuple[dict, int]:
    """Accept (or renew) an incoming subscription: (subscribe_response, HTTP status).

    The same subscription_id sent again by the same repository is the same subscription: its watch and
    callback are replaced, a dead delivery stream is revived, and the cursor moves only when `since` is given.
    403 (PermissionDenied) when the caller may not subscribe or has max_subscriptions active already; 409 when
    another repository uses the id.
    """
    started = time.perf_counter()
    summary = {
        "subscription_id": message.subscription_id,
        "entity_type": message.watch.entity_type,
        "filters": sorted(n for n in remote_policy.FILTERS if getattr(message.watch.filters, n, None) is not None),
        "callback": message.callback.url if message.callback else None,
        "since": message.since,
    }

    def audit(status: str, error: str = "", subscription_id: str = "") -> None:
        audit_record(
            operation="subscribe",
            direction="incoming",
            local_repo=identity.local_url(),
            remote_repo=caller.identity,
            status=status,
            payload={**summary, "subscription_id": subscription_id or message.subscription_id},
            error=error,
            correlation_id=correlation_id,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    try:
        if message.callback is None:
            raise messages.MessageError.at("callback", "missing (required over REST: where to POST the events)")
        watch_fields(caller=caller, watch=message.watch)
        refused = url_refusal(caller.identity, str(message.callback.url))
        if refused:  # issue 17: nothing is stored, nothing is called
            raise messages.MessageError.at("callback.url", f"refused: {refused}")
        head = head_seq()
        if message.since is not None and message.since > head:
            raise messages.MessageError.at("since", f"{message.since} is after this node's last event ({head})")
        row, made_secret = _upsert(caller=caller, message=message, head=head)
    except SubscriptionConflict as exc:
        audit("failed", str(exc))
        return {"error": "conflict", "detail": str(exc)}, 409
    except (PermissionDenied, messages.MessageError) as exc:
        audit("failed", str(exc))
        raise
    audit("success", subscription_id=row.subscription_id)
    response = messages.SubscribeResponse(
        type="subscribe_response",
        from_=identity.local_url() or None,
        to=caller.identity or None,
        timestamp=timezone.now(),
        correlation_id=correlation_id,
        subscription_id=row.subscription_id,
        status=row.status,
        head_seq=head,
        secret=row.secret if made_secret else None,
        events_url=f"{_rest_base(base_url)}/federation/events?subscription={row.subscription_id}",
    )
    return messages.dump(response), 200


def _rest_base(base_url: str) -> str:
    cfg = node.config()
    if cfg is not None and cfg.endpoints.rest:
        return str(cfg.endpoints.rest).rstrip("/")
    return f"{base_url.rstrip('/')}/api/v1"


def _upsert(*, caller: Caller, message: messages.SubscribeMessage, head: int) -> tuple[Subscription, bool]:
    """The subscription row, created or renewed, and whether the secret is ours to tell (the message gave none)."""
    callback = message.callback
    assert callback is not None
    subscription_id = message.subscription_id or new_subscription_id()
    watch = messages.dump(message.watch)
    auth = messages.dump(callback.auth) if callback.auth else None
    start = message.since if message.since is not None else head
    for attempt in range(2):
        now = timezone.now()
        try:
            with transaction.atomic():
                row = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
                if row is not None and (row.direction != Direction.INCOMING or row.from_repo != caller.identity):
                    raise SubscriptionConflict(
                        f"subscription_id {subscription_id} is already used by another repository; choose a new one"
                    )
                _check_max(caller, exclude=subscription_id)
                if row is None:
                    row = Subscription.objects.create(
                        subscription_id=subscription_id,
                        direction=Direction.INCOMING,
                        from_repo=caller.identity,
                        to_repo=identity.local_url(),
                        watch_config=watch,
                        callback_url=callback.url,
                        callback_auth=auth,
                        status=SubscriptionStatus.ACTIVE,
                        created_at=now,
                        secret=callback.secret or signing.new_secret(),
                        cursor_seq=start,
                        last_seq=start,
                        delivery_status=DeliveryStatus.IDLE,
                        updated_at=now,
                    )
                else:
                    _renew(row, watch=watch, callback=callback, auth=auth, since=message.since, now=now)
            return row, callback.secret is None
        except IntegrityError:
            if attempt:  # created by the same call arriving twice at once: the second pass renews it
                raise
    raise AssertionError("unreachable")


def _renew(row: Subscription, *, watch: dict, callback: messages.Callback, auth: dict | None, since, now) -> None:
    row.watch_config = watch
    row.callback_url = callback.url
    row.callback_auth = auth
    if callback.secret:
        row.secret = callback.secret
    row.status = SubscriptionStatus.ACTIVE
    if since is not None:
        row.cursor_seq = row.last_seq = since
    if row.delivery_status in (DeliveryStatus.DEAD, DeliveryStatus.RETRYING):
        # The subscriber says it is listening again: try now. A run in progress (sending) keeps its claim.
        row.delivery_status, row.attempts, row.next_attempt_at = DeliveryStatus.PENDING, 0, now
    row.updated_at = now
    row.save()


def _check_max(caller: Caller, *, exclude: str) -> None:
    limit = subscriptions_max(caller, node.config())
    active = (
        Subscription.objects.filter(
            direction=Direction.INCOMING, from_repo=caller.identity, status=SubscriptionStatus.ACTIVE
        )
        .exclude(pk=exclude)
        .count()
    )
    if active >= limit:
        raise PermissionDenied(
            f"{caller} has {active} active subscriptions here and may have at most {limit} "
            "(max_subscriptions): cancel one first"
        )


def subscription_get(*, caller: Caller, subscription_id: str) -> Subscription:
    """The caller's own incoming subscription; DoesNotExist for an unknown id or another repository's (whether
    it exists is not the caller's business)."""
    row = Subscription.objects.filter(pk=subscription_id, direction=Direction.INCOMING).first()
    if row is None or not caller.remote or row.from_repo != caller.identity:
        raise Subscription.DoesNotExist(f"no subscription {subscription_id!r} of {caller}")
    return row


def subscription_cancel(*, caller: Caller, subscription_id: str, correlation_id: str = "") -> Subscription:
    """The subscriber cancels: no more deliveries. Cancelling again changes nothing."""
    row = subscription_get(caller=caller, subscription_id=subscription_id)
    if row.status != SubscriptionStatus.CANCELLED:
        Subscription.objects.filter(pk=row.pk).update(status=SubscriptionStatus.CANCELLED, updated_at=timezone.now())
        row.refresh_from_db()
        audit_record(
            operation="unsubscribe",
            direction="incoming",
            local_repo=identity.local_url(),
            remote_repo=caller.identity,
            status="success",
            payload={"subscription_id": subscription_id},
            correlation_id=correlation_id,
        )
    return row


def subscription_state(row: Subscription) -> dict[str, Any]:
    """What the subscriber may know of its subscription (the answer to a cancel)."""
    return {
        "subscription_id": row.subscription_id,
        "status": row.status,
        "watch": row.watch_config,
        "cursor_seq": row.cursor_seq,
        "last_seq": row.last_seq,
        "event_count": row.event_count,
        "delivery_status": row.delivery_status,
    }


def events_for(*, caller: Caller, subscription_id: str, after: int, limit: int = FEED_LIMIT) -> dict[str, Any]:
    """The catch-up feed: the subscription's matching events after `after`, in sequence order, each with the
    `previous_seq` a receiver checks its chain against (the seq of the previous event in the feed; `after` for
    the first), projected to what the subscriber may see now.

    `next_after` is how far the outbox was read: ask again with after=next_after while `more` is true. (It can
    be beyond the last event returned: the events in between did not match.)"""
    row = subscription_get(caller=caller, subscription_id=subscription_id)
    fields = subscribe_fields(caller, node.config())
    limit = max(1, min(limit, FEED_MAX_LIMIT))
    found: list[dict[str, Any]] = []
    scanned = previous = after
    budget = FEED_SCAN
    full = False
    while budget > 0 and not full:
        batch = events_after(scanned, limit=min(500, budget))
        if not batch:
            break
        budget -= len(batch)
        for event in batch:
            if len(found) >= limit:
                full = True
                break
            scanned = event.seq
            if event_matches(event, row.watch_config):
                found.append({"previous_seq": previous, "event": event_body(event, fields=fields)})
                previous = event.seq
    head = head_seq()
    return {
        "subscription_id": row.subscription_id,
        "status": row.status,
        "events": found,
        "head_seq": head,
        "next_after": scanned,
        "more": scanned < head,
    }


def subscriber_caller(row: Subscription) -> Caller:
    """The subscriber of an incoming subscription as a Caller (for the policy), or PermissionDenied when it is
    no longer a remote of this node."""
    remote = RemoteRepo.objects.filter(url=row.from_repo).first()
    if remote is None:
        raise PermissionDenied(f"{row.from_repo} is no longer a remote of this node")
    return Caller(remote)
