"""Request endpoints under /api/v1/federation/requests and the callback a requester receives.

Status and listing: staff (a logged-in session, or HTTP Basic with a staff user) see every request, incoming and
outgoing; a remote (by its key) sees only the requests it sent us. Approve and reject: staff only (a session with
the CSRF token, as the dashboard does, or HTTP Basic). Callback: the remote the request was sent to.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from protocol import messages
from remotes.apis import invalid as _invalid
from remotes.auth import RemoteKeyAuthentication, request_caller
from requests_app import services
from requests_app.models import CrossRepoRequest
from requests_app.selectors import PAGE_LIMIT, PAGE_MAX_LIMIT, request_get, requests_page, response_for


def _not_found(request_id: str) -> Response:
    return Response({"error": "not_found", "detail": f"no request {request_id!r}"}, status=404)


def _is_staff(request: Request) -> bool:
    return bool(request.user and request.user.is_staff)


# Staff by session or HTTP Basic; anyone else by a remote's key (always last: it never refuses, it is anonymous).
_STAFF_OR_REMOTE = [SessionAuthentication, BasicAuthentication, RemoteKeyAuthentication]


class RequestStatusApi(APIView):
    authentication_classes = _STAFF_OR_REMOTE
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["requests"],
        summary="A request's status (its mutate_response, or delegate_response) with the whole record",
        parameters=[
            OpenApiParameter(
                "direction",
                str,
                enum=["incoming", "outgoing"],
                description="staff: which side when this node holds both (default: incoming, else outgoing)",
            )
        ],
        responses={
            200: messages.json_schema_of(messages.MutateResponse | messages.DelegateResponse),
            400: OpenApiResponse(description="a bad `direction`"),
            404: OpenApiResponse(description="no such request that the caller may see"),
        },
    )
    def get(self, request: Request, request_id: str) -> Response:
        try:
            found = request_get(
                request_id=request_id,
                caller=request_caller(request),
                staff=_is_staff(request),
                direction=request.query_params.get("direction") or None,
            )
        except ValidationError as exc:
            return _invalid(exc)
        except CrossRepoRequest.DoesNotExist:
            return _not_found(request_id)
        return Response(response_for(found, record=True))


class RequestListApi(APIView):
    authentication_classes = _STAFF_OR_REMOTE
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["requests"],
        summary="Requests, newest first, a page at a time (staff: all; a remote: those it sent us)",
        parameters=[
            OpenApiParameter("direction", str, enum=["incoming", "outgoing"]),
            OpenApiParameter(
                "status", str, enum=["pending", "approved", "rejected", "completed", "failed", "cancelled"]
            ),
            OpenApiParameter("remote", str, description="the other side's identity, e.g. github.com/org/frontend"),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
            OpenApiParameter("limit", int, description=f"requests per page, 1-{PAGE_MAX_LIMIT} (default {PAGE_LIMIT})"),
        ],
        responses={
            200: OpenApiResponse(description="`{results: [record], next_cursor}`; next_cursor is null at the end"),
            400: OpenApiResponse(description="a bad parameter, named: `{error: invalid, errors: [{path, message}]}`"),
            403: OpenApiResponse(description="neither staff nor a known remote"),
        },
    )
    def get(self, request: Request) -> Response:
        caller, staff = request_caller(request), _is_staff(request)
        if not staff and caller.remote is None:
            detail = "log in as staff, or present the API key this node issued to your repository"
            return Response({"error": "forbidden", "detail": detail}, status=403)
        params = request.query_params
        try:
            limit = messages.parse_count(params.get("limit") or str(PAGE_LIMIT))
            if limit is None:
                raise ValidationError({"limit": f"expected a whole number, got {params.get('limit', '')[:40]!r}"})
            page = requests_page(
                caller=caller,
                staff=staff,
                direction=params.get("direction") or None,
                status=params.get("status") or None,
                remote=params.get("remote") or None,
                cursor=params.get("cursor") or None,
                limit=limit,
            )
        except ValidationError as exc:
            return _invalid(exc)
        return Response(page)


class ApproveApi(APIView):
    authentication_classes = [SessionAuthentication, BasicAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(
        tags=["requests"],
        summary="Approve a pending request, or accept a delegation (staff)",
        request=inline_serializer(
            "Approval",
            {
                "assignee": serializers.CharField(required=False, help_text="a delegation's assignee"),
                "estimated_completion": serializers.DateTimeField(required=False),
            },
        ),
        responses={200: messages.json_schema_of(messages.MutateResponse)},
    )
    def post(self, request: Request, request_id: str) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        promise = {k: body.get(k) for k in ("assignee", "estimated_completion")}
        try:
            for key, value in promise.items():
                if value is not None and not isinstance(value, str):
                    raise ValidationError({key: "expected a string"})
            found = services.request_approve(request_id=request_id, actor=request.user.get_username(), **promise)
        except CrossRepoRequest.DoesNotExist:
            return _not_found(request_id)
        except ValidationError as exc:
            return _invalid(exc)
        return Response(response_for(found))


class RejectApi(APIView):
    authentication_classes = [SessionAuthentication, BasicAuthentication]
    permission_classes = [IsAdminUser]

    @extend_schema(
        tags=["requests"],
        summary="Reject a pending request, with a reason (staff)",
        request=inline_serializer("Rejection", {"reason": serializers.CharField()}),
        responses={200: messages.json_schema_of(messages.MutateResponse)},
    )
    def post(self, request: Request, request_id: str) -> Response:
        reason = request.data.get("reason") if isinstance(request.data, dict) else None
        try:
            found = services.request_reject(
                request_id=request_id,
                actor=request.user.get_username(),
                reason=reason if isinstance(reason, str) else "",
            )
        except CrossRepoRequest.DoesNotExist:
            return _not_found(request_id)
        except ValidationError as exc:
            return _invalid(exc)
        return Response(response_for(found))


class CallbackApi(APIView):
    authentication_classes = [RemoteKeyAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["requests"],
        summary="The node we asked tells us the outcome of our request",
        request={"application/json": messages.json_schema_of(messages.MutateResponse | messages.DelegateResponse)},
        responses={200: OpenApiResponse(description="accepted"), 400: OpenApiResponse(), 404: OpenApiResponse()},
    )
    def post(self, request: Request) -> Response:
        try:
            response = messages.parse_response(messages.parse_body(request.body))
            if not isinstance(response, messages.MutateResponse | messages.DelegateResponse):
                raise messages.MessageError.at("type", "only mutate_response and delegate_response are accepted here")
            found = services.outcome_receive(caller=request_caller(request), response=response)
        except messages.MessageError as exc:
            return Response(exc.as_json(), status=400)
        except CrossRepoRequest.DoesNotExist as exc:
            return Response({"error": "not_found", "detail": str(exc)}, status=404)
        return Response({"request_id": found.request_id, "status": found.status})
