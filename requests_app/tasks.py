"""Celery tasks: each loads its row and calls a service; all are safe to run twice."""

from federation_site.celery import app
from requests_app import delivery


@app.task(ignore_result=True)
def deliver(delivery_id: int) -> str:
    return delivery.deliver(delivery_id)


@app.task(ignore_result=True)
def deliver_due() -> int:
    """Periodic: wake every delivery whose time has come (the broker is only a wake-up call)."""
    due = delivery.due()
    for delivery_id in due:
        delivery.deliver(delivery_id)
    return len(due)


@app.task(ignore_result=True)
def poll_outgoing() -> int:
    """Periodic: send outgoing requests that could not be sent, and ask about pending ones."""
    from django.utils import timezone

    from requests_app.models import CrossRepoRequest, Direction, RequestStatus
    from requests_app.services import request_poll

    due = list(
        CrossRepoRequest.objects.filter(
            direction=Direction.OUTGOING,
            status__in=[RequestStatus.PENDING, RequestStatus.APPROVED],
            next_poll_at__lte=timezone.now(),
        )[:100]
    )
    for request in due:
        request_poll(request=request)
    return len(due)


@app.task(ignore_result=True)
def resume_approved() -> int:
    """Periodic: incoming requests approved but never carried out (the process died in between)."""
    from requests_app.services import requests_resume

    return requests_resume()
