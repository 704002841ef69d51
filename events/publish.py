"""After an event commits: wake whoever delivers it. The WebSocket consumers are woken here, through the channel
layer; the layers above hear `events.signals.events_committed` (subscriptions wakes its webhook fan-out). Every
wake-up is a hint; the outbox is the truth, and each deliverer also finds new events on its own (the periodic
fan-out task; the WebSocket watcher's poll), so a wake-up lost with a process costs latency, never an event."""

from __future__ import annotations

import logging

from django.conf import settings

from events.models import Event
from events.signals import events_committed

logger = logging.getLogger(__name__)

WS_GROUP = "events"


def announce(seq: int) -> None:
    _wake_websockets(seq)
    events_committed.send(sender=Event, seq=seq)


def _wake_websockets(seq: int) -> None:
    if "channels" not in settings.INSTALLED_APPS:
        return  # the CLI profile: WebSocket clients of the web process find the event by polling the outbox
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(WS_GROUP, {"type": "events.wake", "seq": seq})
    except Exception as exc:  # a channel layer that is down must not fail the change that was just committed
        logger.warning("could not wake WebSocket consumers for event %s: %s", seq, exc)
