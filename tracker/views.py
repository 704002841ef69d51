"""HTML pages over the repository's issues and specs."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from events.selectors import head_seq
from subscriptions import live
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
    since = head_seq()  # before the page's data: a change made while it renders is replayed to the live script
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
            # Live updates come over the WebSocket, which only this node's staff may open from a page.
            "live": live.page_config(entity_type="*", since=since, ids=live.entity_page_ids(entity.sudocode_id, detail))
            if request.user.is_staff
            else None,
        },
    )
