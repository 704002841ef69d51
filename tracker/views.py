"""HTML pages over the repository's issues and specs."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from tracker.models import Entity, EntityKind, IssueStatus
from tracker.selectors import entity_get, entity_list, open_blockers


def home(request: HttpRequest) -> HttpResponse:
    status = [s for s in request.GET.getlist("status") if s in IssueStatus.values]
    show_archived = request.GET.get("archived") == "1"
    archived = None if show_archived else False
    issues = entity_list(
        kind=EntityKind.ISSUE, status=status or None, archived=archived, search=request.GET.get("q") or None
    ).prefetch_related("relationships")
    specs = entity_list(kind=EntityKind.SPEC, archived=archived, search=request.GET.get("q") or None)
    return render(
        request,
        "tracker/home.html",
        {
            "issues": issues,
            "specs": specs,
            "statuses": IssueStatus.values,
            "selected_status": status,
            "show_archived": show_archived,
            "q": request.GET.get("q", ""),
        },
    )


def entity_page(request: HttpRequest, kind: str, ref: str) -> HttpResponse:
    try:
        entity = entity_get(kind=kind, ref=ref)
    except Entity.DoesNotExist as exc:
        raise Http404(str(exc)) from None
    from remotes.sync import entity_detail_with_cross_repo

    detail = entity_detail_with_cross_repo(entity=entity)
    return render(
        request,
        "tracker/entity.html",
        {
            "entity": entity,
            "detail": detail,
            "open_blockers": open_blockers(detail),
        },
    )
