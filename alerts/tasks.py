"""Celery tasks: each calls a service; all are safe to run twice."""

from alerts import delivery, services
from federation_site.celery import app


@app.task(ignore_result=True)
def evaluate() -> dict:
    """Periodic: fire and resolve the alerts, then send what they owe."""
    outcome = services.alerts_evaluate()
    delivery.deliver_due()
    return outcome


@app.task(ignore_result=True)
def deliver(delivery_id: int) -> str:
    return delivery.deliver(delivery_id)


@app.task(ignore_result=True)
def deliver_due() -> dict:
    """Periodic: send every alert notification whose time has come (the broker is only a wake-up call)."""
    return delivery.deliver_due()
