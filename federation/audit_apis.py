"""The audit API, staff only (the management API's `StaffView`: a session with the CSRF token, or HTTP Basic
with a staff user): `GET /api/v1/federation/audit` (the log, filtered, newest first, a page at a time) and
`GET /api/v1/federation/audit/stats` (totals and duration percentiles over a window).

Thin: the query string is checked by `audit.selectors.audit_filters` (unknown parameters refused too), one
selector answers, and a bad parameter is a 400 `{error: invalid, errors: [{path: <parameter>, message}]}`.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from audit.selectors import FILTERS, PAGE_LIMIT, PAGE_MAX_LIMIT, audit_filters, audit_page, audit_stats
from protocol import messages
from remotes.apis import StaffView, invalid

_FILTER_PARAMETERS = [
    OpenApiParameter("remote", str, description="part of the remote's identity, any case"),
    OpenApiParameter("operation", str, description="query, discover, mutate, subscribe, event, callback, ..."),
    OpenApiParameter("direction", str, enum=["incoming", "outgoing"]),
    OpenApiParameter("status", str, enum=["success", "failed", "pending"]),
    OpenApiParameter("since", str, description="ISO 8601 datetime or date, inclusive (no zone: UTC)"),
    OpenApiParameter("until", str, description="ISO 8601 datetime or date, exclusive (no zone: UTC)"),
    OpenApiParameter("correlation_id", str, description="the X-Correlation-ID of one call, on both nodes"),
    OpenApiParameter("request_id", str, description="the rows of one cross-repo request"),
]
_RESPONSES = {
    400: OpenApiResponse(
        description="a bad or unknown parameter, named: `{error: invalid, errors: [{path, message}]}`"
    ),
    403: OpenApiResponse(description="not logged in as staff, or the session's CSRF token is missing"),
}


def _unknown(request: Request, known: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise ValidationError({name: f"unknown parameter (known: {', '.join(known)})" for name in unknown})


class AuditApi(StaffView):
    @extend_schema(
        tags=["management"],
        summary="The audit log, newest first, a page at a time (staff)",
        parameters=[
            *_FILTER_PARAMETERS,
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter("limit", int, description=f"rows per page, 1-{PAGE_MAX_LIMIT} (default {PAGE_LIMIT})"),
        ],
        responses={200: OpenApiResponse(description="`{results: [entry], next_cursor}`"), **_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            _unknown(request, (*FILTERS, "cursor", "limit"))
            limit = messages.parse_count(params.get("limit") or str(PAGE_LIMIT))
            if limit is None:
                raise ValidationError({"limit": f"expected a whole number, got {params.get('limit', '')[:40]!r}"})
            page = audit_page(cursor=params.get("cursor") or None, limit=limit, **audit_filters(params))
        except ValidationError as exc:
            return invalid(exc)
        return Response(page)


class AuditStatsApi(StaffView):
    @extend_schema(
        tags=["management"],
        summary="Audit totals by operation, status and remote, and duration percentiles (staff)",
        description="Over the rows matching the filters; without `since`, the 24 hours before `until` (or now).",
        parameters=_FILTER_PARAMETERS,
        responses={
            200: OpenApiResponse(
                description="`{window: {since, until}, total, by_operation, by_status, by_remote, "
                "duration_ms: {count, p50, p95, p99}}`"
            ),
            **_RESPONSES,
        },
    )
    def get(self, request: Request) -> Response:
        try:
            _unknown(request, FILTERS)
            stats = audit_stats(**audit_filters(request.query_params))
        except ValidationError as exc:
            return invalid(exc)
        return Response(stats)
