"""Request endpoints under /api/v1/federation/requests/ and the callback a requester receives.

Status: the requesting remote (by its key) or staff. Approve and reject: staff only (a logged-in session with
the CSRF token, as the dashboard does). Callback: the remote the request was sent to.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from protocol import messages
from remotes.auth import RemoteKeyAuthentication, request_caller
from requests_app import services
from requests_app.models import CrossRepoRequest
from requests_app.selectors import response_for


def _not_found(request_id: str) -> Response:
    return Response({"error": "not_found", "detail": f"no request {request_id!r}"}, status=404)


def _invalid(exc: ValidationError) -> Response:
    errors = [{"path": field, "message": " ".join(msgs)} for field, msgs in exc.message_dict.items()]
    return Response({"error": "invalid", "errors": errors}, status=400)


class RequestStatusApi(APIView):
    authentication_classes = [SessionAuthentication, RemoteKeyAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["requests"],
        summary="A request's status (its mutate_response)",
        responses={200: messages.json_schema_of(messages.MutateResponse), 404: OpenApiResponse()},
    )
    def get(self, request: Request, request_id: str) -> Response:
        caller = request_caller(request)
        found = CrossRepoRequest.objects.filter(request_id=request_id, direction="incoming").first()
        # Only the requester (or staff) learns that a request exists.
        if found is None or not (request.user.is_staff or (caller.remote and caller.identity == found.from_repo)):
            return _not_found(request_id)
        return Response(response_for(found))


class ApproveApi(APIView):
    authentication_classes = [SessionAuthentication]
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
    authentication_classes = [SessionAuthentication]
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
