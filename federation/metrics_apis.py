"""The metrics page's data, staff only (the management API's `StaffView`): `GET
/api/v1/federation/metrics/series?window=hour|day|week`, what static/js/metrics.js charts on `/metrics/`.

Thin: the window is checked by `audit.selectors.series_window`; the calls come from the audit rollups
(`audit.selectors.audit_series`), the approval queue from the requests (`requests_app.selectors.request_series`),
the alerts from theirs. A bad parameter is a 400 `{error: invalid, errors: [{path: <parameter>, message}]}`.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.selectors import alerts_firing
from audit.selectors import SERIES_WINDOWS, audit_series, series_window
from federation.audit_apis import _unknown
from remotes.apis import StaffView, invalid
from requests_app.selectors import request_series


def metrics_series(window: str = "hour", *, now: datetime | None = None) -> dict:
    """The whole document of the series API (PROTOCOL.md, "Metrics series"): `audit_series`'s keys, plus
    `requests` (`request_series`) and `alerts` (those firing). Raises ValidationError naming `window`."""
    frame = series_window(window, now=now)
    return {**audit_series(window, now=now), "requests": request_series(frame), "alerts": alerts_firing()}


class MetricsSeriesApi(StaffView):
    @extend_schema(
        tags=["management"],
        summary="The metrics page's series: calls, errors, latency, the approval queue, alerts (staff)",
        parameters=[OpenApiParameter("window", str, enum=list(SERIES_WINDOWS), description="default: hour")],
        responses={
            200: OpenApiResponse(
                description="`{window, period_seconds, since, until, times, calls, failed, error_rate, by_remote, "
                "latency_ms, requests: {arrived, approved, rejected, approval_rate, decision_seconds, "
                "queue_depth}, alerts: [alert]}`"
            ),
            400: OpenApiResponse(description="a bad or unknown parameter, named"),
            403: OpenApiResponse(description="not logged in as staff"),
        },
    )
    def get(self, request: Request) -> Response:
        try:
            _unknown(request, ("window",))
            return Response(metrics_series(request.query_params.get("window") or "hour"))
        except ValidationError as exc:
            return invalid(exc)
