from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from federation_site import node


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
