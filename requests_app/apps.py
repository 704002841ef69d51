from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    """Cross-repo mutation requests and their approval (cross_repo_requests)."""

    name = "requests_app"
    verbose_name = "Requests"

    def ready(self) -> None:
        from requests_app import signals

        signals.delivery_due.connect(_queue_delivery, dispatch_uid="requests_app.queue_delivery")


def _queue_delivery(sender, delivery_id: int, **kwargs) -> None:
    # Imported when called: a CLI command must not pay for Celery at start-up.
    from federation_site.workers import queue
    from requests_app import tasks

    queue(tasks.deliver, delivery_id)
