"""The approval dashboard: staff see pending requests with everything needed to decide, approve or reject
them (POST, CSRF-protected), and see recent decisions and deliveries that died."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from events.selectors import head_seq
from remotes.models import RemoteRepo
from requests_app import delivery, services
from requests_app.models import CrossRepoRequest, Delivery, Direction, RequestStatus
from subscriptions import live


def _row(request: CrossRepoRequest, trust: dict[str, str]) -> dict:
    data = request.data
    return {
        "request": request,
        "title": data.get("title") or data.get("id"),
        "priority": data.get("priority", 2),
        "labels": data.get("labels") or [],
        "trust_level": trust.get(request.from_repo, "unknown"),
        "age": timezone.now() - request.created_at,
        "message": json.dumps(request.payload, indent=2, ensure_ascii=False),
    }


@staff_member_required
def queue(request: HttpRequest) -> HttpResponse:
    since = head_seq()  # before the page's data: a request arriving while it renders is replayed to the script
    trust = dict(RemoteRepo.objects.values_list("url", "trust_level"))
    incoming = CrossRepoRequest.objects.filter(direction=Direction.INCOMING)
    pending = [_row(r, trust) for r in incoming.filter(status=RequestStatus.PENDING).order_by("created_at")]
    decided = [_row(r, trust) for r in incoming.exclude(status=RequestStatus.PENDING).order_by("-updated_at")[:20]]
    outgoing = CrossRepoRequest.objects.filter(direction=Direction.OUTGOING).order_by("-updated_at")[:20]
    dead = Delivery.objects.filter(status=Delivery.Status.DEAD).select_related("request")[:20]
    return render(
        request,
        "requests_app/queue.html",
        {
            "pending": pending,
            "decided": decided,
            "outgoing": outgoing,
            "dead": dead,
            "live": live.page_config(entity_type="request", since=since),
        },
    )


@staff_member_required
def detail(request: HttpRequest, request_id: str) -> HttpResponse:
    found = CrossRepoRequest.objects.filter(request_id=request_id).order_by("direction").first()
    if found is None:
        raise Http404(f"no request {request_id!r}")
    trust = dict(RemoteRepo.objects.values_list("url", "trust_level"))
    return render(
        request,
        "requests_app/detail.html",
        {
            "row": _row(found, trust),
            "deliveries": found.deliveries.all(),
        },
    )


@staff_member_required
@require_POST
def approve(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        found = services.request_approve(request_id=request_id, actor=request.user.get_username())
    except CrossRepoRequest.DoesNotExist:
        raise Http404(f"no request {request_id!r}") from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("requests_app:detail", request_id=request_id)
    created = (found.result or {}).get("created")
    if created:
        messages.success(request, f"Approved {request_id}: created {created['id']}.")
    else:
        messages.warning(request, f"{request_id} is {found.status}: {found.last_error}")
    return redirect("requests_app:queue")


@staff_member_required
@require_POST
def reject(request: HttpRequest, request_id: str) -> HttpResponse:
    try:
        services.request_reject(
            request_id=request_id, actor=request.user.get_username(), reason=request.POST.get("reason", "")
        )
    except CrossRepoRequest.DoesNotExist:
        raise Http404(f"no request {request_id!r}") from None
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("requests_app:detail", request_id=request_id)
    messages.success(request, f"Rejected {request_id}.")
    return redirect("requests_app:queue")


@staff_member_required
@require_POST
def redeliver(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery.redeliver(delivery_id)
    messages.success(request, "Queued again.")
    return redirect("requests_app:queue")
