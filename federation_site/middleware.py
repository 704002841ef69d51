from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from federation_site import node


def refresh_node_state() -> None:
    """Bring the database in line with the repository's files: JSONL entities changed under us (by a `git
    pull`, the sudocode CLI, an editor) and remotes declared in federation.config.json. Two stat calls per file
    when nothing changed. The CLI calls this before each command, the middleware before each request."""
    from remotes.services import remotes_reconcile
    from tracker.sync import jsonl_sync

    jsonl_sync()
    remotes_reconcile()


class NodeStateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            refresh_node_state()
        except node.RepoNotFound:
            pass
        return self.get_response(request)
