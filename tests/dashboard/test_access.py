"""Who may read which page (issue 14, item 11; dashboard.access): what shows the federation's configuration is
for staff; issues and specs are for staff too unless federation.config.json says `web.public_read`."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from federation_site.config import default_config, write_config
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

FEDERATION_PAGES = ["/remotes/", "/subscriptions/", "/approvals/", "/audit/", "/graph/"]
CONTENT_PAGES = ["/", "/issues/ISSUE-001", "/specs/SPEC-001"]
CONTENT_API = ["/api/v1/issues", "/api/v1/issues/ISSUE-001", "/api/v1/specs", "/api/v1/specs/SPEC-001"]


@pytest.fixture
def node(node_repo):
    services.issue_create(title="Login form", actor="t", sudocode_id="ISSUE-001")
    services.spec_create(title="Auth design", actor="t", sudocode_id="SPEC-001")
    return node_repo


def public(node_repo, value: bool) -> None:
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    config["web"] = {"public_read": value}
    write_config(node_repo / ".sudocode" / "federation.config.json", config)


def test_anonymous_readers_are_sent_to_the_login_and_the_api_refuses_them(node):
    public(node, False)
    anonymous = Client()
    for path in FEDERATION_PAGES + CONTENT_PAGES:
        answer = anonymous.get(path)
        assert answer.status_code == 302 and "/login/" in answer["Location"], path
    for path in CONTENT_API + ["/api/v1/graph"]:
        answer = anonymous.get(path)
        assert answer.status_code == 403 and answer.json()["detail"], path


def test_public_read_opens_issues_and_specs_and_nothing_else(node):
    public(node, True)
    anonymous = Client()
    for path in CONTENT_PAGES + CONTENT_API:
        assert anonymous.get(path).status_code == 200, path
    for path in FEDERATION_PAGES:
        assert anonymous.get(path).status_code == 302, path
    assert anonymous.get("/api/v1/graph").status_code == 403


def test_staff_read_everything(node):
    public(node, False)
    staff = Client()
    staff.force_login(User.objects.create_user("ops", password="pw", is_staff=True))
    for path in FEDERATION_PAGES + CONTENT_PAGES + CONTENT_API + ["/api/v1/graph"]:
        assert staff.get(path).status_code == 200, path
    not_staff = Client()
    not_staff.force_login(User.objects.create_user("someone", password="pw"))
    assert not_staff.get("/remotes/").status_code == 302
    refused = not_staff.get("/api/v1/issues")
    assert refused.status_code == 403 and "web.public_read" in refused.json()["detail"]
