import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from federation_site import logs, node


class LogContextMiddleware:
    """Every line logged while answering a request carries its correlation id (federation_site/logs.py), and
    what the request binds (the caller, the request id) ends with it. Under daphne federation_site.asgi has bound
    the id already (the caller's X-Correlation-ID or a new one); this keeps it, and does the same under WSGI."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = (request.META.get("HTTP_X_CORRELATION_ID") or "").strip()
        correlation_id = given[:128] if given and given.isprintable() else logs.current("correlation_id")
        with logs.bound(correlation_id=correlation_id or uuid.uuid4().hex):
            return self.get_response(request)


class NodeStateMiddleware:
    """Each request sees the repository's files as they are now (`node.refresh_state`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            node.refresh_state()
        except node.RepoNotFound:
            pass
        return self.get_response(request)


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class RefuseNulMiddleware:
    """A NUL character in the path, a query parameter or a form field is a 400 before any view runs: no real
    input has one, and PostgreSQL refuses to store or even compare text holding one (a 500 otherwise)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = self._nul_in(request)
        if where is None:
            return self.get_response(request)
        detail = f"{where} contains a NUL character"
        if request.path.startswith("/api/"):
            errors = [{"path": where, "message": "contains a NUL character"}]
            return JsonResponse({"error": "invalid", "detail": detail, "errors": errors}, status=400)
        return HttpResponseBadRequest(f"Bad request: {detail}.", content_type="text/plain; charset=utf-8")

    @staticmethod
    def _nul_in(request: HttpRequest) -> str | None:
        if "\x00" in request.path:
            return "the path"
        forms = [request.GET]
        if request.method == "POST" and request.content_type in _FORMS:
            forms.append(request.POST)
        for form in forms:
            for name, values in form.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    return name.replace("\x00", "\\0")
        return None
