"""Hooks between this app's services and its Celery tasks (see federation_site/signals.py for the convention)."""

from django.dispatch import Signal

# alert_delivery_due: an AlertDelivery row (a notification of an alert firing or resolved) became due; sent after
# its commit. Arguments: `delivery_id`. A hint: the periodic task finds due rows if the wake-up is lost.
# -> tasks.deliver
alert_delivery_due = Signal()
