"""Who may read which page (issue 14, item 11). The rule, once, for the pages (views.py) and the read API
(apis.py): what reveals the federation's configuration (remotes, subscriptions, approvals, audit, the graph
with its remote nodes) is for this node's staff; the issues and specs are for staff too, unless
federation.config.json says `web.public_read: true`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission

from federation_site import node

__all__ = ["PublicReadOrStaff", "StaffOnly", "content_readable", "public_read", "staff_member_required"]


def public_read() -> bool:
    """`web.public_read` of the node's config; False without a (valid) config."""
    try:
        cfg = node.config()
    except node.RepoNotFound:
        return False
    return bool(cfg and cfg.web.public_read)


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff)


def content_readable(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page of issues and specs: staff, or anyone when `web.public_read`; else the login page."""
    guarded = staff_member_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if public_read():
            return view(request, *args, **kwargs)
        return guarded(request, *args, **kwargs)

    return wrapper


class PublicReadOrStaff(BasePermission):
    """The read API over issues and specs: as content_readable (403 instead of the login page)."""

    message = "log in as this node's staff: its issues and specs are not public (web.public_read is false)"

    def has_permission(self, request, view) -> bool:
        return _is_staff(request) or public_read()


class StaffOnly(BasePermission):
    message = "log in as this node's staff: this shows the federation's configuration"

    def has_permission(self, request, view) -> bool:
        return _is_staff(request)
