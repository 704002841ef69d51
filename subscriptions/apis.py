"""The subscription endpoints: where subscribe messages, catch-up reads and webhook deliveries enter."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from federation import apis as federation_apis
from federation import messages
from remotes.auth import request_caller
from remotes.policy import PermissionDenied
from subscriptions import inbox, incoming
from subscriptions.models import Subscription

# --- the watched node: subscribe, cancel, catch up (incoming subscriptions) ---------------------------------


def _federation_errors(call, request: Request) -> Response:
    """The federation endpoints' error shapes for the views that take no message body."""
    correlation_id = federation_apis._correlation_id(request)
    caller = request_caller(request)
    headers = {federation_apis.CORRELATION_HEADER: correlation_id}
    try:
        body, status = call(caller, correlation_id), 200
    except messages.MessageError as exc:
        body, status = exc.as_json(), 400
    except PermissionDenied as exc:
        body, status = {"error": "forbidden", "detail": str(exc), "trust_level": caller.trust_level}, 403
    except Subscription.DoesNotExist as exc:
        body, status = {"error": "not_found", "detail": str(exc)}, 404
    return Response(body, status=status, headers=headers)


def _int_param(request: Request, name: str, default: int, *, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 18 or int(raw) < minimum:
        raise messages.MessageError.at(name, f"expected an integer of at least {minimum}, got {raw[:40]!r}")
    return int(raw)


class SubscribeApi(federation_apis._FederationView):
    @extend_schema(
        tags=["subscriptions"],
        summary="Subscribe to this node's changes (a subscribe message, or the seed's bare body)",
        request={"application/json": messages.json_schema_of(messages.SubscribeMessage)},
        responses={
            200: messages.json_schema_of(messages.SubscribeResponse),
            400: OpenApiResponse(description="not a valid message: `{error, errors: [{path, message}]}`"),
            403: OpenApiResponse(description="the caller may not subscribe, or has max_subscriptions already"),
            409: OpenApiResponse(description="the subscription_id is already used by another repository"),
        },
        examples=[
            OpenApiExample(
                "bare body",
                request_only=True,
                value={
                    "watch": {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}},
                    "callback_url": "https://frontend.dev/api/v1/webhooks/cross-repo",
                    "callback_auth": {"type": "bearer", "token": "whk_..."},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        return federation_apis._answer(request, messages.parse_subscribe)


class SubscriptionApi(federation_apis._FederationView):
    @extend_schema(
        tags=["subscriptions"],
        summary="Cancel a subscription (only its subscriber may)",
        responses={200: OpenApiResponse(description="the subscription, cancelled"), 404: OpenApiResponse()},
    )
    def delete(self, request: Request, subscription_id: str) -> Response:
        def cancel(caller, correlation_id: str) -> dict:
            row = incoming.subscription_cancel(
                caller=caller, subscription_id=subscription_id, correlation_id=correlation_id
            )
            return incoming.subscription_state(row)

        return _federation_errors(cancel, request)


class EventsApi(federation_apis._FederationView):
    @extend_schema(
        tags=["subscriptions"],
        summary="Catch up: a subscription's events after a sequence number (its subscriber only)",
        parameters=[
            OpenApiParameter("subscription", str, required=True, description="the subscription_id"),
            OpenApiParameter("after", int, description="the last sequence number the caller has (default 0)"),
            OpenApiParameter("limit", int, description=f"events per page, 1-{incoming.FEED_MAX_LIMIT}"),
        ],
        responses={
            200: OpenApiResponse(
                description="`{subscription_id, status, events: [{previous_seq, event}], head_seq, next_after, more}`"
            ),
            403: OpenApiResponse(),
            404: OpenApiResponse(),
        },
    )
    def get(self, request: Request) -> Response:
        def read(caller, correlation_id: str) -> dict:
            subscription_id = request.query_params.get("subscription") or ""
            if not subscription_id:
                raise messages.MessageError.at("subscription", "missing (the subscription_id)")
            return incoming.events_for(
                caller=caller,
                subscription_id=subscription_id,
                after=_int_param(request, "after", 0, minimum=0),
                limit=_int_param(request, "limit", incoming.FEED_LIMIT, minimum=1),
            )

        return _federation_errors(read, request)


# --- the watching node: the webhook receiver (outgoing subscriptions) ---------------------------------------


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
        length = request.META.get("CONTENT_LENGTH")
        if length and length.isdigit() and int(length) > inbox.MAX_BODY_BYTES:
            answer, status = inbox.too_large(int(length))  # refused before reading it
        else:
            answer, status = inbox.webhook_receive(headers=dict(request.headers), body=request.body)
        retry_after = answer.get("retry_after")
        return Response(answer, status=status, headers={"Retry-After": str(retry_after)} if retry_after else None)
