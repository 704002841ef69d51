"""A node whose data is damaged stays up and says so (tracker.sync: a JSONL file that cannot be imported).

Reads are served from the last good import; every response then carries `X-Sudocode-Data-Problem`, and every
page a banner (`dashboard.context_processors`). A write that must wait for the file to be fixed answers 503
with Retry-After: JSON under /api/, a page elsewhere. Comes after NodeStateMiddleware, which looks at the files.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from tracker.jsonl import JsonlFormatError
from tracker.sync import DataDamaged, data_problems

PROBLEM_HEADER = "X-Sudocode-Data-Problem"


class DataProblemsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        problems = data_problems()
        if problems:
            # A header is Latin-1: the problem in ASCII, the rest of the text escaped.
            response[PROBLEM_HEADER] = problems[0].short.encode("ascii", "backslashreplace").decode()[:500]
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, JsonlFormatError):
            return None
        damaged = DataDamaged.of(exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(damaged.as_json(), status=503)
        else:
            response = render(request, "dashboard/data_damaged.html", {"problem": damaged.short}, status=503)
        response["Retry-After"] = str(damaged.retry_after)
        return response
