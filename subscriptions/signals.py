"""Hooks between this app's services and its Celery tasks (see federation_site/signals.py for the convention).

The tasks are an edge: they call the services, so the services wake them through these hooks, which
`SubscriptionsConfig.ready()` connects to `federation_site.workers.queue`. Each is sent after the commit that
made the work due, and each is a hint: a periodic task finds the same work if the wake-up is lost.
"""

from django.dispatch import Signal

# delivery.wake: incoming subscriptions are behind the outbox. No arguments. -> tasks.fan_out
webhooks_due = Signal()

# outgoing.references_changed: auto-subscriptions must follow the references. No arguments. -> tasks.sync_outgoing
auto_subscriptions_due = Signal()

# outgoing: one outgoing subscription must be (re)sent or cancelled at its remote. Arguments: `subscription_id`.
# -> tasks.push_outgoing
push_due = Signal()
