"""Webhook delivery of outbox events to incoming subscriptions.

The delivery state is the incoming Subscription row itself: `cursor_seq` (the last outbox event considered),
`last_seq` (the last one sent), `delivery_status`, `attempts`, `next_attempt_at`, `last_error`. Events go out
one at a time, in sequence order: a subscription's stream stops at the first event its subscriber does not take
and starts again there, so a receiver never sees event N+1 before event N. The fan-out drives every due
subscription at once: their POSTs overlap in a thread pool (one in flight per subscription), so one slow or
failing subscriber never holds up another, while the database is read and written from one thread only.

A run claims the row first (a conditional update to `sending` whose `next_attempt_at` is the lease) and renews
the lease after each event; every later write is conditional on the lease it holds, so a worker that lost its
claim (it crashed, or stalled past the lease and another took over) stops instead of writing over the other.
A crashed worker's claim expires and the periodic task picks the row up again: delivery is at-least-once, and
receivers drop the second copy of an event by its id.

Receiver answers: 2xx done; 410 Gone cancels the subscription; any other 4xx but 408/429 is permanent (dead at
once); 408, 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter, for
hours (MAX_ATTEMPTS), then dead. A dead stream waits for `redeliver` (the dashboard's button, the CLI).

A subscriber that is one of our remotes goes through its circuit breaker (remotes/breaker.py), as every call to
it does: each run asks before its first POST, and while the breaker is open the stream waits for the probe time
("waiting") without counting an attempt; what the receiver answers counts in the breaker.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record
from events.models import Event
from events.selectors import event_matches, event_message, events_after, head_seq
from federation_site import identity, node
from federation_site.backoff import backoff
from federation_site.keys import NodeKey, local_key
from protocol import messages
from remotes.breaker import CircuitOpen, breaker_admit, breaker_record, counts_as_failure
from remotes.client import RemoteError, RemoteUnreachable, post_webhook
from remotes.models import RemoteRepo
from remotes.policy import PermissionDenied
from remotes.selectors import url_guard
from remotes.urlguard import UrlGuard
from subscriptions import signals, signing
from subscriptions.models import DeliveryStatus, Direction, Subscription, SubscriptionStatus
from subscriptions.policy import subscribe_fields

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 15  # with backoff(): 1.3-2.6 hours of retries before a stream is dead
LEASE = timedelta(seconds=60)  # a run renews it after every event; one POST takes at most 8 s
THREADS = 16  # subscriptions delivered at once by one fan-out
RUN_EVENTS = 1000  # events one run sends before it lets go (the next fan-out continues)
RUN_SECONDS = 30.0
BATCH = 200  # outbox rows read at once

EVENT_ID_HEADER = "X-Sudocode-Event-Id"
SEQUENCE_HEADER = "X-Sudocode-Sequence"
PREVIOUS_SEQUENCE_HEADER = "X-Sudocode-Previous-Sequence"
SUBSCRIPTION_HEADER = "X-Sudocode-Subscription"
FROM_HEADER = "X-Sudocode-From"

_WAITING = (DeliveryStatus.IDLE, DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


# --- waking and fanning out ----------------------------------------------------------------------------------


def wake() -> None:
    """After an event commits (events.publish): queue a fan-out. A broker that is down costs latency, not
    events: the periodic task finds every subscription that is behind."""
    listening = Subscription.objects.filter(direction=Direction.INCOMING, status=SubscriptionStatus.ACTIVE)
    if not listening.exclude(delivery_status=DeliveryStatus.DEAD).exists():
        return  # nobody to tell (most nodes, most of the time): no broker message
    signals.webhooks_due.send(sender=Subscription)


def due(*, now: datetime | None = None, limit: int = 1000) -> list[str]:
    """Active incoming subscriptions that are behind the outbox and may be delivered now: waiting ones whose
    time has come, and ones whose claim expired (a crashed worker)."""
    now = now or timezone.now()
    head = head_seq()
    waiting = Q(delivery_status__in=_WAITING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    abandoned = Q(delivery_status=DeliveryStatus.SENDING, next_attempt_at__lte=now)
    return list(
        Subscription.objects.filter(
            waiting | abandoned,
            direction=Direction.INCOMING,
            status=SubscriptionStatus.ACTIVE,
            cursor_seq__lt=head,
        )
        .order_by("next_attempt_at", "subscription_id")
        .values_list("subscription_id", flat=True)[:limit]
    )


# One fan-out at a time per process: the worker runs tasks in threads, and a woken fan-out beside the periodic one
# would only fight it for the same rows and for SQLite's write lock. One that finds another running asks it to go
# round once more instead, so nothing it was woken for waits for the next period.
_fanning_out = threading.Lock()
_again = threading.Event()


def fan_out(*, now: datetime | None = None) -> dict[str, str]:
    """Deliver every due subscription: {subscription_id: outcome}. The POSTs run in a thread pool, at most one
    in flight per subscription (its order) and up to THREADS at once (so a slow or failing subscriber holds up
    only itself); this thread alone reads and writes the database, which keeps SQLite's writers in one line."""
    if not _fanning_out.acquire(blocking=False):
        _again.set()
        return {}
    try:
        outcomes: dict[str, str] = {}
        while True:
            _again.clear()
            outcomes.update(_fan_out_once(now))
            if not _again.is_set():
                return outcomes
            now = None
    finally:
        _fanning_out.release()


def _fan_out_once(now: datetime | None) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    ids = due(now=now)
    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="webhooks") as pool:
        for _ in range(3):
            # Opened one by one as the pool takes them: the first POST leaves before the last row is claimed.
            streams = (stream for sid in ids if (stream := _Stream.open(sid, now)) is not None)
            outcomes.update(_drive(streams, pool))
            # An event committed while a stream was letting go found it claimed and left it to us: look again.
            ids = [sid for sid, outcome in outcomes.items() if outcome == "delivered" and _behind(sid)]
            if not ids:
                break
            now = None
    return outcomes


def deliver_subscription(subscription_id: str, *, now: datetime | None = None) -> str:
    """Send one subscription's undelivered events, in order, if it is due. Safe to run twice at once: only the
    run that claims the row sends. Returns what happened: "not due", "delivered" (caught up), "paused" (a long
    backlog: the next fan-out continues), "retrying", "waiting" (the subscriber's circuit breaker is open), "dead",
    "cancelled" or "lost" (its claim was taken)."""
    outcome = "not due"
    for _ in range(3):
        stream = _Stream.open(subscription_id, now)
        if stream is None:
            return outcome
        outcome = _drive([stream], None)[subscription_id]
        if outcome != "delivered" or not _behind(subscription_id):
            return outcome
        now = None
    return outcome


def _behind(subscription_id: str) -> bool:
    return Subscription.objects.filter(pk=subscription_id, cursor_seq__lt=head_seq()).exists()


def _drive(streams: Iterable[_Stream], pool: ThreadPoolExecutor | None) -> dict[str, str]:
    """Run each stream to its end: send its next event, record the answer, repeat. With a pool the POSTs of
    different streams overlap; without one they run here, one after the other."""
    inflight: dict[Future, tuple[_Stream, _Outgoing]] = {}
    started: list[_Stream] = []

    def start(stream: _Stream) -> None:
        while (outgoing := stream.next()) is not None:
            if pool is None:
                stream.answered(outgoing, _send(outgoing))
            else:
                inflight[pool.submit(_send, outgoing)] = (stream, outgoing)
                return

    for stream in streams:
        started.append(stream)
        start(stream)
    while inflight:
        done, _ = wait(inflight, return_when=FIRST_COMPLETED)
        for future in done:
            stream, outgoing = inflight.pop(future)
            stream.answered(outgoing, future.result())
            start(stream)
    return {stream.subscription_id: stream.outcome or "delivered" for stream in started}


# --- one subscription's stream -------------------------------------------------------------------------------


@dataclass
class _Claim:
    subscription_id: str
    lease: datetime  # the next_attempt_at we wrote: the row is ours while it still says so

    def update(self, *, renew: bool = True, **fields) -> bool:
        """Write `fields` if the row is still ours; with `renew`, keep it ours for another LEASE."""
        lease = timezone.now() + LEASE
        if renew:
            fields["next_attempt_at"] = lease
        written = Subscription.objects.filter(
            pk=self.subscription_id, delivery_status=DeliveryStatus.SENDING, next_attempt_at=self.lease
        ).update(updated_at=timezone.now(), **fields)
        if written and renew:
            self.lease = lease
        return bool(written)


def _claim(subscription_id: str, now: datetime) -> _Claim | None:
    lease = timezone.now() + LEASE
    waiting = Q(delivery_status__in=_WAITING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    abandoned = Q(delivery_status=DeliveryStatus.SENDING, next_attempt_at__lte=now)
    claimed = Subscription.objects.filter(
        waiting | abandoned,
        pk=subscription_id,
        direction=Direction.INCOMING,
        status=SubscriptionStatus.ACTIVE,
    ).update(delivery_status=DeliveryStatus.SENDING, next_attempt_at=lease, updated_at=timezone.now())
    return _Claim(subscription_id, lease) if claimed else None


@dataclass(frozen=True)
class _Outgoing:
    """One POST, built (and signed) by the stream, sent by a pool thread: no database in there."""

    event: Event
    url: str
    body: bytes
    headers: dict[str, str]
    guard: UrlGuard | None = None  # the subscriber's rules for URLs it hands us (issue 17)
    signer: NodeKey | None = None  # this node's key: the POST is signed (RFC 9421) besides its HMAC


class _Stream:
    """One claimed subscription being delivered: `next()` gives the next event to POST (or None, with
    `outcome` set), `answered()` records what the receiver said."""

    def __init__(self, claim: _Claim, row: Subscription, now: datetime) -> None:
        self.claim = claim
        self.row = row
        self.subscription_id = row.subscription_id
        self.now = now
        self.scanned = row.cursor_seq  # every event up to here is sent or not for this watch
        self.outcome: str | None = None
        self.fields: frozenset[str] = frozenset()
        self._pending: deque[Event] = deque()
        self._sent = 0
        self._started = time.monotonic()
        # The subscriber as a remote of ours (its circuit breaker), asked once per run: None when it is not one.
        self.remote: RemoteRepo | None = None
        self._admitted = False
        self._answered = False
        self.guard: UrlGuard | None = None
        self.signer: NodeKey | None = None

    @classmethod
    def open(cls, subscription_id: str, now: datetime | None) -> _Stream | None:
        now = now or timezone.now()
        claim = _claim(subscription_id, now)
        if claim is None:
            return None
        stream = cls(claim, Subscription.objects.get(pk=subscription_id), now)
        # Checked at subscribe time, and again here: the config (its endpoint, allowed_hosts) may have changed.
        stream.guard = url_guard(stream.row.from_repo)
        stream.signer = local_key()
        try:
            from subscriptions.incoming import subscriber_caller

            stream.fields = subscribe_fields(subscriber_caller(stream.row), node.config())
        except PermissionDenied as exc:
            # It may no longer hear about us: stop, and say why on the dashboard (redeliver once it may again).
            stream.outcome = _give_up(claim, stream.row, f"stopped: {exc}")
        return stream

    def next(self) -> _Outgoing | None:
        while self.outcome is None:
            if self._sent >= RUN_EVENTS or time.monotonic() - self._started > RUN_SECONDS:
                # Let go, still due: the next fan-out (or the periodic task) carries on from the cursor.
                self._release("paused")
                break
            if not self._pending:
                if not self._still_ours():
                    break
                batch = events_after(self.scanned, limit=BATCH)
                if not batch:
                    self._release("delivered")
                    break
                self._pending.extend(batch)
            event = self._pending.popleft()
            # The row is read again before each send (and the watch with it: it may have just changed).
            if event_matches(event, self.row.watch_config) and self._still_ours():
                if event_matches(event, self.row.watch_config) and self._admit():
                    return self._outgoing(event)
            if self.outcome is None:  # not for this watch: considered, and passed over
                self.scanned = event.seq
                if not self._pending and not self.claim.update(cursor_seq=self.scanned):
                    self.outcome = "lost"
        return None

    def _admit(self) -> bool:
        """Whether the subscriber's circuit breaker lets this run POST; if not, the stream waits for its probe
        time, the attempt not counted (outcome "waiting")."""
        if self._admitted:
            return True
        self.remote = RemoteRepo.objects.filter(url=self.row.from_repo).first()
        if self.remote is not None:
            try:
                breaker_admit(self.remote, now=self.now)
            except CircuitOpen as exc:
                self.claim.update(
                    renew=False,
                    cursor_seq=self.scanned,
                    delivery_status=DeliveryStatus.RETRYING,
                    last_error=str(exc)[:2000],
                    next_attempt_at=exc.retry_at,
                )
                self.outcome = "waiting"
                return False
        self._admitted = True
        return True

    def answered(self, outgoing: _Outgoing, error: RemoteError | None) -> None:
        if self.remote is not None and (error is not None or not self._answered):
            breaker_record(self.remote, ok=error is None or not counts_as_failure(error), now=self.now)
        self._answered = True
        if error is not None:
            self.outcome = _failed(
                self.claim, self.row, error, seq=outgoing.event.seq, scanned=self.scanned, now=self.now
            )
            return
        event = outgoing.event
        self.scanned = event.seq
        self._sent += 1
        written = self.claim.update(
            cursor_seq=event.seq,
            last_seq=event.seq,
            event_count=F("event_count") + 1,
            last_event_at=timezone.now(),
            attempts=0,
            last_error="",
        )
        if not written:
            self.outcome = "lost"
        self.row.last_seq, self.row.attempts = event.seq, 0

    def _still_ours(self) -> bool:
        """A fresh look before each send: cancelled, subscribed again with a new callback, or taken over."""
        row = Subscription.objects.filter(pk=self.subscription_id).first()
        if row is None or row.delivery_status != DeliveryStatus.SENDING or row.next_attempt_at != self.claim.lease:
            self.outcome = "lost"
            return False
        self.row = row
        if row.status != SubscriptionStatus.ACTIVE:
            self._release("cancelled")
            return False
        return True

    def _release(self, outcome: str) -> None:
        self.claim.update(
            renew=False, cursor_seq=self.scanned, delivery_status=DeliveryStatus.IDLE, next_attempt_at=None
        )
        self.outcome = outcome

    def _outgoing(self, event: Event) -> _Outgoing:
        row = self.row
        body = json.dumps(
            event_message(event, fields=self.fields, to=row.from_repo), separators=(",", ":"), ensure_ascii=False
        ).encode()
        headers = {
            "Content-Type": "application/json",
            signing.SIGNATURE_HEADER: signing.sign(row.secret, body),
            EVENT_ID_HEADER: str(event.event_id),
            SEQUENCE_HEADER: str(event.seq),
            PREVIOUS_SEQUENCE_HEADER: str(row.last_seq),
            SUBSCRIPTION_HEADER: row.subscription_id,
            FROM_HEADER: identity.local_url(),
            messages.CORRELATION_HEADER: event.event_id.hex,
        }
        token = (row.callback_auth or {}).get("token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return _Outgoing(
            event=event, url=row.callback_url, body=body, headers=headers, guard=self.guard, signer=self.signer
        )


def _send(outgoing: _Outgoing) -> RemoteError | None:
    """The POST (in a pool thread): None when the receiver took it, else what went wrong."""
    try:
        post_webhook(
            outgoing.url, outgoing.body, headers=outgoing.headers, guard=outgoing.guard, signer=outgoing.signer
        )
    except RemoteError as exc:
        return exc
    except Exception as exc:  # a bug here must not cost the other streams their run; it shows on the row
        logger.exception("webhook POST to %s failed", outgoing.url)
        return RemoteError(f"POST {outgoing.url}: {type(exc).__name__}: {exc}", url=outgoing.url)
    return None


def _failed(claim: _Claim, row: Subscription, exc: RemoteError, *, seq: int, scanned: int, now: datetime) -> str:
    attempts = row.attempts + 1
    error = str(exc)[:2000]
    if exc.status == 410:
        claim.update(
            renew=False,
            cursor_seq=scanned,
            status=SubscriptionStatus.CANCELLED,
            delivery_status=DeliveryStatus.IDLE,
            next_attempt_at=None,
            attempts=attempts,
            last_error=f"the subscriber answered 410 Gone: cancelled ({error})",
        )
        _audit(row, f"cancelled by the subscriber (410 Gone): {error}", seq=seq)
        return "cancelled"
    if not isinstance(exc, RemoteUnreachable):
        return _give_up(claim, row, f"refused: {error}", attempts=attempts, scanned=scanned, seq=seq)
    if attempts >= MAX_ATTEMPTS:
        error = f"gave up after {attempts} attempts: {error}"
        return _give_up(claim, row, error, attempts=attempts, scanned=scanned, seq=seq)
    claim.update(
        renew=False,
        cursor_seq=scanned,
        delivery_status=DeliveryStatus.RETRYING,
        attempts=attempts,
        last_error=error,
        next_attempt_at=now + backoff(attempts),
    )
    _audit(row, error, seq=seq)
    logger.info("webhook to %s failed (attempt %d), retrying: %s", row.callback_url, attempts, error)
    return "retrying"


def _give_up(
    claim: _Claim,
    row: Subscription,
    error: str,
    *,
    attempts: int | None = None,
    scanned: int | None = None,
    seq: int | None = None,
) -> str:
    fields = {"attempts": attempts} if attempts is not None else {}
    if scanned is not None:
        fields["cursor_seq"] = scanned
    claim.update(renew=False, delivery_status=DeliveryStatus.DEAD, next_attempt_at=None, last_error=error, **fields)
    _audit(row, error, seq=seq)
    logger.warning("webhooks of subscription %s are dead: %s", row.subscription_id, error)
    return "dead"


def _audit(row: Subscription, error: str, *, seq: int | None) -> None:
    # Failures only: a delivered event is recorded on the row (cursor, count, time); an audit row per event
    # per subscriber would outgrow everything else in the log.
    audit_record(
        operation="event",
        direction="outgoing",
        local_repo=identity.local_url(),
        remote_repo=row.from_repo,
        status="failed",
        payload={"subscription_id": row.subscription_id, "callback": row.callback_url, "seq": seq},
        error=error,
    )


def redeliver(subscription_id: str) -> bool:
    """A dead stream, tried again now from where it stopped (the dashboard's button). False if it was not
    dead."""
    revived = Subscription.objects.filter(
        pk=subscription_id, direction=Direction.INCOMING, delivery_status=DeliveryStatus.DEAD
    ).update(
        delivery_status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), updated_at=timezone.now()
    )
    if revived:
        transaction.on_commit(wake)
    return bool(revived)
