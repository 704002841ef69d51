"""Pages and the read API answer odd query parameters (NUL, invalid UTF-8, huge numbers, unknown values) with a
page or a 4xx, never a 500, on SQLite and PostgreSQL alike (issue 10)."""

from __future__ import annotations

import pytest
from django.test import Client

from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

ODD = ["%00", "%FF%FE", "9" * 400, "-1", "\u2603", "a%00b", "' OR 1=1 --", "%F0%9F%98%80"]
PAGES = [
    "/?q={v}",
    "/?status={v}",
    "/?archived={v}",
    "/issues/{v}",
    "/specs/{v}",
    "/remotes/",
    "/api/v1/issues?status={v}",
    "/api/v1/issues?priority={v}",
    "/api/v1/issues?search={v}",
    "/api/v1/issues?page={v}",
    "/api/v1/issues/{v}",
    "/api/v1/specs?tags={v}",
    "/api/v1/federation/events?subscription={v}&after={v}",
    "/approvals/{v}",
    "/audit/?page={v}&remote={v}&status={v}",
    "/subscriptions/?x={v}",
]


@pytest.fixture
def staff(node_repo, admin_client):
    services.issue_create(title="Something to list", actor="t")
    return admin_client


@pytest.mark.parametrize("template", PAGES)
def test_odd_query_values_never_make_a_500(staff, template):
    for value in ODD:
        for client in (staff, Client()):
            response = client.get(template.format(v=value))
            assert response.status_code < 500, (template, value, response.status_code)
