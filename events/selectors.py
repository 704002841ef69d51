"""Reading the outbox: by sequence number, matched against a subscription's watch, shaped as the seed's event
message for one reader (projected to the fields that reader may see)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Max

from events.models import Event, Scope
from federation_site import identity


def head_seq() -> int:
    return Event.objects.aggregate(m=Max("seq"))["m"] or 0


def events_after(seq: int, *, limit: int = 500, scopes: Iterable[str] = (Scope.ENTITY,)) -> list[Event]:
    return list(Event.objects.filter(seq__gt=seq, scope__in=list(scopes)).order_by("seq")[:limit])


def event_matches(event: Event, watch: dict[str, Any]) -> bool:
    """Whether `event` concerns what `watch` ({entity_type, filters}) watches. An entity matches if it matched
    before the change or matches after it: a subscriber watching open issues hears that one was closed."""
    entity_type = watch.get("entity_type")
    if entity_type and entity_type not in ("*", event.entity_kind):
        return False
    filters = watch.get("filters") or {}
    states = [s for s in (event.state.get("before"), event.state.get("after")) if s]
    return any(_state_matches(state, filters) for state in states)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _state_matches(state: dict[str, Any], filters: dict[str, Any]) -> bool:
    if filters.get("status") is not None and state.get("status") not in _as_list(filters["status"]):
        return False
    if filters.get("priority") is not None and state.get("priority") not in _as_list(filters["priority"]):
        return False
    labels = filters.get("labels") or filters.get("tags")
    if labels and not set(labels) <= set(state.get("tags") or []):
        return False
    ids = filters.get("ids")
    if ids and state.get("id") not in ids and state.get("uuid") not in ids:
        return False
    spec_refs = filters.get("spec_refs")
    if spec_refs and not set(spec_refs) & set(state.get("spec_refs") or []):
        return False
    return True


def event_body(event: Event, *, fields: frozenset[str] | None = None) -> dict[str, Any]:
    """The seed's `event` object. `fields` limits `changes` (and the entity's summary) to what the reader may
    see; None is everything (this node's own staff)."""
    current = event.state.get("after") or event.state.get("before") or {}
    entity: dict[str, Any] = {"id": event.entity_id, "uuid": event.entity_uuid, "kind": event.entity_kind}
    if event.scope == Scope.ENTITY:
        entity["canonical_ref"] = identity.canonical_ref(event.entity_id)
    for key in ("title", "status", "priority", "updated_at"):
        if key in current and (fields is None or key in fields):
            entity[key] = current[key]
    if event.type.endswith("_deleted"):
        entity["deleted"] = True
    changes = {k: v for k, v in event.changes.items() if fields is None or k in fields}
    return {
        "id": str(event.event_id),
        "seq": event.seq,
        "type": event.type,
        "entity": entity,
        "changes": changes,
        "timestamp": event.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def event_message(event: Event, *, fields: frozenset[str] | None = None, to: str | None = None) -> dict[str, Any]:
    """The whole `event` message: the envelope (from, to) around event_body."""
    message: dict[str, Any] = {"type": "event", "from": identity.local_url() or None, "to": to}
    message = {k: v for k, v in message.items() if v}
    message["event"] = event_body(event, fields=fields)
    return message
