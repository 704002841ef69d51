from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """The seed's alerts (issue 15): a remote unreachable, an approval backlog, a remote's error rate."""

    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from alerts import signals

        signals.alert_delivery_due.connect(_queue_delivery, dispatch_uid="alerts.queue_delivery")


def _queue_delivery(sender, delivery_id: int, **kwargs) -> None:
    # Imported when called: a CLI command must not pay for Celery at start-up.
    from alerts import tasks
    from federation_site.workers import queue

    queue(tasks.deliver, delivery_id)
