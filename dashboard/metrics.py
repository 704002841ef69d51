"""`GET /metrics`: the node's Prometheus metrics, for staff (a session) or a scraper holding METRICS_TOKEN.

The counters and histograms are recorded where things happen (`federation_site.metrics`); what is database state
is read here at scrape time by `DatabaseCollector`, so every process answers the same and nothing can drift.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from federation_site import metrics, node, workers
from federation_site.secrets import get_secret
from remotes.selectors import breaker_states
from requests_app.selectors import request_gauges
from subscriptions.selectors import subscription_gauges

TOKEN_NAME = "METRICS_TOKEN"  # in .sudocode/secrets.env (or the environment); unset: staff only


class DatabaseCollector:
    """The gauges that are rows: the approval queue, deliveries waiting and dead, subscriptions, the worker."""

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        requests = request_gauges()
        yield GaugeMetricFamily(
            "sudocode_approval_queue_depth",
            "Incoming requests waiting for a maintainer's decision.",
            value=requests["approval_queue"],
        )
        backlog = GaugeMetricFamily(
            "sudocode_delivery_backlog",
            "Deliveries not yet made: request deliveries (pending or sending) by kind, and webhook streams "
            "retrying (kind subscription_webhook).",
            labels=["kind"],
        )
        dead = GaugeMetricFamily(
            "sudocode_dead_deliveries",
            "Deliveries given up on (a redeliver button waits in the dashboard): request deliveries by kind, "
            "subscriptions' webhook streams (subscription_webhook) and subscribe calls (subscription_subscribe).",
            labels=["kind"],
        )
        waiting: dict[str, int] = {}
        given_up: dict[str, int] = {}
        for (kind, status), n in requests["deliveries"].items():
            target = given_up if status == "dead" else waiting
            target[kind] = target.get(kind, 0) + n
        active = GaugeMetricFamily(
            "sudocode_active_subscriptions",
            "Active subscriptions: incoming (remotes watching us) and outgoing (us watching remotes).",
            labels=["direction"],
        )
        by_direction = {"incoming": 0, "outgoing": 0}
        for (direction, status, delivery), n in subscription_gauges().items():
            if status != "active":
                continue
            by_direction[direction] = by_direction.get(direction, 0) + n
            kind = "subscription_webhook" if direction == "incoming" else "subscription_subscribe"
            if delivery == "dead":
                given_up[kind] = given_up.get(kind, 0) + n
            elif delivery == "retrying" and direction == "incoming":
                waiting[kind] = waiting.get(kind, 0) + n
        for kind in ("callback", "webhook", "email", "push", "subscription_webhook"):
            backlog.add_metric([kind], waiting.get(kind, 0))
        for kind in ("callback", "webhook", "email", "push", "subscription_webhook", "subscription_subscribe"):
            dead.add_metric([kind], given_up.get(kind, 0))
        for direction, n in sorted(by_direction.items()):
            active.add_metric([direction], n)
        yield backlog
        yield dead
        yield active
        breakers = GaugeMetricFamily(
            "sudocode_remote_circuit_state",
            "Each remote's circuit breaker (remotes/breaker.py): 1 for the state it is in (closed, open, half_open).",
            labels=["remote", "state"],
        )
        for breaker in breaker_states():
            for state_name in ("closed", "open", "half_open"):
                breakers.add_metric([breaker["url"], state_name], 1 if breaker["state"] == state_name else 0)
        yield breakers
        state = workers.worker_state(node.layout())
        yield GaugeMetricFamily(
            "sudocode_worker_up",
            "1 when the Celery worker and beat ran the 2 s heartbeat task recently, else 0.",
            value=1 if state["alive"] else 0,
        )
        if state["last_seen_seconds"] is not None:
            yield GaugeMetricFamily(
                "sudocode_worker_last_seen_seconds",
                "Seconds since the worker's last heartbeat.",
                value=state["last_seen_seconds"],
            )


def _token_ok(request: HttpRequest) -> bool | None:
    """True/False for a bearer token that matches METRICS_TOKEN or not; None when no token was sent."""
    header = request.headers.get("Authorization", "")
    scheme, _, sent = header.partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return None
    expected = get_secret(node.layout().secrets_path, TOKEN_NAME)
    return bool(expected) and hmac.compare_digest(sent.strip().encode(), expected.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition text; 401 without credentials, 403 with wrong ones (a JSON body either way)."""
    token = _token_ok(request)
    user = getattr(request, "user", None)
    staff = bool(user is not None and user.is_authenticated and user.is_staff)
    if not (staff or token):
        if token is None and not (user is not None and user.is_authenticated):
            response = JsonResponse(
                {"error": "unauthorized", "detail": f"log in as staff or send Authorization: Bearer <{TOKEN_NAME}>"},
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return JsonResponse(
            {"error": "forbidden", "detail": f"only staff or the holder of {TOKEN_NAME} may read the metrics"},
            status=403,
        )
    body, content_type = metrics.scrape(DatabaseCollector())
    return HttpResponse(body, content_type=content_type)
