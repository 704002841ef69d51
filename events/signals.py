"""Hooks the outbox offers the layers above it (see federation_site/signals.py for the convention)."""

from django.dispatch import Signal

# Sent after the transaction that recorded events commits (events.publish.announce), in the process that
# committed it. Arguments: `seq`, the last sequence number committed. A hint, never the only way an event is
# found: every deliverer also reads the outbox on its own. subscriptions: wakes the webhook fan-out.
events_committed = Signal()
