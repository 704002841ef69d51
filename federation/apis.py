"""The federation endpoints under /api/v1/federation/: where another node's messages enter.

Each view reads the raw body (size-checked), validates it into a typed message, and hands it to one answer
(`federation.services`, `requests_app.services`, `subscriptions.incoming`), through one dispatch table and one
error path: 400 for a message that is not valid (naming the path), 403 when the caller may not do it, never a
500 for anything a caller sends. The request endpoints (status, approve, reject, callback) are
`requests_app.apis`; the webhook receiver is `subscriptions.apis`.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from federation import fastdoor, services
from federation_site import logs
from protocol import messages
from remotes.auth import RemoteKeyAuthentication, request_caller
from remotes.policy import Caller, PermissionDenied, RateLimited
from subscriptions import incoming
from subscriptions.models import Subscription
from tracker.sync import DataDamaged

CORRELATION_HEADER = messages.CORRELATION_HEADER


def _correlation_id(request: Request) -> str:
    return fastdoor.correlation_id(request.headers)


def _rest_base(request: Request) -> str:
    return request.build_absolute_uri("/api/v1").rstrip("/")


def _read(request: Request) -> object:
    return fastdoor.read_message(request.headers, lambda: request.body)


def _discover(request: Request, caller: Caller, message, correlation_id: str) -> dict:
    return services.answer_discover(caller=caller, rest_base=_rest_base(request), correlation_id=correlation_id)


def _query(request: Request, caller: Caller, message, correlation_id: str) -> orjson.Fragment:
    return orjson.Fragment(
        services.answer_query_json(
            caller=caller,
            message=message,
            correlation_id=correlation_id,
            client_address=request.META.get("REMOTE_ADDR", ""),
        )
    )


def _mutate(request: Request, caller: Caller, message, correlation_id: str) -> tuple[dict, int]:
    from requests_app.services import request_receive

    return request_receive(
        caller=caller,
        message=message,
        correlation_id=correlation_id,
        base_url=request.build_absolute_uri("/").rstrip("/"),
    )


def _subscribe(request: Request, caller: Caller, message, correlation_id: str) -> tuple[dict, int]:
    return incoming.subscription_receive(
        caller=caller,
        message=message,
        correlation_id=correlation_id,
        base_url=request.build_absolute_uri("/").rstrip("/"),
    )


# One entry per message type this node answers; a type is supported once it is here and in messages.
# A handler returns the response body, or (body, HTTP status).
DISPATCH: dict[str, Callable[[Request, Caller, object, str], object]] = {
    "discover": _discover,
    "query": _query,
    "mutate": _mutate,
    "subscribe": _subscribe,
    "delegate": _mutate,  # a delegation is a request for work, decided and recorded like a mutation
}


def _answer(request: Request, parse: Callable[[object], object] | None, *, only: str | None = None) -> Response:
    """Read the body as a message (`parse`; None: no body, a discover) and answer it through DISPATCH."""

    def call(caller: Caller, correlation_id: str) -> dict | tuple[dict, int]:
        if parse is None:
            message, handler = None, DISPATCH["discover"]
        else:
            try:
                message = parse(_read(request))
                if only and message.type != only:
                    raise messages.MessageError.at(
                        "type", f"{message.type!r} is not supported here (supported: {only})"
                    )
            except messages.MessageError as exc:
                operation = request.path.rstrip("/").rsplit("/", 1)[-1]  # the endpoint: mutate, delegate, ...
                services.audit_invalid(caller=caller, operation=operation, error=exc, correlation_id=correlation_id)
                raise
            handler = DISPATCH[message.type]
            metadata = getattr(message, "metadata", None)
            logs.bind(request_id=getattr(metadata, "request_id", None))
        return handler(request, caller, message, correlation_id)

    return _respond(request, call)


def _respond(request: Request, call: Callable[[Caller, str], dict | tuple[dict, int]]) -> Response:
    """The one error path of every federation endpoint: `call(caller, correlation_id)` returns the body, or
    (body, HTTP status); what it raises becomes a 4xx with a JSON body."""
    correlation_id = _correlation_id(request)
    caller = request_caller(request)
    logs.bind(correlation_id=correlation_id)
    headers = {CORRELATION_HEADER: correlation_id}
    try:
        result = call(caller, correlation_id)
        body, status = result if isinstance(result, tuple) else (result, 200)
    except (messages.MessageError, services.QueryError) as exc:
        body, status = exc.as_json(), 400
    except Subscription.DoesNotExist as exc:
        body, status = {"error": "not_found", "detail": str(exc)}, 404
    except (PermissionDenied, RateLimited, DataDamaged) as exc:  # damaged data: nothing was recorded, try later
        body, status = services.refusal(exc, caller)
        if "retry_after" in body:
            headers["Retry-After"] = str(exc.retry_after)
    return Response(body, status=status, headers=headers)


def _int_param(request: Request, name: str, default: int, *, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = messages.parse_count(raw)
    if value is None or value < minimum:
        raise messages.MessageError.at(name, f"expected an integer of at least {minimum}, got {raw[:40]!r}")
    return value


class OrjsonRenderer(JSONRenderer):
    """DRF's JSON renderer with orjson: the same compact UTF-8 JSON, several times faster, and bodies may hold
    already encoded parts (`orjson.Fragment`: a query's cached results). What orjson does not know (dates,
    decimals, lazy strings) DRF's encoder writes, as before."""

    _default = staticmethod(JSONEncoder().default)

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=self._default, option=orjson.OPT_PASSTHROUGH_DATETIME)


class _FederationView(APIView):
    authentication_classes = [RemoteKeyAuthentication]
    permission_classes = [AllowAny]
    renderer_classes = [OrjsonRenderer]


_ERRORS = {
    400: OpenApiResponse(description="not a valid message: `{error, errors: [{path, message}]}`"),
    403: OpenApiResponse(description="the caller's trust level or permissions do not allow it"),
}


class _FastDoorView(_FederationView):
    """An endpoint whose one implementation is federation.fastdoor.answer (authentication, the bandwidth, the
    message, the answer, the headers): under daphne federation_site.asgi sends most requests straight there; this
    view serves the rest (HEAD, CORS, a query string, Django's test client) and documents it. DRF only routes:
    its authentication, content negotiation and throttles are not run (`answer` authenticates; it answers JSON
    whatever Accept says, as the fast door does)."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.format_kwarg = None

    def fast(self, request: Request) -> HttpResponse:
        result = fastdoor.answer(
            method=request.method,
            path=request.path,
            scheme=request.scheme,
            host=request.get_host(),
            headers=request.headers,
            body=request.body,
            client_address=request.META.get("REMOTE_ADDR", ""),
            query_string=request.META.get("QUERY_STRING", ""),
        )
        response = HttpResponse(result.body, status=result.status)
        for name, value in result.headers:
            response[name] = value
        return response


class InfoApi(_FastDoorView):
    @extend_schema(
        tags=["federation"],
        summary="Discover: this node's capabilities and the caller's trust level",
        responses={200: messages.json_schema_of(messages.DiscoverResponse)},
    )
    def get(self, request: Request) -> HttpResponse:
        return self.fast(request)


class KeyRotationApi(_FederationView):
    @extend_schema(
        tags=["federation"],
        summary="A remote announces its new signing key, signed with its old one (issue 17)",
        request={"application/json": messages.json_schema_of(messages.KeyRotationMessage)},
        responses={
            200: OpenApiResponse(description='`{"type": "key_rotation_response", "status": "pinned", "key_id"}`'),
            401: OpenApiResponse(description="no key pinned for the caller, or not signed with it"),
            **_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        from remotes.services import remote_key_rotation_receive
        from remotes.signatures import SignatureProblem

        def call(caller: Caller, correlation_id: str) -> dict | tuple[dict, int]:
            message = messages.parse_key_rotation(_read(request))
            try:
                return remote_key_rotation_receive(
                    caller=caller,
                    public_key=message.public_key,
                    method=request.method,
                    url=request.build_absolute_uri(),
                    headers=request.headers,
                    body=request.body,
                )
            except SignatureProblem as exc:
                return {"error": "unauthorized", "detail": str(exc)}, 401

        return _respond(request, call)


class DirectoryApi(_FederationView):
    @extend_schema(
        tags=["federation"],
        summary="The repositories this node lists for discovery (itself and the remotes that agreed)",
        responses={200: dict, **_ERRORS},
    )
    def get(self, request: Request) -> Response:
        from remotes.discovery import directory_for

        return _respond(request, lambda caller, _: directory_for(caller, served_rest=_rest_base(request)))


class QueryApi(_FastDoorView):
    @extend_schema(
        tags=["federation"],
        summary="Query issues or specs (a query message, or the bare seed body)",
        request={"application/json": messages.json_schema_of(messages.QueryMessage)},
        responses={200: messages.json_schema_of(messages.QueryResponse), **_ERRORS},
        examples=[
            OpenApiExample(
                "open issues labelled api",
                request_only=True,
                value={"entity": "issue", "filters": {"status": "open", "labels": ["api"]}, "limit": 50},
            )
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        return self.fast(request)


class MutateApi(_FederationView):
    @extend_schema(
        tags=["federation"],
        summary="Ask this node for work: create an issue or spec, or update an issue",
        request={"application/json": messages.json_schema_of(messages.MutateMessage)},
        responses={
            200: messages.json_schema_of(messages.MutateResponse),
            409: OpenApiResponse(description="the request_id is already used by another repository"),
            429: OpenApiResponse(description="a rate limit of the config; see Retry-After"),
            **_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        return _answer(request, messages.parse_message, only="mutate")


class DelegateApi(_FederationView):
    @extend_schema(
        tags=["federation"],
        summary="Hand this node a task: it accepts it as a spec or issue of its own (seed: delegate)",
        request={"application/json": messages.json_schema_of(messages.DelegateMessage)},
        responses={
            200: messages.json_schema_of(messages.DelegateResponse),
            409: OpenApiResponse(description="the request_id is already used by another repository"),
            429: OpenApiResponse(description="a rate limit of the config; see Retry-After"),
            **_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        return _answer(request, messages.parse_message, only="delegate")


class A2AApi(_FederationView):
    @extend_schema(
        tags=["federation"],
        summary="Any A2A message, dispatched on its `type`",
        request={"application/json": messages.json_schema_of(messages.Message)},
        responses={200: OpenApiResponse(description="the matching *_response message"), **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        return _answer(request, messages.parse_message)


class SubscribeApi(_FederationView):
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
        return _answer(request, messages.parse_subscribe)


class SubscriptionApi(_FederationView):
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

        return _respond(request, cancel)


class EventsApi(_FederationView):
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

        return _respond(request, read)


class SchemaApi(_FederationView):
    @extend_schema(tags=["federation"], summary="JSON Schema of every A2A message", responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(messages.message_json_schema())
