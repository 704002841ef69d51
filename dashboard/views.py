"""The dashboard's pages: this repository's issues and specs with their cross-repo state, the approval queue,
subscriptions, remotes, the audit log and the metrics page. Each view reads through a selector or calls one
service, and renders a template of templates/dashboard/. Pages that change live subscribe over the WebSocket
(`dashboard.live`).

Staff only (dashboard.access): the issue and spec pages too, unless federation.config.json says
`web.public_read`.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.selectors import alerts_recent
from audit.models import AuditLog
from audit.selectors import SERIES_WINDOWS, audit_query
from dashboard import live
from dashboard.access import content_readable
from events.selectors import head_seq
from remotes.models import CrossRepoReference, RemoteRepo
from remotes.selectors import entity_page_url, plain_http_remotes, remote_summary, request_page_url, site_url
from remotes.sync import entity_detail_with_cross_repo
from requests_app import delegation
from requests_app import delivery as request_delivery
from requests_app import selectors as request_selectors
from requests_app import services as request_services
from requests_app.models import CrossRepoRequest, Delivery, Direction, RequestStatus
from subscriptions import delivery as subscription_delivery
from subscriptions import outgoing as subscription_outgoing
from subscriptions.models import DeliveryStatus, Subscription
from subscriptions.models import Direction as SubscriptionDirection
from subscriptions.selectors import watch_text
from tracker.models import Entity, EntityKind, IssueStatus
from tracker.selectors import entity_get, entity_list, open_blockers
from tracker.sync import DataDamaged

# --- issues and specs ---------------------------------------------------------------------------------------------


PAGE_SIZE = 50  # rows per page of every list (issues, specs, decisions, requests sent, audit, subscriptions)


def _page(request: HttpRequest, rows, param: str = "page", size: int = PAGE_SIZE):
    """One page of `rows` (a queryset or list) as `?{param}=N` asks (the last page past the end, the first for
    junk); the other query parameters, the filters, stay in the links _pager.html builds with the page_link tag."""
    return Paginator(rows, size).get_page(request.GET.get(param))


def _entity_filters(request: HttpRequest) -> dict:
    status = [s for s in request.GET.getlist("status") if s in IssueStatus.values]
    show_archived = request.GET.get("archived") == "1"
    return {
        "status": status,
        "show_archived": show_archived,
        "archived": None if show_archived else False,
        "q": request.GET.get("q", ""),
        "everywhere": request.GET.get("all") == "1",
    }


def _issues(filters: dict):
    return entity_list(
        kind=EntityKind.ISSUE,
        status=filters["status"] or None,
        archived=filters["archived"],
        search=filters["q"] or None,
    ).prefetch_related("relationships")


def _specs(filters: dict):
    return entity_list(kind=EntityKind.SPEC, archived=filters["archived"], search=filters["q"] or None)


def _lists_context(filters: dict) -> dict:
    return {
        "statuses": IssueStatus.values,
        "selected_status": filters["status"],
        "show_archived": filters["show_archived"],
        "q": filters["q"],
        "everywhere": filters["everywhere"],
        "elsewhere": _search_elsewhere(filters["q"]) if filters["everywhere"] else None,
    }


@content_readable
def home(request: HttpRequest) -> HttpResponse:
    """Issues (paginated, `?page=N`) and the first page of specs (all of them at /specs/), with one filter form."""
    return _lists(request, ("issues", "specs"))


@content_readable
def issue_list(request: HttpRequest) -> HttpResponse:
    return _lists(request, ("issues",))


@content_readable
def spec_list(request: HttpRequest) -> HttpResponse:
    return _lists(request, ("specs",))


def _lists(request: HttpRequest, show: tuple[str, ...]) -> HttpResponse:
    """The home, /issues/ and /specs/ pages: the lists of `show`, one filter form, live for staff (every issue
    and spec event: one created, closed or whose remote blocker moved changes the list). Beside the issues, the
    specs page with `?specs_page=N`."""
    since = head_seq()
    filters = _entity_filters(request)
    context = {
        "show": show,
        **_lists_context(filters),
        "live": live.page_config(entity_type=live.ENTITIES, since=since) if request.user.is_staff else None,
    }
    if "issues" in show:
        context["issues"] = _page(request, _issues(filters))
        _attach_remote_blockers(context["issues"])
    if "specs" in show:
        context["specs"] = _page(request, _specs(filters), param="specs_page" if "issues" in show else "page")
    return render(request, "dashboard/home.html", context)


def _attach_remote_blockers(page) -> None:
    """Each issue of `page` gets `remote_blockers`: its cross-repo blockers (one query for the page), each a
    dict of `type`, `ref` (canonical), `status` (last known, or None) and `href` (its page on its own node)."""
    from remotes.blocking import remote_blockers, remote_status

    found = remote_blockers(local_uuids=[issue.uuid for issue in page])
    for issue in page:
        issue.remote_blockers = [
            {
                "type": ref.relationship_type,
                "ref": ref.canonical_ref,
                "status": remote_status(ref),
                "href": entity_page_url(ref.remote_repo, ref.remote_entity_type or EntityKind.ISSUE, ref.remote_id),
            }
            for ref in found.get(issue.uuid, [])
        ]


def _search_elsewhere(text: str) -> dict | None:
    """The "all repositories" switch: the other repositories' answers to the same search (remotes.search),
    each row with a link to its page on its own node when the remote's address is known."""
    from federation_site import identity
    from remotes.search import search_everywhere

    if not any(ch.isalnum() for ch in text):
        return None
    answer = search_everywhere(text=text, kinds=[EntityKind.ISSUE, EntityKind.SPEC], all_repos=True)
    here = identity.repo_path(identity.local_url()) if identity.local_url() else None
    remotes = {r.url: r for r in RemoteRepo.objects.exclude(rest_endpoint="")}
    rows = [
        {**row, "href": entity_page_url(remotes.get(row["repo"]), row["kind"], row["id"])}
        for row in answer["results"]
        if row["repo"] != here
    ]
    return {"results": rows, "remotes": answer["remotes"]}


@content_readable
def entity_page(request: HttpRequest, kind: str, ref: str) -> HttpResponse:
    since = head_seq()  # before the page's data: a change made while it renders is replayed to the live script
    try:
        entity = entity_get(kind=kind, ref=ref)
    except Entity.DoesNotExist as exc:
        raise Http404(str(exc)) from None
    detail = entity_detail_with_cross_repo(entity=entity)
    # Provenance both ways: the request (from another node) that created this entity, and our requests that
    # created the remote entities this one references.
    created_by = request_selectors.request_that_created(entity_uuid=entity.uuid)
    ours = request_selectors.requests_that_created(canonical_refs=[x["ref"] for x in detail["cross_repo"]])
    for x in detail["cross_repo"]:
        x["request"] = ours.get(x["ref"])
    return render(
        request,
        "dashboard/entity.html",
        {
            "entity": entity,
            "detail": detail,
            # One blocker written twice (blocked-by on the record, depends-on in the content) is one blocker.
            "open_blockers": list({b["id"]: b for b in open_blockers(detail)}.values()),
            "provenance": delegation.provenance(entity),
            "created_by": created_by,
            "created_by_there": request_page_url(
                RemoteRepo.objects.filter(url=created_by.from_repo).first(), created_by.request_id
            )
            if created_by
            else None,
            "local_references": [r for r in detail["references"] if not r["repo"]],
            # Live updates come over the WebSocket, which only this node's staff may open from a page.
            "live": live.page_config(entity_type="*", since=since, ids=live.entity_page_ids(entity.sudocode_id, detail))
            if request.user.is_staff
            else None,
        },
    )


@staff_member_required
def graph_page(request: HttpRequest) -> HttpResponse:
    """The dependency graph, drawn in the browser (static/js/graph.js with the vendored cytoscape.js) from
    /api/v1/graph; `?root=ID&depth=N&cross_repo=1` are handed to it as they are (the API checks them)."""
    params = {k: request.GET[k] for k in ("root", "depth", "cross_repo") if request.GET.get(k)}
    return render(
        request,
        "dashboard/graph.html",
        {
            "root": params.get("root", ""),
            "graph_config": {
                "api": reverse("api-graph"),
                "params": params,
                "pages": {
                    EntityKind.ISSUE: reverse("dashboard:issue", args=["__ID__"]),
                    EntityKind.SPEC: reverse("dashboard:spec", args=["__ID__"]),
                },
            },
        },
    )


# --- the approval queue (incoming requests), and requests sent ----------------------------------------------------


def _request_row(
    request: CrossRepoRequest, trust: dict[str, str], remotes: dict[str, RemoteRepo] | None = None
) -> dict:
    """What the pages show of one request, either side: on the requester's node (outgoing) "sent", the other node
    being `to_repo`; on the receiving node (incoming) "received" from `from_repo`. `links`: the request's page on
    the other node and the created entity's page (here for an incoming request, there for an outgoing one)."""
    data = request.data
    context = data.get("context") or {}
    outgoing = request.direction == Direction.OUTGOING
    other = (remotes or {}).get(request.to_repo if outgoing else request.from_repo)
    created = (request.result or {}).get("created") or None
    return {
        "request": request,
        "outgoing": outgoing,
        "other_repo": request.to_repo if outgoing else request.from_repo,
        "title": data.get("title") or data.get("id"),
        "kind": f"delegation of {'an issue' if data.get('type') == 'issue' else 'a spec'}"
        if request.is_delegation
        else request.request_type,
        "priority": data.get("priority", 2),
        "labels": data.get("labels") or [],
        "decision": request.decision or {},
        "chain": context.get("chain") or [],
        "requirements": _json_or_none(data.get("requirements")),
        "context": _json_or_none({k: v for k, v in context.items() if k not in ("chain", "hop_limit")}),
        "trust_level": trust.get(request.from_repo, "unknown"),
        "age": timezone.now() - request.created_at,
        "message": json.dumps(request.payload, indent=2, ensure_ascii=False),
        "created": created,
        "created_href": _created_href(created, other, outgoing=outgoing),
        "there_href": (request.approval_url or None) if outgoing else request_page_url(other, request.request_id),
    }


def _created_href(created: dict | None, other: RemoteRepo | None, *, outgoing: bool) -> str | None:
    if not created or not created.get("id"):
        return None
    kind = created.get("type") or EntityKind.ISSUE
    if not outgoing:  # created here
        try:
            return reverse("dashboard:spec" if kind == EntityKind.SPEC else "dashboard:issue", args=[created["id"]])
        except NoReverseMatch:
            return None
    return entity_page_url(other, kind, created["id"]) or created.get("url") or None


def _json_or_none(value: dict | None) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value else None


@staff_member_required
def approvals(request: HttpRequest) -> HttpResponse:
    """The queue (every pending incoming request), past decisions (`?page=N`) and our requests to other nodes
    (`?sent_page=N`), newest first."""
    since = head_seq()  # before the page's data: a request arriving while it renders is replayed to the script
    trust = dict(RemoteRepo.objects.values_list("url", "trust_level"))
    remotes = {r.url: r for r in RemoteRepo.objects.all()}
    incoming = CrossRepoRequest.objects.filter(direction=Direction.INCOMING)
    pending = [
        _request_row(r, trust, remotes) for r in incoming.filter(status=RequestStatus.PENDING).order_by("created_at")
    ]
    decided = _page(request, incoming.exclude(status=RequestStatus.PENDING).order_by("-updated_at", "-pk"))
    outgoing = _page(
        request,
        CrossRepoRequest.objects.filter(direction=Direction.OUTGOING).order_by("-created_at", "-pk"),
        param="sent_page",
    )
    dead = Delivery.objects.filter(status=Delivery.Status.DEAD).select_related("request")[:20]
    return render(
        request,
        "dashboard/approvals.html",
        {
            "pending": pending,
            "decided": decided,
            "decided_rows": [_request_row(r, trust, remotes) for r in decided],
            "outgoing": outgoing,
            "outgoing_rows": [_request_row(r, trust, remotes) for r in outgoing],
            "dead": dead,
            "live": live.page_config(entity_type=live.REQUESTS, since=since),
        },
    )


@staff_member_required
def request_page(request: HttpRequest, request_id: str) -> HttpResponse:
    found = CrossRepoRequest.objects.filter(request_id=request_id).order_by("direction").first()
    if found is None:
        raise Http404(f"no request {request_id!r}")
    trust = dict(RemoteRepo.objects.values_list("url", "trust_level"))
    remotes = {r.url: r for r in RemoteRepo.objects.all()}
    return render(
        request,
        "dashboard/request.html",
        {
            "row": _request_row(found, trust, remotes),
            "deliveries": found.deliveries.all(),
        },
    )


@staff_member_required
@require_POST
def request_approve(request: HttpRequest, request_id: str) -> HttpResponse:
    promise = {k: request.POST.get(k, "").strip() or None for k in ("assignee", "estimated_completion")}
    try:
        found = request_services.request_approve(request_id=request_id, actor=request.user.get_username(), **promise)
    except CrossRepoRequest.DoesNotExist:
        raise Http404(f"no request {request_id!r}") from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("dashboard:request", request_id=request_id)
    except DataDamaged as exc:
        messages.error(request, f"Not approved yet: {exc.short}. The request stays pending until the file is fixed.")
        return redirect("dashboard:request", request_id=request_id)
    created = (found.result or {}).get("created")
    if created:
        verb = "Accepted" if found.is_delegation else "Approved"
        messages.success(request, f"{verb} {request_id}: created {created['id']}.")
    else:
        messages.warning(request, f"{request_id} is {found.status}: {found.last_error}")
    return redirect("dashboard:approvals")


@staff_member_required
@require_POST
def request_reject(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        request_services.request_reject(
            request_id=request_id, actor=request.user.get_username(), reason=request.POST.get("reason", "")
        )
    except CrossRepoRequest.DoesNotExist:
        raise Http404(f"no request {request_id!r}") from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("dashboard:request", request_id=request_id)
    messages.success(request, f"Rejected {request_id}.")
    return redirect("dashboard:approvals")


@staff_member_required
@require_POST
def delivery_redeliver(request: HttpRequest, delivery_id: int) -> HttpResponse:
    request_delivery.redeliver(delivery_id)
    messages.success(request, "Queued again.")
    return redirect("dashboard:approvals")


# --- subscriptions ------------------------------------------------------------------------------------------------


@staff_member_required
def subscription_list(request: HttpRequest) -> HttpResponse:
    """Both sides' subscriptions, each paginated (`?page=N` watching us, `?out_page=N` we watch), filtered by
    `?remote=` (part of the other repository's identity) and `?delivery=` (a delivery status)."""
    chosen = {"remote": request.GET.get("remote", "").strip(), "delivery": request.GET.get("delivery", "").strip()}
    since = head_seq()
    rows = Subscription.objects.defer("secret")
    if chosen["delivery"] in DeliveryStatus.values:
        rows = rows.filter(delivery_status=chosen["delivery"])
    incoming = rows.filter(direction=SubscriptionDirection.INCOMING).order_by("from_repo", "-created_at")
    outgoing = rows.filter(direction=SubscriptionDirection.OUTGOING).order_by("to_repo", "-created_at")
    if chosen["remote"]:
        incoming = incoming.filter(from_repo__icontains=chosen["remote"])
        outgoing = outgoing.filter(to_repo__icontains=chosen["remote"])
    incoming_page, outgoing_page = _page(request, incoming), _page(request, outgoing, param="out_page")
    head = since  # read once, before the rows: the live script replays from it, and "behind" counts from it
    for row in [*incoming_page, *outgoing_page]:
        row.watch_text = watch_text(row.watch_config or {})
        row.behind = max(head - row.cursor_seq, 0) if row.direction == SubscriptionDirection.INCOMING else 0
    return render(
        request,
        "dashboard/subscriptions.html",
        {
            "incoming": incoming_page,
            "outgoing": outgoing_page,
            "chosen": chosen,
            "delivery_statuses": DeliveryStatus.values,
            "dead": Subscription.objects.filter(
                direction=SubscriptionDirection.INCOMING, delivery_status=DeliveryStatus.DEAD
            ).count(),
            "head_seq": head,
            "retryable": subscription_outgoing.RETRYABLE,
            "live": live.page_config(entity_type=live.SUBSCRIPTIONS, since=since, also=(live.REMOTES,)),
        },
    )


@staff_member_required
@require_POST
def subscription_redeliver(request: HttpRequest, subscription_id: str) -> HttpResponse:
    if not Subscription.objects.filter(pk=subscription_id, direction=SubscriptionDirection.INCOMING).exists():
        raise Http404(f"no incoming subscription {subscription_id!r}")
    if subscription_delivery.redeliver(subscription_id):
        messages.success(request, f"{subscription_id}: delivering again from event #{_cursor(subscription_id)}.")
    else:
        messages.warning(request, f"{subscription_id} is not dead; nothing to redeliver.")
    return redirect("dashboard:subscriptions")


@staff_member_required
@require_POST
def subscription_retry(request: HttpRequest, subscription_id: str) -> HttpResponse:
    try:
        row = subscription_outgoing.subscription_retry(subscription_id=subscription_id)
    except Subscription.DoesNotExist:
        raise Http404(f"no outgoing subscription {subscription_id!r}") from None
    if row.delivery_status in subscription_outgoing.RETRYABLE:
        messages.success(request, f"{subscription_id}: subscribing again to {row.to_repo} now.")
    else:
        messages.warning(request, f"{subscription_id} is {row.delivery_status}; nothing to retry.")
    return redirect("dashboard:subscriptions")


def _cursor(subscription_id: str) -> int:
    return Subscription.objects.filter(pk=subscription_id).values_list("cursor_seq", flat=True).first() or 0


# --- remotes ------------------------------------------------------------------------------------------------------


@staff_member_required
def remote_list(request: HttpRequest) -> HttpResponse:
    since = head_seq()
    remotes = [{**remote_summary(r), "site": site_url(r)} for r in RemoteRepo.objects.all()]
    unknown = CrossRepoReference.objects.filter(remote_repo__isnull=True).values_list("repo", flat=True).distinct()
    return render(
        request,
        "dashboard/remotes.html",
        {
            "remotes": remotes,
            "unknown_repos": sorted(set(unknown)),
            "plain_http": plain_http_remotes(),
            "live": live.page_config(entity_type=live.REMOTES, since=since),
        },
    )


# --- audit --------------------------------------------------------------------------------------------------------


AUDIT_FILTERS = ("direction", "operation", "status", "remote", "request_id")


@staff_member_required
def audit_page(request: HttpRequest) -> HttpResponse:
    chosen = {name: request.GET.get(name, "").strip() for name in AUDIT_FILTERS}
    page = Paginator(audit_query(**{k: v or None for k, v in chosen.items()}), 100).get_page(request.GET.get("page"))
    operations = AuditLog.objects.values_list("operation_type", flat=True).distinct().order_by("operation_type")
    return render(request, "dashboard/audit.html", {"page": page, "chosen": chosen, "operations": operations})


# --- metrics ------------------------------------------------------------------------------------------------------


@staff_member_required
def metrics_page(request: HttpRequest) -> HttpResponse:
    """Charts of the cross-repo calls, their errors and latency, and the approval queue over the last hour, day
    or week (`?window=`), drawn in the browser (static/js/metrics.js with the vendored uPlot) from
    /api/v1/federation/metrics/series; the alerts firing on top. A window it does not know is a 400."""
    window = request.GET.get("window") or "hour"
    if window not in SERIES_WINDOWS:
        return render(
            request, "dashboard/metrics.html", {"bad_window": window[:40], "windows": list(SERIES_WINDOWS)}, status=400
        )
    return render(
        request,
        "dashboard/metrics.html",
        {
            "window": window,
            "windows": list(SERIES_WINDOWS),
            "recent_alerts": alerts_recent(days=1),
            "metrics_config": {"api": reverse("federation-metrics-series"), "window": window, "refresh_seconds": 30},
        },
    )
