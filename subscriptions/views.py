"""The subscriptions dashboard: who watches this node (incoming, with the state of each webhook stream) and
what this node watches (outgoing); a dead stream has a Redeliver button (POST, CSRF-protected)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from events.selectors import head_seq
from subscriptions import delivery
from subscriptions.models import DeliveryStatus, Direction, Subscription
from subscriptions.selectors import watch_text


@staff_member_required
def subscription_list(request: HttpRequest) -> HttpResponse:
    rows = Subscription.objects.defer("secret")
    incoming = list(rows.filter(direction=Direction.INCOMING).order_by("from_repo", "-created_at"))
    outgoing = list(rows.filter(direction=Direction.OUTGOING).order_by("to_repo", "-created_at"))
    head = head_seq()
    for row in incoming + outgoing:
        row.watch_text = watch_text(row.watch_config or {})
        row.behind = max(head - row.cursor_seq, 0) if row.direction == Direction.INCOMING else 0
    return render(
        request,
        "subscriptions/list.html",
        {
            "incoming": incoming,
            "outgoing": outgoing,
            "dead": sum(row.delivery_status == DeliveryStatus.DEAD for row in incoming),
            "head_seq": head,
        },
    )


@staff_member_required
@require_POST
def redeliver(request: HttpRequest, subscription_id: str) -> HttpResponse:
    if not Subscription.objects.filter(pk=subscription_id, direction=Direction.INCOMING).exists():
        raise Http404(f"no incoming subscription {subscription_id!r}")
    if delivery.redeliver(subscription_id):
        messages.success(request, f"{subscription_id}: delivering again from event #{_cursor(subscription_id)}.")
    else:
        messages.warning(request, f"{subscription_id} is not dead; nothing to redeliver.")
    return redirect("subscriptions:list")


def _cursor(subscription_id: str) -> int:
    return Subscription.objects.filter(pk=subscription_id).values_list("cursor_seq", flat=True).first() or 0
