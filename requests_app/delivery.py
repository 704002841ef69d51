"""Delivering what requests make us send: callbacks to the requester's node, notifications to maintainers.

Each is a Delivery row, queued after the commit that made it and sent by the worker. Sending claims the row
first (a conditional update that also moves next_attempt_at forward), so two workers or a crashed one cannot
send it twice in a burst; a failure is retried with exponential backoff and jitter, a permanent one (a 4xx,
a bad address) or too many attempts makes it dead, visible in the admin with its last error.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from federation_site import node
from federation_site.backoff import backoff
from federation_site.keys import local_key
from remotes.breaker import CircuitOpen
from remotes.client import RemoteError, RemoteUnreachable, post_webhook
from remotes.selectors import url_guard
from requests_app import signals
from requests_app.models import CrossRepoRequest, Delivery
from requests_app.selectors import response_for

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12  # about 3 hours of backoff


class PermanentFailure(Exception):
    pass


def queue_callback(request: CrossRepoRequest) -> Delivery:
    """Tell the requester's node what became of its request, with the record (both sides keep it) but not the
    payload: the requester holds its own message, and the callback stays within MAX_MESSAGE_BYTES."""
    body = response_for(request, record=True)
    body["record"].pop("payload")
    return _queue(request, Delivery.Kind.CALLBACK, f"request_{request.status}", request.from_repo, body)


def queue_notifications(request: CrossRepoRequest, event: str, *, mentions: tuple[str, ...] = ()) -> list[Delivery]:
    """One delivery per notification channel in the config that wants `event` (all events when it lists none).
    `mentions`: whom the deciding rule's `notify` names ("@team-leads"), put at the head of the text."""
    cfg = node.config()
    channels = cfg.notifications.channels if cfg else []
    text = _text(request, event)
    if mentions:
        text = f"{' '.join(mentions)} {text}"
    queued = []
    for channel in channels:
        if channel.events and event not in channel.events:
            continue
        if channel.type == "email":
            body = {"subject": f"[sudocode] {text.splitlines()[0]}", "text": text}
            queued.append(_queue(request, Delivery.Kind.EMAIL, event, ",".join(channel.to), body))
        else:
            body = {
                "text": text,
                "event": event,
                "request_id": request.request_id,
                "from": request.from_repo,
                "approval_url": request.approval_url,
                "mentions": list(mentions),
                "decision": request.decision,
            }
            queued.append(_queue(request, Delivery.Kind.WEBHOOK, event, str(channel.webhook_url), body))
    return queued


def queue_push(request: CrossRepoRequest, event: str, url: str, payload: dict, headers: dict[str, str]) -> Delivery:
    """POST `payload` as JSON with `headers` to `url`, retried like every delivery (a higher layer's push
    notification: agents.a2a_server sends A2A task updates this way)."""
    return _queue(request, Delivery.Kind.PUSH, event, url, {"payload": payload, "headers": headers})


def _text(request: CrossRepoRequest, event: str) -> str:
    data = request.data
    what = {
        "request_pending_approval": "needs approval",
        "delegation_pending_acceptance": "delegated to you: accept or reject",
    }.get(event, event.replace("_", " "))
    verb = f"delegates a {data.get('type')}" if request.is_delegation else "requests"
    why = (request.decision or {}).get("reason")
    return (
        f'[{request.request_id}] {request.from_repo} {verb}: "{data.get("title") or data.get("id")}" ({what})\n'
        f"Requested by: {request.requester or 'unknown'}\n"
        f"Priority: {data.get('priority', 2)}  Labels: {', '.join(data.get('labels') or []) or 'none'}\n"
        + (f"Policy: {why}\n" if why else "")
        + f"Review: {request.approval_url}"
    )


def _queue(request: CrossRepoRequest, kind: str, event: str, target: str, body: dict) -> Delivery:
    now = timezone.now()
    row = Delivery.objects.create(
        request=request, kind=kind, event=event, target=target, body=body, next_attempt_at=now, created_at=now
    )
    transaction.on_commit(lambda: _wake(row.pk))
    return row


def _wake(delivery_id: int) -> None:
    """Ask the worker to send it now. If no worker runs, the row waits: the periodic task finds it."""
    signals.delivery_due.send(sender=Delivery, delivery_id=delivery_id)


def deliver(delivery_id: int) -> str:
    """Send one delivery if it is due. Safe to run twice: only the run that claims the row sends it."""
    now = timezone.now()
    claimed = Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING, next_attempt_at__lte=now).update(
        status=Delivery.Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=now + timedelta(minutes=5)
    )
    if not claimed:
        return "not due"
    row = Delivery.objects.select_related("request").get(pk=delivery_id)
    if row.kind == Delivery.Kind.PUSH and _earlier_push_unsent(row):
        # A push is one move of a task: the client must hear the moves in order. Wait for the earlier one
        # (it wakes this one when it is done).
        _postpone(row, until=now + timedelta(seconds=5))
        return "waiting"
    try:
        _send(row)
    except PermanentFailure as exc:
        _finish(row, Delivery.Status.DEAD, str(exc))
        return "dead"
    except CircuitOpen as exc:
        # Nothing was sent: the remote's calls are paused. Wait for the probe time.
        _postpone(row, until=exc.retry_at, error=str(exc))
        return "paused"
    except Exception as exc:  # transient: the network, the other node, the mail relay
        if row.attempts >= MAX_ATTEMPTS:
            _finish(row, Delivery.Status.DEAD, f"gave up after {row.attempts} attempts: {exc}")
            return "dead"
        Delivery.objects.filter(pk=row.pk).update(
            status=Delivery.Status.PENDING,
            last_error=str(exc)[:2000],
            next_attempt_at=timezone.now() + backoff(row.attempts),
        )
        logger.info("delivery %s failed (attempt %d), retrying: %s", row.pk, row.attempts, exc)
        return "retry"
    _finish(row, Delivery.Status.DELIVERED, "")
    return "delivered"


def _finish(row: Delivery, status: str, error: str) -> None:
    Delivery.objects.filter(pk=row.pk).update(
        status=status,
        last_error=error[:2000],
        delivered_at=timezone.now() if status == Delivery.Status.DELIVERED else None,
    )
    if row.kind == Delivery.Kind.PUSH:
        following = _pushes_after(row).filter(status=Delivery.Status.PENDING).values_list("pk", flat=True).first()
        if following is not None:
            Delivery.objects.filter(pk=following).update(next_attempt_at=timezone.now())
            _wake(following)


def _postpone(row: Delivery, *, until, error: str | None = None) -> None:
    """Put a claimed row back, due at `until`, without counting the attempt it claimed (nothing was sent)."""
    fields = {"status": Delivery.Status.PENDING, "attempts": F("attempts") - 1, "next_attempt_at": until}
    if error is not None:
        fields["last_error"] = error[:2000]
    Delivery.objects.filter(pk=row.pk).update(**fields)


def _same_stream(row: Delivery):
    """The deliveries of `row`'s kind for the same request and target (one task's pushes to one URL)."""
    return Delivery.objects.filter(request_id=row.request_id, kind=row.kind, target=row.target)


def _pushes_after(row: Delivery):
    return _same_stream(row).filter(pk__gt=row.pk).order_by("pk")


def _earlier_push_unsent(row: Delivery) -> bool:
    """Whether a push queued before `row`, for the same task and URL, is neither delivered nor given up."""
    unsent = _same_stream(row).filter(pk__lt=row.pk)
    return unsent.exclude(status__in=(Delivery.Status.DELIVERED, Delivery.Status.DEAD)).exists()


def due() -> list[int]:
    """Deliveries whose time has come, and ones a crashed worker left claimed (their claim has expired)."""
    now = timezone.now()
    Delivery.objects.filter(status=Delivery.Status.SENDING, next_attempt_at__lte=now).update(
        status=Delivery.Status.PENDING
    )
    return list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now).values_list("pk", flat=True)[
            :500
        ]
    )


def redeliver(delivery_id: int) -> None:
    """A dead delivery, tried again now (the dashboard's button)."""
    Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.DEAD).update(
        status=Delivery.Status.PENDING, next_attempt_at=timezone.now(), attempts=0
    )
    transaction.on_commit(lambda: _wake(delivery_id))


def _send(row: Delivery) -> None:
    if row.kind == Delivery.Kind.EMAIL:
        send_mail(row.body["subject"], row.body["text"], settings.DEFAULT_FROM_EMAIL, row.target.split(","))
    elif row.kind in (Delivery.Kind.WEBHOOK, Delivery.Kind.PUSH):
        payload, headers = (row.body["payload"], row.body["headers"]) if row.kind == "push" else (row.body, {})
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        # A push config's URL came from the requester (checked when it was given, again here: issue 17); a
        # notification webhook's is our own config's.
        guard = url_guard(row.request.from_repo) if row.kind == Delivery.Kind.PUSH else None
        try:
            post_webhook(
                row.target,
                body,
                headers={**headers, "Content-Type": "application/json"},
                timeouts=(3, 10),
                guard=guard,
                signer=local_key(),
            )
        except RemoteUnreachable:
            raise  # transient: retried from the row
        except RemoteError as exc:  # a 4xx (but 408/429), a redirect, a bad address: trying again will not help
            raise PermanentFailure(str(exc)) from exc
    else:
        _send_callback(row)


def _send_callback(row: Delivery) -> None:
    from remotes.client import RemoteRejected
    from remotes.models import RemoteRepo
    from remotes.sync import audited_call, client_for

    remote = RemoteRepo.objects.filter(url=row.target).first()
    if remote is None or not remote.rest_endpoint:
        raise PermanentFailure(f"{row.target} is not a remote with an endpoint here; it will poll for the outcome")
    try:
        audited_call(
            remote,
            "callback",
            lambda: client_for(remote, "callback").post(
                "/federation/callback", row.body, correlation_id=row.request.correlation_id
            ),
            payload={"status": row.body.get("status")},
            request_id=row.request.request_id,
        )
    except RemoteRejected as exc:
        raise PermanentFailure(str(exc)) from exc
