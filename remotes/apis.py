"""The management API (the seed's API Design → Management): /api/v1/federation/remotes and
/api/v1/federation/remotes/<identity>, for staff only (a logged-in session with the CSRF token, as the dashboard
does, or HTTP Basic with a staff user's name and password, for scripts).

Thin: each view validates the body (400 naming the field, unknown fields included), calls one service of
`remotes.services` (the same ones the CLI and the admin call, so federation.config.json stays the truth), and
answers the remote's `remote_summary`. A duplicate url is a 409, an unknown remote a 404.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from remotes import services
from remotes.models import RemoteRepo, TrustLevel
from remotes.selectors import remote_get, remote_summary

# The wire's names (the seed's remote_repos columns) of the service arguments named otherwise.
_ARGUMENT = {"rest_endpoint": "endpoint"}
_WIRE_NAME = {argument: wire for wire, argument in _ARGUMENT.items()}


def invalid(errors: dict | ValidationError, *, error: str = "invalid", names: dict[str, str] | None = None) -> Response:
    """A 400 `{"error": "invalid", "errors": [{"path": <field>, "message": ...}]}` from a serializer's errors or
    a service's ValidationError; `names` renames fields (a service's argument to its name on the wire)."""
    if isinstance(errors, ValidationError):
        errors = errors.message_dict if hasattr(errors, "error_dict") else {"": errors.messages}
    names = names or {}
    body = [{"path": names.get(field, field), "message": " ".join(_flat(msgs))} for field, msgs in errors.items()]
    return Response({"error": error, "errors": body}, status=400)


def _flat(messages) -> list[str]:
    if isinstance(messages, dict):  # a nested serializer's errors
        return [f"{key}: {' '.join(_flat(value))}" for key, value in messages.items()]
    if isinstance(messages, list | tuple):
        return [part for message in messages for part in _flat(message)]
    return [str(messages)]


class _Strict(serializers.Serializer):
    """Refuses a body that is not an object, and fields it does not know (a typo is not silently ignored)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            known = ", ".join(self.fields)
            raise serializers.ValidationError({key: [f"unknown field (known: {known})"] for key in unknown})
        return super().to_internal_value(data)


class RemoteChange(_Strict):
    display_name = serializers.CharField(max_length=200, required=False)
    trust_level = serializers.ChoiceField(TrustLevel.values, required=False)
    rest_endpoint = serializers.CharField(
        max_length=500, required=False, help_text="its REST base, e.g. https://api-service.dev/api/v1"
    )
    auto_sync = serializers.BooleanField(required=False)
    sync_interval_minutes = serializers.IntegerField(min_value=1, required=False)
    permissions = serializers.DictField(
        required=False, help_text="its `permissions` in federation.config.json (query, mutate, subscribe), whole"
    )


class NewRemote(RemoteChange):
    url = serializers.CharField(max_length=300, help_text="the remote's identity, e.g. github.com/org/api-service")
    trust_level = serializers.ChoiceField(TrustLevel.values, default=TrustLevel.UNTRUSTED)
    transport = serializers.ChoiceField(["rest", "a2a"], default="rest")
    token = serializers.CharField(required=False, help_text="the API key that remote gave us (kept in secrets.env)")
    discover = serializers.BooleanField(default=True, help_text="contact it now when it has an endpoint")


def _arguments(data: dict) -> dict:
    return {_ARGUMENT.get(key, key): value for key, value in data.items()}


_STAFF_ONLY = {403: OpenApiResponse(description="not logged in as staff, or the session's CSRF token is missing")}
_INVALID = OpenApiResponse(description="`{error: invalid, errors: [{path, message}]}`: the field is named")
_NOT_FOUND = OpenApiResponse(description="no such remote: `{error: not_found, detail}`")
_SUMMARY = OpenApiResponse(description="the remote: url, display_name, trust_level, rest_endpoint, ...")


class StaffView(APIView):
    """Staff only: a logged-in session with the CSRF token, or HTTP Basic with a staff user (scripts). Anyone
    else gets DRF's 403 `{"detail": ...}`. The management API's rule; the audit API reuses it."""

    authentication_classes = [SessionAuthentication, BasicAuthentication]
    permission_classes = [IsAdminUser]


class RemotesApi(StaffView):
    @extend_schema(
        tags=["management"],
        summary="The remotes this node knows (staff)",
        responses={200: OpenApiResponse(description="`{count, results: [remote]}`"), **_STAFF_ONLY},
    )
    def get(self, request: Request) -> Response:
        rows = [remote_summary(r) for r in RemoteRepo.objects.all()]
        return Response({"count": len(rows), "results": rows})

    @extend_schema(
        tags=["management"],
        summary="Declare a remote (staff): written to federation.config.json; its API key is answered once",
        request=NewRemote,
        responses={
            201: OpenApiResponse(description="the remote, and `api_key`: the key it must present to this node"),
            400: _INVALID,
            409: OpenApiResponse(description="the url is a remote already: `{error: conflict, detail, errors}`"),
            **_STAFF_ONLY,
        },
        examples=[
            OpenApiExample(
                "a verified remote",
                request_only=True,
                value={
                    "url": "github.com/org/api-service",
                    "trust_level": "verified",
                    "rest_endpoint": "https://api-service.dev/api/v1",
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        given = NewRemote(data=request.data)
        if not given.is_valid():
            return invalid(given.errors)
        try:
            remote, key = services.remote_add(actor=request.user.get_username(), **_arguments(given.validated_data))
        except services.RemoteExists as exc:
            body = invalid(exc, error="conflict").data
            return Response({**body, "detail": " ".join(exc.messages)}, status=409)
        except ValidationError as exc:
            return invalid(exc, names=_WIRE_NAME)
        return Response({**remote_summary(remote), "api_key": key}, status=201)


def _not_found(exc: RemoteRepo.DoesNotExist) -> Response:
    return Response({"error": "not_found", "detail": str(exc)}, status=404)


class RemoteApi(StaffView):
    @extend_schema(
        tags=["management"],
        summary="One remote (staff)",
        responses={200: _SUMMARY, 404: _NOT_FOUND, **_STAFF_ONLY},
    )
    def get(self, request: Request, identity: str) -> Response:
        try:
            return Response(remote_summary(remote_get(url=identity)))
        except RemoteRepo.DoesNotExist as exc:
            return _not_found(exc)

    @extend_schema(
        tags=["management"],
        summary="Change a remote (staff): the fields given, written to federation.config.json",
        request=RemoteChange,
        responses={200: _SUMMARY, 400: _INVALID, 404: _NOT_FOUND, **_STAFF_ONLY},
        examples=[OpenApiExample("trust it", request_only=True, value={"trust_level": "trusted"})],
    )
    def put(self, request: Request, identity: str) -> Response:
        given = RemoteChange(data=request.data)
        if not given.is_valid():
            return invalid(given.errors)
        try:
            remote = services.remote_update(remote=remote_get(url=identity), **_arguments(given.validated_data))
        except RemoteRepo.DoesNotExist as exc:
            return _not_found(exc)
        except ValidationError as exc:
            return invalid(exc, names=_WIRE_NAME)
        return Response(remote_summary(remote))

    @extend_schema(
        tags=["management"],
        summary="Forget a remote (staff): removed from federation.config.json; its API key stops working",
        responses={204: OpenApiResponse(description="removed"), 404: _NOT_FOUND, **_STAFF_ONLY},
    )
    def delete(self, request: Request, identity: str) -> Response:
        try:
            services.remote_remove(remote=remote_get(url=identity))
        except RemoteRepo.DoesNotExist as exc:
            return _not_found(exc)
        return Response(status=204)
