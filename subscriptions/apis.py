"""The webhook receiver: where events of our outgoing subscriptions enter (POST /api/v1/webhooks/cross-repo).

The watched side's endpoints (subscribe, cancel, catch-up) are federation endpoints: `federation.apis`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from protocol import messages
from subscriptions import inbox


class CrossRepoWebhookApi(APIView):
    """POST /api/v1/webhooks/cross-repo: events of our outgoing subscriptions, signed by the remotes we watch.

    No session, no CSRF, no DRF authentication: a delivery proves itself with the bearer token we gave in the
    callback and the HMAC signature over the raw body, which is read here before anything parses it."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["subscriptions"],
        summary="Receive an event of one of our subscriptions (signed webhook)",
        request={"application/json": messages.json_schema_of(messages.EventMessage)},
        parameters=[
            OpenApiParameter(h, str, OpenApiParameter.HEADER, required=True)
            for h in (
                "X-Sudocode-Signature",
                "X-Sudocode-Subscription",
                "X-Sudocode-Event-Id",
                "X-Sudocode-Sequence",
                "X-Sudocode-Previous-Sequence",
            )
        ],
        responses={
            200: OpenApiResponse(description='`{"status": "applied" | "duplicate", "seq": N}`'),
            400: OpenApiResponse(description="not a valid event: `{error, detail, errors: [{path, message}]}`"),
            401: OpenApiResponse(description="bad or missing signature or token, stale timestamp, or a replay"),
            404: OpenApiResponse(description="no such subscription here"),
            410: OpenApiResponse(description="we cancelled this subscription: stop sending"),
            503: OpenApiResponse(description="a gap could not be filled yet; see Retry-After"),
        },
    )
    def post(self, request: Request) -> Response:
        refused = inbox.refuse_before_reading(request.META.get("CONTENT_LENGTH"))
        if refused is not None:
            answer, status = refused
        else:
            answer, status = inbox.webhook_receive(
                headers=dict(request.headers), body=request.body, url=request.build_absolute_uri()
            )
        retry_after = answer.get("retry_after")
        return Response(answer, status=status, headers={"Retry-After": str(retry_after)} if retry_after else None)
