"""The dashboard's pages: this repository's issues and specs with their cross-repo state, the approval queue,
subscriptions, remotes and the audit log. Each view reads through a selector or calls one service, and renders a
template of templates/dashboard/. Pages that change live subscribe over the WebSocket (`dashboard.live`).

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
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.models import AuditLog
from audit.selectors import audit_query
from dashboard import live
from dashboard.access import content_readable
from events.selectors import head_seq
from remotes.models import CrossRepoReference, RemoteRepo
from remotes.selectors import remote_summary
from remotes.sync import entity_detail_with_cross_repo
from requests_app import delegation
from requests_app import delivery as request_delivery
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


@content_readable
def home(request: HttpRequest) -> HttpResponse:
    since = head_seq()
    status = [s for s in request.GET.getlist("status") if s in IssueStatus.values]
    show_archived = request.GET.get("archived") == "1"
    archived = None if show_archived else False
    issues = entity_list(
        kind=EntityKind.ISSUE, status=status or None, archived=archived, search=request.GET.get("q") or None
    ).prefetch_related("relationships")
    specs = entity_list(kind=EntityKind.SPEC, archived=archived, search=request.GET.get("q") or None)
    everywhere = request.GET.get("all") == "1"
    elsewhere = _search_elsewhere(request.GET.get("q", "")) if everywhere else None
    return render(
        request,
        "dashboard/home.html",
        {
            "issues": issues,
            "specs": specs,
            "statuses": IssueStatus.values,
            "selected_status": status,
            "show_archived": show_archived,
            "q": request.GET.get("q", ""),
            "everywhere": everywhere,
            "elsewhere": elsewhere,
            # Every issue and spec event: one created, closed or whose remote blocker moved changes the list.
            "live": live.page_config(entity_type=live.ENTITIES, since=since) if request.user.is_staff else None,
        },
    )


def _search_elsewhere(text: str) -> dict | None:
    """The "all repositories" switch: the other repositories' answers to the same search (remotes.search),
    each row with a link to its page on its own node when the remote's address is known."""
    from federation_site import identity
    from remotes.models import RemoteRepo
    from remotes.search import search_everywhere

    if not any(ch.isalnum() for ch in text):
        return None
    answer = search_everywhere(text=text, kinds=[EntityKind.ISSUE, EntityKind.SPEC], all_repos=True)
    here = identity.repo_path(identity.local_url()) if identity.local_url() else None
    sites = {r.url: r.rest_endpoint.removesuffix("/api/v1") for r in RemoteRepo.objects.exclude(rest_endpoint="")}
    rows = [
        {**row, "href": f"{sites[row['repo']]}/{row['kind']}s/{row['id']}" if row["repo"] in sites else None}
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
    return render(
        request,
        "dashboard/entity.html",
        {
            "entity": entity,
            "detail": detail,
            "open_blockers": open_blockers(detail),
            "provenance": delegation.provenance(entity),
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


def _request_row(request: CrossRepoRequest, trust: dict[str, str]) -> dict:
    data = request.data
    context = data.get("context") or {}
    return {
        "request": request,
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
    }


def _json_or_none(value: dict | None) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value else None


@staff_member_required
def approvals(request: HttpRequest) -> HttpResponse:
    since = head_seq()  # before the page's data: a request arriving while it renders is replayed to the script
    trust = dict(RemoteRepo.objects.values_list("url", "trust_level"))
    incoming = CrossRepoRequest.objects.filter(direction=Direction.INCOMING)
    pending = [_request_row(r, trust) for r in incoming.filter(status=RequestStatus.PENDING).order_by("created_at")]
    decided_rows = incoming.exclude(status=RequestStatus.PENDING).order_by("-updated_at")[:20]
    decided = [_request_row(r, trust) for r in decided_rows]
    outgoing = CrossRepoRequest.objects.filter(direction=Direction.OUTGOING).order_by("-updated_at")[:20]
    dead = Delivery.objects.filter(status=Delivery.Status.DEAD).select_related("request")[:20]
    return render(
        request,
        "dashboard/approvals.html",
        {
            "pending": pending,
            "decided": decided,
            "outgoing": outgoing,
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
    return render(
        request,
        "dashboard/request.html",
        {
            "row": _request_row(found, trust),
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
    since = head_seq()
    rows = Subscription.objects.defer("secret")
    incoming = list(rows.filter(direction=SubscriptionDirection.INCOMING).order_by("from_repo", "-created_at"))
    outgoing = list(rows.filter(direction=SubscriptionDirection.OUTGOING).order_by("to_repo", "-created_at"))
    head = head_seq()
    for row in incoming + outgoing:
        row.watch_text = watch_text(row.watch_config or {})
        row.behind = max(head - row.cursor_seq, 0) if row.direction == SubscriptionDirection.INCOMING else 0
    return render(
        request,
        "dashboard/subscriptions.html",
        {
            "incoming": incoming,
            "outgoing": outgoing,
            "dead": sum(row.delivery_status == DeliveryStatus.DEAD for row in incoming),
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
    remotes = [remote_summary(r) for r in RemoteRepo.objects.all()]
    unknown = CrossRepoReference.objects.filter(remote_repo__isnull=True).values_list("repo", flat=True).distinct()
    return render(
        request,
        "dashboard/remotes.html",
        {
            "remotes": remotes,
            "unknown_repos": sorted(set(unknown)),
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
