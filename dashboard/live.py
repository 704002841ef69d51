"""What a live dashboard page hands static/js/live.js: the watch to subscribe with on /api/v1/ws and the
outbox's head when the page was rendered, so a change committed between rendering and subscribing is not
missed (the script subscribes with `since`)."""

from __future__ import annotations

from typing import Any

WS_PATH = "/api/v1/ws"
MAX_IDS = 500  # the wire's limit on `filters.ids`


def page_config(*, entity_type: str, since: int, ids: list[str] | None = None) -> dict[str, Any]:
    """`since` is events.selectors.head_seq() read before the page's data (never newer than the page)."""
    watch: dict[str, Any] = {"entity_type": entity_type}
    if ids:
        watch["filters"] = {"ids": list(dict.fromkeys(ids))[:MAX_IDS]}
    return {"url": WS_PATH, "watch": watch, "since": since}


def entity_page_ids(entity_id: str, detail: dict[str, Any]) -> list[str]:
    """The local entities an entity's page shows the status of: itself, its relationships both ways and the
    entities its content mentions."""
    edges = detail.get("relationships", []) + detail.get("incoming_relationships", []) + detail.get("blocked_by", [])
    ids = [entity_id] + [e["id"] for e in edges if not e.get("remote") and e.get("exists")]
    return ids + [r["id"] for r in detail.get("references", []) if not r.get("repo") and r.get("exists")]
