"""After an event commits: wake whoever delivers it. Both wake-ups are hints; the outbox is the truth, and
each deliverer also finds new events on its own (the periodic fan-out task; the WebSocket watcher's poll), so a
wake-up lost with a process costs latency, never an event. The CLI sends neither: it leaves its events to
those two, which find them within half a second."""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)

WS_GROUP = "events"


def announce(seq: int) -> None:
    _wake_websockets(seq)
    _wake_webhooks()


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


def _wake_webhooks() -> None:
    if settings.CLI_PROFILE:
        # A CLI command would pay ~0.4 s importing Celery and opening the broker to say what the worker's
        # periodic fan-out (every 0.5 s) finds anyway.
        return
    from subscriptions.delivery import wake

    wake()
