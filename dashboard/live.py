"""What a live dashboard page hands static/js/live.js: the watch to subscribe with on /api/v1/ws and the
outbox's head when the page was rendered, so a change committed between rendering and subscribing is not
missed (the script subscribes with `since`)."""

from __future__ import annotations

from typing import Any

WS_PATH = "/api/v1/ws"
MAX_IDS = 500  # the wire's limit on `filters.ids`


# What each page follows (issue 14: a page follows everything it shows). "*" is every issue and spec event,
# including `reference_updated` (a cached remote reference of a local entity changed, remotes.services);
# "request", "subscription" and "remote" are the local events of those rows (this node's staff only).
ENTITIES = "*"
REQUESTS = "request"
SUBSCRIPTIONS = "subscription"
REMOTES = "remote"


def page_config(
    *, entity_type: str, since: int, ids: list[str] | None = None, also: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`since` is events.selectors.head_seq() read before the page's data (never newer than the page).
    `watch` is the page's main watch (`ids` narrow it); `watches` adds one unfiltered watch per type in `also`.
    static/js/live.js subscribes to each of `watches`."""
    watch: dict[str, Any] = {"entity_type": entity_type}
    if ids:
        watch["filters"] = {"ids": list(dict.fromkeys(ids))[:MAX_IDS]}
    watches = [watch] + [{"entity_type": kind} for kind in also if kind != entity_type]
    return {"url": WS_PATH, "watch": watch, "watches": watches, "since": since}


def entity_page_ids(entity_id: str, detail: dict[str, Any]) -> list[str]:
    """The local entities an entity's page shows the status of: itself, its relationships both ways and the
    entities its content mentions. Its remote references need no id of their own: a change of their cached
    state is a `reference_updated` event of this entity (remotes.services.references_announce)."""
    edges = detail.get("relationships", []) + detail.get("incoming_relationships", []) + detail.get("blocked_by", [])
    ids = [entity_id] + [e["id"] for e in edges if not e.get("remote") and e.get("exists")]
    return ids + [r["id"] for r in detail.get("references", []) if not r.get("repo") and r.get("exists")]
