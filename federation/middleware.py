"""Bandwidth accounting for the federation endpoints (rate_limits.global.cross_repo_bandwidth_mb_per_day):
every request under /api/v1/federation/ counts its body and its response; once today's bytes reach the limit,
such requests get 429 with Retry-After (the start of the next UTC day) until then. Bytes in: what other nodes
send us; bytes out: what we answer. Calls this node makes are not counted (they are limited by what we do).
The fast door's endpoints (federation/fastdoor.py: info, query) check and count in `fastdoor.answer`, whichever
door they came through.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from federation import fastdoor
from federation_site import node
from federation_site.config import ConfigError
from protocol import messages
from remotes import quotas
from remotes.policy import RateLimited

PREFIX = "/api/v1/federation/"


class BandwidthMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(PREFIX) or fastdoor.handles(request.method, request.path):
            return self.get_response(request)  # fastdoor.answer checks and counts its own
        try:
            config = node.config()
            quotas.check_bandwidth(config)
        except RateLimited as exc:
            body = {"error": "rate_limited", "detail": str(exc), "retry_after": exc.retry_after}
            return JsonResponse(body, status=429, headers={"Retry-After": str(exc.retry_after)})
        except (node.RepoNotFound, ConfigError):  # the view says what is wrong
            return self.get_response(request)
        response = self.get_response(request)
        if quotas.bandwidth_limit(config) is not None:
            size = messages.parse_count(request.META.get("CONTENT_LENGTH")) or 0
            content = 0 if getattr(response, "streaming", False) else len(response.content)
            quotas.count_bandwidth(size + content)
        return response
