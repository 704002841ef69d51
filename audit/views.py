from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit.models import AuditLog
from audit.selectors import audit_query

FILTERS = ("direction", "operation", "status", "remote", "request_id")


@staff_member_required
def audit_page(request: HttpRequest) -> HttpResponse:
    chosen = {name: request.GET.get(name, "").strip() for name in FILTERS}
    page = Paginator(audit_query(**{k: v or None for k, v in chosen.items()}), 100).get_page(request.GET.get("page"))
    operations = AuditLog.objects.values_list("operation_type", flat=True).distinct().order_by("operation_type")
    return render(request, "audit/list.html", {"page": page, "chosen": chosen, "operations": operations})
