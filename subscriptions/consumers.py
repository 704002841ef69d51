"""The WebSocket endpoint, /api/v1/ws: a client sends the seed's `subscribe` message and hears an `event`
message for every matching change as it commits, in sequence order, and resumes after a reconnect with `since`.

Events are committed by several processes (this web process, other web processes, the Celery worker, the CLI),
so a message on the channel layer never carries an event: each consumer keeps a cursor per watch and reads the
outbox (events.selectors.events_after) when woken. Wake-ups come from the channel layer group "events"
(events.publish, after each commit: inside this process with the in-memory layer, across processes with Redis)
and from one watcher task per process that looks at the outbox's head every WEBSOCKET_POLL_SECONDS, for commits
that woke nobody here (the CLI has no channel layer). A lost or repeated wake-up costs a query, never an event.

Who may listen, and to which fields, is subscriptions.policy's decision (the same as for webhooks); which events
match a watch and how an event looks is events.selectors'. PROTOCOL.md ("WebSocket") documents the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from events.models import Event, Scope
from events.publish import WS_GROUP
from events.selectors import event_matches, event_message, events_after, head_seq
from federation_site import metrics, node
from protocol import messages
from remotes.auth import bearer_token, caller_for_token
from remotes.policy import ANONYMOUS, Caller, PermissionDenied, query_grant
from remotes.services import remotes_reconcile
from subscriptions.policy import subscribe_fields, subscriptions_max

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403  # the caller may not subscribe: an `error` message says why, then the socket closes
BATCH = 500  # events read from the outbox at a time
STAFF_MAX_WATCHES = 100
# entity_type values beyond the wire's issue|spec, for this node's staff only: "*" is both; "request" is the
# local request events (the live approval queue); "subscription" and "remote" watch those tables, which write
# no events: the per-process watcher compares a fingerprint of them (ROWS) and a change is a `changed` message.
ANY_ENTITY = "*"
REQUEST_EVENTS = "request"
STAFF_EVENTS = (REQUEST_EVENTS, "subscription", "remote")


def _subscriptions_fingerprint() -> str:
    from subscriptions.selectors import subscriptions_fingerprint

    return subscriptions_fingerprint()


def _remotes_fingerprint() -> str:
    from remotes.selectors import remotes_fingerprint

    return remotes_fingerprint()


ROWS = {"subscription": _subscriptions_fingerprint, "remote": _remotes_fingerprint}


@dataclass(frozen=True)
class Reader:
    """Who is on the other end of a socket and what they may hear. `caller` None is this node's own staff (a
    dashboard session): every field, and local-scope events too."""

    caller: Caller | None
    fields: frozenset[str] | None
    entities: frozenset[str]
    max_watches: int

    @property
    def staff(self) -> bool:
        return self.caller is None

    @property
    def scopes(self) -> tuple[str, ...]:
        return (Scope.ENTITY, Scope.LOCAL) if self.staff else (Scope.ENTITY,)


@dataclass
class WatchState:
    watch: dict[str, Any]  # {entity_type, filters}, as events.selectors.event_matches reads it
    cursor: int  # the last sequence number this watch has considered


def reader_for(scope: dict) -> Reader:
    """The reader of a connecting socket: a key (`Authorization: Bearer <key>`, or `?token=<key>` for clients
    that cannot set headers) names a remote; without one, a staff session from this node's own pages is staff;
    anyone else is the anonymous caller. PermissionDenied when the subscribe policy says no."""
    headers = dict(scope.get("headers") or [])
    token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
    if not token:
        token = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0].strip()
    if not token and _staff_session(scope, headers):
        return Reader(caller=None, fields=None, entities=frozenset({"issue", "spec"}), max_watches=STAFF_MAX_WATCHES)
    caller = caller_for_token(token) if token else ANONYMOUS
    try:
        config = node.config()
    except node.RepoNotFound:
        config = None
    fields = subscribe_fields(caller, config)
    try:
        entities = query_grant(caller, config).entities
    except PermissionDenied:
        entities = frozenset({"issue", "spec"})  # subscribing was allowed on its own (permissions.subscribe)
    return Reader(caller=caller, fields=fields, entities=entities, max_watches=subscriptions_max(caller, config))


def _staff_session(scope: dict, headers: dict[bytes, bytes]) -> bool:
    user = scope.get("user")
    if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    # The session cookie rides along with any page's WebSocket: it counts only from this node's own pages
    # (the Origin is this host, or a CSRF-trusted origin), so another site cannot listen as our staff.
    origin = headers.get(b"origin", b"").decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1")
    if not origin:
        return False
    return urlsplit(origin).netloc == host or origin in settings.CSRF_TRUSTED_ORIGINS


def parse_subscribe(data: dict[str, Any], *, reader: Reader) -> tuple[str, dict[str, Any], int | None]:
    """A subscribe message from a socket as (subscription_id, watch, since); MessageError naming the path.
    `from` may be left out (the key says who is calling) and there is no `callback` (events come down the
    socket)."""
    if "callback" in data:
        raise messages.MessageError.at("callback", "not used on a WebSocket: events come down this socket")
    watch = data.get("watch")
    entity_type = watch.get("entity_type") if isinstance(watch, dict) else None
    if entity_type in STAFF_EVENTS and not reader.staff:
        raise messages.MessageError.at(
            "watch.entity_type", f"{entity_type} events are for this node's staff (expected issue, spec or *)"
        )
    wide = entity_type == ANY_ENTITY or entity_type in STAFF_EVENTS
    if wide:  # validate the filters as the wire knows them, then put the wider type back
        data = {**data, "watch": {**watch, "entity_type": "issue"}}
    message = messages.parse_subscribe(data)
    if not wide and entity_type not in reader.entities:
        raise messages.MessageError.at(
            "watch.entity_type", f"you may not watch {entity_type}s (allowed: {', '.join(sorted(reader.entities))})"
        )
    watch_config = messages.dump(message.watch)
    if wide:
        watch_config["entity_type"] = entity_type
    return message.subscription_id or f"ws-{uuid.uuid4().hex[:12]}", watch_config, message.since


def collect(
    watches: list[tuple[str, dict[str, Any], int]], *, reader: Reader, limit: int = BATCH
) -> tuple[list[dict[str, Any]], int | None, bool]:
    """The event messages due to `watches` ((subscription_id, watch, cursor) each) from the next `limit` events
    of the outbox: (messages in sequence order, the last seq read or None, whether the outbox was read to its
    end)."""
    batch: list[Event] = events_after(min(cursor for _, _, cursor in watches), limit=limit, scopes=reader.scopes)
    to = reader.caller.identity if reader.caller else None
    out: list[dict[str, Any]] = []
    for event in batch:
        shown: dict[str, Any] | None = None
        for subscription_id, watch, cursor in watches:
            if event.seq <= cursor or not _may_hear(reader, event) or not event_matches(event, watch):
                continue
            if shown is None:
                shown = event_message(event, fields=reader.fields, to=to)
            out.append({**shown, "subscription_id": subscription_id})
    return out, (batch[-1].seq if batch else None), len(batch) < limit


def _may_hear(reader: Reader, event: Event) -> bool:
    return reader.staff or event.entity_kind in reader.entities


def _reader_now(scope: dict) -> Reader:
    """reader_for, after bringing the remotes' trust levels in line with federation.config.json."""
    remotes_reconcile()
    return reader_for(scope)


class EventsConsumer(AsyncJsonWebsocketConsumer):
    reader: Reader | None = None

    async def connect(self) -> None:
        self.watches: dict[str, WatchState] = {}
        self.known_head = 0  # the highest sequence number known to be committed
        await self.accept()
        try:
            self.reader = await database_sync_to_async(reader_for)(self.scope)
        except PermissionDenied as exc:
            await self._refuse(exc)
            return
        await self.channel_layer.group_add(WS_GROUP, self.channel_name)
        _watcher().add(self.channel_name)
        metrics.websocket_opened()
        self.counted = True

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):  # a later refusal clears the reader, not the count
            self.counted = False
            metrics.websocket_closed()
        if self.reader is not None:
            _watcher().discard(self.channel_name)
            await self.channel_layer.group_discard(WS_GROUP, self.channel_name)

    async def _refuse(self, exc: PermissionDenied) -> None:
        self.reader = None
        await self.send_json(
            {"type": "error", "error": "forbidden", "detail": str(exc), "errors": [{"path": "", "message": str(exc)}]}
        )
        await self.close(code=CLOSE_FORBIDDEN)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.reader is None:
            return
        try:  # trust changes take effect at the caller's next message (issue 11): judged at today's level
            self.reader = await database_sync_to_async(_reader_now)(self.scope)
        except PermissionDenied as exc:
            _watcher().discard(self.channel_name)
            await self.channel_layer.group_discard(WS_GROUP, self.channel_name)
            await self._refuse(exc)
            return
        try:
            data = messages.parse_body(text_data.encode("utf-8") if text_data is not None else bytes_data or b"")
            kind = data.get("type") if isinstance(data, dict) else None
            handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                if not isinstance(data, dict):
                    raise messages.MessageError.at("", "expected a JSON object")
                raise messages.MessageError.at(
                    "type", f"{kind!r} is not understood here (expected {', '.join(self._HANDLERS)})"
                )
            await handler(self, data)
        except messages.MessageError as exc:
            await self.send_json({"type": "error", **exc.as_json()})

    async def _subscribe(self, data: dict[str, Any]) -> None:
        subscription_id, watch, since = parse_subscribe(data, reader=self.reader)
        if subscription_id not in self.watches and len(self.watches) >= self.reader.max_watches:
            raise messages.MessageError.at(
                "subscription_id",
                f"this socket already has {len(self.watches)} subscriptions, the most you may have: "
                "unsubscribe one first",
            )
        head = await database_sync_to_async(head_seq)()
        if since is not None and since > head:
            raise messages.MessageError.at(
                "since", f"{since} is after this node's last event ({head}): resume from a seq this node sent you"
            )
        self.known_head = max(self.known_head, head)
        # Subscribing again with the same id replaces that watch (and its cursor), as over REST.
        self.watches[subscription_id] = WatchState(watch=watch, cursor=head if since is None else since)
        if watch["entity_type"] in ROWS:
            await _watcher().watch_rows(self.channel_name, watch["entity_type"])
        await self.send_json({"type": "subscribed", "subscription_id": subscription_id, "head_seq": head})
        await self._drain()

    async def _unsubscribe(self, data: dict[str, Any]) -> None:
        subscription_id = data.get("subscription_id")
        if not isinstance(subscription_id, str) or subscription_id not in self.watches:
            known = ", ".join(self.watches) or "none"
            raise messages.MessageError.at(
                "subscription_id", f"no subscription {subscription_id!r} on this socket (yours: {known})"
            )
        del self.watches[subscription_id]
        await self.send_json({"type": "unsubscribed", "subscription_id": subscription_id})

    async def _ping(self, data: dict[str, Any]) -> None:
        await self.send_json({"type": "pong", "head_seq": self.known_head})

    _HANDLERS = {"subscribe": _subscribe, "unsubscribe": _unsubscribe, "ping": _ping}

    async def rows_changed(self, message: dict[str, Any]) -> None:
        """From the watcher: the rows of message["kind"] (subscriptions, remotes) changed."""
        if self.reader is None:
            return
        for subscription_id, state in self.watches.items():
            if state.watch.get("entity_type") == message.get("kind"):
                await self.send_json({"type": "changed", "subscription_id": subscription_id, "kind": message["kind"]})

    async def events_wake(self, message: dict[str, Any]) -> None:
        """From the channel layer: events up to message["seq"] are committed."""
        if self.reader is None:
            return
        self.known_head = max(self.known_head, int(message.get("seq") or 0))
        await self._drain()

    async def _drain(self) -> None:
        """Send every event due to a watch, up to the known head, in sequence order. Handlers of one consumer
        run one at a time, so the watches cannot change while this runs."""
        while self.watches and self.known_head > min(w.cursor for w in self.watches.values()):
            target = self.known_head  # committed before the read below began: everything up to it is readable
            watches = [(sid, w.watch, w.cursor) for sid, w in self.watches.items()]
            out, last, complete = await database_sync_to_async(collect)(watches, reader=self.reader)
            for message in out:
                await self.send_json(message)
            for state in self.watches.values():
                state.cursor = max(state.cursor, last or 0, target if complete else 0)


# --- the per-process watcher -------------------------------------------------------------------------------


class Watcher:
    """Looks at the outbox's head every WEBSOCKET_POLL_SECONDS while this process has consumers, and wakes them
    (through the channel layer, channel by channel) when it moved; and at the fingerprint of each table of ROWS
    some consumer watches, telling those consumers when it changed."""

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.task: asyncio.Task | None = None
        self.rows: dict[str, set[str]] = {}  # kind of ROWS -> channels watching it
        self.fingerprints: dict[str, str] = {}

    def add(self, channel_name: str) -> None:
        self.channels.add(channel_name)
        interval = settings.WEBSOCKET_POLL_SECONDS
        if interval > 0 and (self.task is None or self.task.done()):
            self.task = asyncio.get_running_loop().create_task(self._run(interval))

    def discard(self, channel_name: str) -> None:
        self.channels.discard(channel_name)
        for channels in self.rows.values():
            channels.discard(channel_name)

    async def watch_rows(self, channel_name: str, kind: str) -> None:
        if kind not in self.fingerprints:  # the state the page was (about) rendered from
            self.fingerprints[kind] = await database_sync_to_async(ROWS[kind])()
        self.rows.setdefault(kind, set()).add(channel_name)

    async def _rows(self, layer) -> None:
        for kind, channels in self.rows.items():
            if not channels:
                self.fingerprints.pop(kind, None)
                continue
            now = await database_sync_to_async(ROWS[kind])()
            if now == self.fingerprints.get(kind):
                continue
            self.fingerprints[kind] = now
            for name in list(channels):
                with contextlib.suppress(ChannelFull):
                    await layer.send(name, {"type": "rows.changed", "kind": kind})

    async def _run(self, interval: float) -> None:
        layer = get_channel_layer()
        last = -1  # wake everyone once: a commit made while the first consumer was subscribing is not missed
        while self.channels:
            await asyncio.sleep(interval)
            try:
                head = await database_sync_to_async(head_seq)()
                await self._rows(layer)
            except Exception as exc:  # a database that is briefly away must not end the watching
                logger.warning("WebSocket watcher could not read the outbox head: %s", exc)
                continue
            if head <= last:
                continue
            last = head
            for name in list(self.channels):
                with contextlib.suppress(ChannelFull):  # that consumer has wake-ups waiting already
                    await layer.send(name, {"type": "events.wake", "seq": head})


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watcher] = weakref.WeakKeyDictionary()


def _watcher() -> Watcher:
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = Watcher()
    return watcher
