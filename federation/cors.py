"""Which browser origins may call this node's API: `cors.allowed_origins` in federation.config.json (issue 17;
none by default). django-cors-headers asks `check_request_enabled` receivers on each request; the config is read
then, so an edit applies without a restart."""

from __future__ import annotations

from django.http import HttpRequest

from federation_site import node


def origin_allowed(sender: object, request: HttpRequest, **kwargs: object) -> bool:
    """Whether the request's Origin is listed in `cors.allowed_origins` (and the path is the API's)."""
    origin = request.headers.get("Origin")
    if not origin or not request.path_info.startswith("/api/"):
        return False
    cfg = node.config()
    return cfg is not None and origin.rstrip("/").lower() in {o.lower() for o in cfg.cors.allowed_origins}
