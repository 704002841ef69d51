"""Writing the outbox. Called inside the transaction that makes the change (tracker.sync for issues and specs,
requests_app.states for requests), so an event exists exactly when its change does."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from events.models import Event, EventCounter, Scope

# The fields of an entity that filters match on and that an event's `entity` carries.
STATE_FIELDS = ("id", "uuid", "title", "status", "priority", "tags", "archived", "updated_at")
# Bookkeeping that changes with every edit; it is not news on its own.
_NOT_A_CHANGE = frozenset({"updated_at"})


def entity_state(record: dict | None) -> dict | None:
    if record is None:
        return None
    state = {k: record.get(k) for k in STATE_FIELDS}
    state["spec_refs"] = sorted(
        {r.get("to") for r in record.get("relationships") or [] if r.get("type") == "implements" and r.get("to")}
    )
    return state


def record_changes(kind: str, changes: Iterable[tuple[str, dict | None, dict | None]]) -> list[Event]:
    """Events for changed entities of `kind`: each a (uuid, record before, record after), None for a record
    that did not exist (created) or no longer does (deleted). A change that touched only `updated_at` is no
    event. Must run inside the transaction that makes the change."""
    now = timezone.now()
    rows = []
    for entity_uuid, before, after in changes:
        diff = field_changes(before, after)
        if before is not None and after is not None and not (set(diff) - _NOT_A_CHANGE):
            continue
        what = "created" if before is None else "deleted" if after is None else "updated"
        current = after if after is not None else before
        rows.append(
            Event(
                event_id=uuid.uuid4(),
                type=f"{kind}_{what}",
                scope=Scope.ENTITY,
                entity_kind=kind,
                entity_uuid=entity_uuid,
                entity_id=str(current.get("id") or ""),
                changes=diff,
                state={"before": entity_state(before), "after": entity_state(after)},
                created_at=now,
            )
        )
    return _append(rows)


def record_local(
    *, type: str, kind: str, uuid_: str, id_: str, changes: dict[str, Any], state: dict[str, Any]
) -> Event:
    """An event only this node's staff hear about (the live approval queue): a request arriving or moving."""
    row = Event(
        event_id=uuid.uuid4(),
        type=type,
        scope=Scope.LOCAL,
        entity_kind=kind,
        entity_uuid=uuid_,
        entity_id=id_,
        changes=changes,
        state={"before": None, "after": state},
        created_at=timezone.now(),
    )
    return _append([row])[0]


def field_changes(before: dict | None, after: dict | None) -> dict[str, dict[str, Any]]:
    """The seed's `changes`: {field: {"from": old, "to": new}} for every field whose value differs."""
    before, after = before or {}, after or {}
    keys = list(before) + [k for k in after if k not in before]
    return {k: {"from": before.get(k), "to": after.get(k)} for k in keys if before.get(k) != after.get(k)}


def _append(rows: Sequence[Event]) -> list[Event]:
    if not rows:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("events are recorded inside the transaction of their change")
    # The counter row's lock is held until commit: numbers are handed out in commit order (PostgreSQL); on
    # SQLite the write transaction itself serialises writers.
    counter, _ = EventCounter.objects.select_for_update().get_or_create(pk=1)
    first = counter.last_seq + 1
    for offset, row in enumerate(rows):
        row.seq = first + offset
    EventCounter.objects.filter(pk=1).update(last_seq=first + len(rows) - 1)
    Event.objects.bulk_create(rows, batch_size=500)
    _announce_after_commit(rows[-1].seq)
    return list(rows)


class _Announce:
    """The one wake-up a transaction owes the outbox's listeners, for its highest seq (a wake-up is a hint that
    says "read after your cursor": one per commit tells as much as one per event)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq

    def __call__(self) -> None:
        from events.publish import announce

        announce(self.seq)


def _announce_after_commit(seq: int) -> None:
    connection = transaction.get_connection()
    pending = getattr(connection, "_events_announce", None)
    # Still queued in this transaction (a rolled-back savepoint drops what it queued, so look rather than trust).
    if pending is not None and any(hook is pending for _sids, hook, _robust in connection.run_on_commit):
        pending.seq = max(pending.seq, seq)
        return
    connection._events_announce = _Announce(seq)
    transaction.on_commit(connection._events_announce)


def events_prune(*, before: datetime, passed_seq: int, dry_run: bool = False) -> dict[str, Any]:
    """Delete the outbox events created before `before` whose seq is at most `passed_seq` (the lowest cursor
    of the subscriptions that still read the outbox: the caller's rule, subscriptions.retention). The newest
    event always stays, so the outbox head (events.selectors.head_seq) never goes back. `dry_run` only counts.
    Returns {"count", "up_to_seq"} (the highest seq that may go)."""
    from django.db.models import Max

    head = Event.objects.aggregate(m=Max("seq"))["m"] or 0
    up_to = min(passed_seq, head - 1)
    rows = Event.objects.filter(created_at__lt=before, seq__lte=up_to)
    count = rows.count() if dry_run else rows.delete()[0]
    return {"count": count, "up_to_seq": max(up_to, 0)}
