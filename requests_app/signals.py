"""Hooks between this app's services and its Celery tasks (see federation_site/signals.py for the convention).

The tasks are an edge: they call the services, so the services wake them through this hook, which
`RequestsAppConfig.ready()` connects to `federation_site.workers.queue`.
"""

from django.dispatch import Signal

# delivery: a Delivery row (callback, notification webhook, email) became due; sent after its commit.
# Arguments: `delivery_id`. A hint: the periodic task finds due rows if the wake-up is lost. -> tasks.deliver
delivery_due = Signal()

# request_changed: a request moved (requests_app.states.transition), inside the transaction of the move, so what a
# receiver writes commits with it. Arguments: `request` (already moved), `status_from`. -> agents (A2A push)
request_changed = Signal()
