from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tracker.sync import jsonl_sync


class JsonlSyncMiddleware:
    """Before each request, pick up JSONL files changed under us (costs two stat calls when nothing did)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from federation_site.node import RepoNotFound

        try:
            jsonl_sync()
        except RepoNotFound:
            pass
        return self.get_response(request)
