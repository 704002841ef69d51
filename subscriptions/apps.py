from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    """Subscriptions to changes, webhooks and WebSocket events (cross_repo_subscriptions)."""

    name = "subscriptions"

    def ready(self) -> None:
        # The hooks of the layers below (and of our own services, for our tasks). Receivers import what they
        # need when called: a CLI command must not pay for Celery or the wire format at start-up.
        from events.signals import events_committed
        from remotes.signals import remotes_changed
        from subscriptions import signals
        from tracker.signals import references_changed

        references_changed.connect(_follow_references, dispatch_uid="subscriptions.follow_references")
        events_committed.connect(_wake_webhooks, dispatch_uid="subscriptions.wake_webhooks")
        signals.webhooks_due.connect(_queue_fan_out, dispatch_uid="subscriptions.queue_fan_out")
        signals.auto_subscriptions_due.connect(_queue_sync, dispatch_uid="subscriptions.queue_sync")
        signals.push_due.connect(_queue_push, dispatch_uid="subscriptions.queue_push")
        remotes_changed.connect(_retry_failed, dispatch_uid="subscriptions.retry_failed")


def _retry_failed(sender, urls: list[str], **kwargs) -> None:
    from subscriptions.outgoing import subscriptions_retry_failed

    subscriptions_retry_failed(remote_urls=urls)


def _follow_references(sender, **kwargs) -> None:
    from subscriptions.outgoing import references_changed

    references_changed()


def _wake_webhooks(sender, **kwargs) -> None:
    from django.conf import settings

    if settings.CLI_PROFILE:
        # A CLI command would pay ~0.4 s importing Celery and opening the broker to say what the worker's
        # periodic fan-out (every 0.5 s) finds anyway.
        return
    from subscriptions.delivery import wake

    wake()


def _queue_fan_out(sender, **kwargs) -> None:
    from federation_site.workers import queue
    from subscriptions import tasks

    queue(tasks.fan_out)


def _queue_sync(sender, **kwargs) -> None:
    from federation_site.workers import queue
    from subscriptions import tasks

    queue(tasks.sync_outgoing)


def _queue_push(sender, subscription_id: str, **kwargs) -> None:
    from federation_site.workers import queue
    from subscriptions import tasks

    queue(tasks.push_outgoing, subscription_id)
