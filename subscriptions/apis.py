"""The subscription endpoints: where subscribe messages, catch-up reads and webhook deliveries enter."""

from __future__ import annotations

# --- the watched node: subscribe, cancel, catch up (incoming subscriptions) ---------------------------------


# --- the watching node: the webhook receiver (outgoing subscriptions) ---------------------------------------
