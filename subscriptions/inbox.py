"""The watching node's inbox: events that arrive by webhook on our outgoing subscriptions.

Checked in this order (STYLE.md habit 8): size; the subscription (X-Sudocode-Subscription, one of our outgoing
rows); the bearer token we gave with the callback (constant time); the HMAC signature and its timestamp window
(subscriptions.signing); whether we cancelled the subscription (410, so the sender stops); the message itself
(protocol.messages.parse_event) and that it comes from the remote we subscribed to; then duplicates by event
id. A message seen before with the same signature timestamp is a replay (401); a sender's retry is signed anew
and is answered 200 "duplicate" without being applied twice. An event applied leaves an incoming `event` audit row
(with the sender's RFC 9421 signature when it carried one that verified: issue 17).

Events of one subscription are applied in the sender's order. Each carries the sequence number of the event
the sender sent before it on this subscription (X-Sudocode-Previous-Sequence); ours is `last_seq`:
- seq <= last_seq: seen already (duplicate, 200);
- previous <= last_seq: nothing is missing, apply it;
- previous > last_seq: we missed something. The missing events are fetched from the sender's catch-up feed
  (GET /federation/events?subscription=&after=last_seq) and applied in order first, outside any transaction;
  if that fails the answer is 503 with Retry-After, and the sender delivers it again later.

Applying an event is one transaction: the ReceivedEvent row (unique event id), the cached data of every
cross-repo reference to that entity, and the subscription's last_seq. After it commits, the local issues the
entity blocks are unblocked (or blocked again) by remotes.blocking, through normal tracker writes.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record_later, received_signature
from protocol import messages
from remotes.auth import bearer_token, signature_check
from remotes.models import CrossRepoReference, FetchStatus, RemoteRepo
from remotes.policy import ANONYMOUS, Caller
from remotes.services import reference_state, references_announce
from remotes.signatures import SignatureProblem
from subscriptions import signing
from subscriptions.models import Direction, ReceivedEvent, Subscription, SubscriptionStatus

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = messages.MAX_MESSAGE_BYTES
CATCH_UP_PAGE = 100
CATCH_UP_PAGES = 50  # events one delivery may fetch to fill a gap: 5,000; the next delivery goes on
RETRY_AFTER = 30  # seconds, when the gap cannot be filled now

SUBSCRIPTION_HEADER = "X-Sudocode-Subscription"
EVENT_ID_HEADER = "X-Sudocode-Event-Id"
SEQUENCE_HEADER = "X-Sudocode-Sequence"
PREVIOUS_HEADER = "X-Sudocode-Previous-Sequence"
FROM_HEADER = "X-Sudocode-From"
_SUBSCRIPTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

Answer = tuple[dict[str, Any], int]


class CatchUpFailed(Exception):
    """The missing events could not be fetched (or did not fill the gap): try again later."""


def _error(status: int, error: str, detail: str, **extra: Any) -> Answer:
    return {"error": error, "detail": detail, **extra}, status


def _invalid(path: str, message: str) -> Answer:
    return {
        "error": "invalid event",
        "detail": f"{path}: {message}",
        "errors": [{"path": path, "message": message}],
    }, 400


def too_large(size: int) -> Answer:
    return _error(413, "too_large", f"the body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes")


def refuse_before_reading(content_length: str | None) -> Answer | None:
    """The answer to a delivery whose Content-Length says it cannot be read (not a number, or too large),
    before anything reads the body; None when it may be read."""
    if content_length in (None, ""):
        return None
    size = messages.parse_count(content_length, max_digits=30)
    if size is None:
        return _invalid("Content-Length", f"{content_length[:40]!r} is not a number of bytes")
    return too_large(size) if size > MAX_BODY_BYTES else None


def _same_repo(a: str | None, b: str | None) -> bool:
    return (a or "").strip().rstrip("/").lower() == (b or "").strip().rstrip("/").lower()


def webhook_receive(*, headers: Mapping[str, str], body: bytes, url: str = "") -> Answer:
    """One webhook delivery: (answer body, HTTP status). `headers` as received (any case); `body` the raw
    bytes the signature covers; `url` the absolute URL it was POSTed to (what an RFC 9421 signature covers).
    See the module's docstring for what is checked and every answer."""
    h = {k.lower(): v for k, v in headers.items()}
    if len(body) > MAX_BODY_BYTES:
        return too_large(len(body))
    subscription_id = (h.get(SUBSCRIPTION_HEADER.lower()) or "").strip()
    if not subscription_id:
        return _invalid(SUBSCRIPTION_HEADER, "missing header: which of our subscriptions this event is for")
    # Only an id we could have made is looked up (a NUL would be a database error on PostgreSQL).
    row = (
        Subscription.objects.filter(pk=subscription_id, direction=Direction.OUTGOING).first()
        if _SUBSCRIPTION_ID.fullmatch(subscription_id)
        else None
    )
    if row is None:
        return _error(404, "not_found", f"no subscription {subscription_id[:80]!r} here")

    expected = str((row.callback_auth or {}).get("token") or "")
    token = bearer_token(h.get("authorization")) or ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return _error(401, "unauthorized", "missing or wrong Authorization: Bearer token for this subscription")
    try:
        signed_at = signing.verify(row.secret, h.get(signing.SIGNATURE_HEADER.lower()), body)
    except signing.SignatureError as exc:
        return _error(401, "unauthorized", str(exc))
    # The watched node's own signature (issue 17), when it is one of our remotes with a pinned key.
    watched = RemoteRepo.objects.filter(url=row.to_repo).first()
    try:
        verified = signature_check(
            Caller(watched) if watched else ANONYMOUS, method="POST", url=url, headers=headers, body=body
        )
    except SignatureProblem as exc:
        return _error(401, "unauthorized", str(exc))
    received_signature.set(verified.as_record() if verified else None)
    if row.status == SubscriptionStatus.CANCELLED:
        return _error(410, "gone", f"subscription {subscription_id} was cancelled by this node: stop sending")

    try:
        data = messages.parse_body(body)
        message = messages.parse_event(data)
    except messages.MessageError as exc:
        return {**exc.as_json(), "detail": str(exc)}, 400
    if not _same_repo(message.from_, row.to_repo):
        return _invalid("from", f"{message.from_!r} is not {row.to_repo}, the repository this subscription watches")
    if h.get(FROM_HEADER.lower()) and not _same_repo(h[FROM_HEADER.lower()], row.to_repo):
        return _invalid(FROM_HEADER, f"{h[FROM_HEADER.lower()]!r} is not {row.to_repo}")
    if message.to and row.from_repo and not _same_repo(message.to, row.from_repo):
        return _invalid("to", f"{message.to!r} is not this node ({row.from_repo})")
    event = message.event
    try:
        event_id = uuid.UUID(event.id)
    except ValueError:
        return _invalid("event.id", f"{event.id!r} is not a UUID")
    given_id = (h.get(EVENT_ID_HEADER.lower()) or "").strip()
    if given_id and given_id.lower() != event.id.lower():
        return _invalid(EVENT_ID_HEADER, f"{given_id!r} is not the event's id ({event.id})")
    given_seq = (h.get(SEQUENCE_HEADER.lower()) or "").strip()
    if given_seq and given_seq != str(event.seq):
        return _invalid(SEQUENCE_HEADER, f"{given_seq!r} is not the event's seq ({event.seq})")
    previous = messages.parse_count((h.get(PREVIOUS_HEADER.lower()) or "").strip())
    if previous is None:
        return _invalid(PREVIOUS_HEADER, "missing or not a sequence number (0 for the first event sent)")
    if previous >= event.seq:
        return _invalid(PREVIOUS_HEADER, f"{previous} is not before the event's seq ({event.seq})")

    seen = ReceivedEvent.objects.filter(event_id=event_id).first()
    if seen is not None:
        if seen.signed_at == signed_at:
            return _error(401, "unauthorized", f"replayed: event {event.id} was received with this signature before")
        ReceivedEvent.objects.filter(pk=seen.pk).update(signed_at=signed_at)
        return {"status": "duplicate", "seq": event.seq}, 200
    if event.seq <= row.last_seq:
        return {"status": "duplicate", "seq": event.seq}, 200

    affected: set[str] = set()
    caught_up = 0
    try:
        if previous > row.last_seq:
            try:
                caught_up = _catch_up(row, until=previous, affected=affected)
            except CatchUpFailed as exc:
                logger.info("subscription %s: gap before #%s not filled: %s", row.subscription_id, event.seq, exc)
                return _error(
                    503,
                    "unavailable",
                    f"events {row.last_seq + 1}..{previous} are missing and could not be fetched yet: {exc}",
                    retry_after=RETRY_AFTER,
                )
        outcome = _apply(
            row,
            event=event,
            raw=data["event"],
            event_id=event_id,
            previous=previous,
            signed_at=signed_at,
            affected=affected,
        )
    finally:
        _after_apply(affected)
    if outcome == "duplicate" and caught_up:
        outcome = "applied"  # the feed brought this very event, and it was applied with the others
    if outcome == "gap":  # another delivery moved the subscription meanwhile: the sender tries again
        # 503, not 409: the sender treats a 4xx as permanent, and this one passes in a moment.
        return _error(503, "busy", "another delivery of this subscription is being applied", retry_after=1)
    answer: dict[str, Any] = {"status": outcome, "seq": event.seq}
    if caught_up:
        answer["caught_up"] = caught_up
    # What the watched node sent, kept with its RFC 9421 signature when it carried one that verified (issue 17).
    # Queued like a read's row (written with others within audit.services.BATCH_SECONDS): one row per applied
    # event, on the path every propagated change takes.
    audit_record_later(
        operation="event",
        direction="incoming",
        local_repo=row.from_repo,
        remote_repo=row.to_repo,
        status="success",
        correlation_id=h.get("x-correlation-id") or "",
        payload={
            "subscription_id": row.subscription_id,
            "event_id": event.id,
            "seq": event.seq,
            "type": event.type,
            "entity": event.entity.id,
        },
        result=answer,
    )
    return answer, 200


def _apply(
    row: Subscription,
    *,
    event: messages.EventBody,
    raw: dict,
    event_id: uuid.UUID,
    previous: int,
    signed_at: int | None,
    affected: set[str],
) -> str:
    """Apply one event in one transaction: "applied", "duplicate" (seen meanwhile) or "gap" (not next)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            sub = Subscription.objects.select_for_update().get(pk=row.pk)
            if event.seq <= sub.last_seq or ReceivedEvent.objects.filter(event_id=event_id).exists():
                return "duplicate"
            if previous > sub.last_seq:
                return "gap"
            ReceivedEvent.objects.create(
                event_id=event_id,
                subscription=sub,
                from_repo=sub.to_repo,
                seq=event.seq,
                signed_at=signed_at,
                event=raw,
                received_at=now,
            )
            touched = _update_references(sub, event, now=now)
            Subscription.objects.filter(pk=sub.pk).update(
                last_seq=event.seq, event_count=F("event_count") + 1, last_event_at=now, updated_at=now
            )
    except IntegrityError:  # the same event id, applied by a concurrent delivery
        return "duplicate"
    row.last_seq = event.seq
    affected |= touched
    return "applied"


def _update_references(sub: Subscription, event: messages.EventBody, *, now) -> set[str]:
    """Every reference to the event's entity gets its new state; returns the local uuids that hold one."""
    entity = event.entity
    refs = CrossRepoReference.objects.filter(
        Q(remote_id=entity.id) | Q(remote_uuid=entity.uuid),
        remote_repo_id=sub.to_repo,
        remote_entity_type__in=[entity.kind, ""],
    )
    touched = set()
    announced: dict[str, dict[str, dict[str, Any]]] = {}
    for ref in refs:
        before = reference_state(ref)
        cached = dict(ref.cached_data or {})
        for key in ("title", "status", "priority", "updated_at"):
            value = getattr(entity, key)
            if value is not None:  # a field the sender may not show us keeps its last known value
                cached[key] = value
        if entity.deleted:
            cached["deleted"] = True
            fields = {
                "fetch_status": FetchStatus.FAILED,
                "fetch_error": f"{entity.canonical_ref or entity.id} was deleted in {sub.to_repo} (event #{event.seq})",
            }
        else:
            cached.pop("deleted", None)
            fields = {"fetch_status": FetchStatus.SUCCESS, "fetch_error": "", "remote_uuid": entity.uuid}
        CrossRepoReference.objects.filter(pk=ref.pk).update(cached_data=cached, last_fetched_at=now, **fields)
        touched.add(ref.local_uuid)
        after = {"cached": cached, "fetch_status": fields["fetch_status"]}
        if after != before:
            announced.setdefault(ref.local_uuid, {})[ref.canonical_ref] = {"from": before, "to": after}
    references_announce(changes=announced)  # inside _apply's transaction: the page hears it with the change
    return touched


def _after_apply(affected: set[str]) -> None:
    if not affected:
        return
    from remotes.blocking import blocked_status_reconcile

    try:
        blocked_status_reconcile(local_uuids=affected)
    except Exception:  # the event is applied; the periodic reconcile repairs the status
        logger.exception("could not reconcile the blocked status of %s", sorted(affected))


# --- filling a gap -----------------------------------------------------------------------------------------


def _catch_up(row: Subscription, *, until: int, affected: set[str]) -> int:
    """Fetch and apply, in order, the events after our last_seq from the sender's catch-up feed, at least up to
    `until` (the page that gets there is applied whole). Network outside any transaction. Returns how many were
    applied; CatchUpFailed when the feed cannot be read or does not reach `until`."""
    from remotes.client import RemoteError
    from remotes.sync import audited_call, client_for

    remote = RemoteRepo.objects.filter(url=row.to_repo).first()
    if remote is None:
        raise CatchUpFailed(f"{row.to_repo} is no longer a remote of this node")
    applied = 0
    after = row.last_seq
    for _page in range(CATCH_UP_PAGES):
        params = {"subscription": row.subscription_id, "after": after, "limit": CATCH_UP_PAGE}
        try:
            response = audited_call(
                remote,
                "catch_up",
                lambda params=params: client_for(remote, "subscribe", retries=1).get(
                    "/federation/events", params=params
                ),
                payload=params,
            )
        except RemoteError as exc:
            raise CatchUpFailed(str(exc)) from exc
        items = response.data.get("events")
        if not isinstance(items, list):
            raise CatchUpFailed(f"{remote.url}'s catch-up feed answered without an `events` list")
        last = after
        for index, item in enumerate(items):
            body, previous = _feed_item(item, index)
            event = _parse_feed_event(body, remote=remote, index=index)
            last = max(last, event.seq)
            if event.seq <= row.last_seq:
                continue
            if previous > row.last_seq:
                raise CatchUpFailed(f"the feed skips from #{row.last_seq} to #{previous} (events[{index}])")
            outcome = _apply(
                row,
                event=event,
                raw=body,
                event_id=uuid.UUID(event.id),
                previous=previous,
                signed_at=None,
                affected=affected,
            )
            if outcome == "gap":
                raise CatchUpFailed("another delivery moved the subscription meanwhile")
            applied += outcome == "applied"
        if row.last_seq >= until:
            return applied
        next_after = response.data.get("next_after")
        more = response.data.get("more")
        if isinstance(next_after, int) and next_after > after:
            after = next_after
        elif last > after:
            after = last
        else:
            break
        if more is False or (more is None and len(items) < CATCH_UP_PAGE):
            break
    if row.last_seq >= until:
        return applied
    raise CatchUpFailed(f"the feed ended at #{row.last_seq}, before #{until} (the event sent before this one)")


def _feed_item(item: object, index: int) -> tuple[dict, int]:
    """One item of the feed: {"previous_seq", "event": {...}}, or the event body itself with "previous_seq"."""
    if not isinstance(item, dict):
        raise CatchUpFailed(f"events[{index}] is not an object")
    previous = item.get("previous_seq")
    if isinstance(item.get("event"), dict):
        body = dict(item["event"])
        previous = body.pop("previous_seq", previous)
    else:
        body = {k: v for k, v in item.items() if k != "previous_seq"}
    if not isinstance(previous, int) or isinstance(previous, bool) or previous < 0:
        raise CatchUpFailed(f"events[{index}] has no previous_seq")
    return body, previous


def _parse_feed_event(body: dict, *, remote: RemoteRepo, index: int) -> messages.EventBody:
    try:
        event = messages.parse_event({"type": "event", "from": remote.url, "event": body}).event
        uuid.UUID(event.id)
    except (messages.MessageError, ValueError) as exc:
        raise CatchUpFailed(f"events[{index}] is not a valid event: {exc}") from None
    return event


# --- reads -------------------------------------------------------------------------------------------------


def received_events(*, subscription_id: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = ReceivedEvent.objects.filter(subscription_id=subscription_id).order_by("-seq")[:limit]
    return [
        {
            "event_id": str(r.event_id),
            "seq": r.seq,
            "type": r.event.get("type"),
            "entity": (r.event.get("entity") or {}).get("canonical_ref") or (r.event.get("entity") or {}).get("id"),
            "fetched": r.signed_at is None,
            "received_at": r.received_at.isoformat(),
        }
        for r in rows
    ]
