"""An issue created by an approved request links to that request (here, and on the requesting node), for this
node's staff; anonymous readers do not learn about requests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from requests_app.models import CrossRepoRequest
from tests.dashboard.test_markup import node  # noqa: F401 - the fixture: frontend with api-service declared
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_issue_links_the_request_that_created_it(node):  # noqa: F811
    issue = services.issue_create(title="Add user profile endpoint", actor="t")
    now = timezone.now()
    CrossRepoRequest.objects.create(
        request_id="req-abc123",
        direction="incoming",
        from_repo="github.com/org/api-service",
        to_repo="github.com/org/frontend",
        request_type="create_issue",
        payload={"data": {"title": issue.title}},
        status="completed",
        result={"created": {"id": issue.sudocode_id, "uuid": issue.uuid, "canonical_ref": "x", "type": "issue"}},
        created_at=now,
        updated_at=now,
    )
    staff = Client()
    staff.force_login(User.objects.create_user("ops", is_staff=True))

    page = staff.get(f"/issues/{issue.sudocode_id}").content.decode()
    anonymous = Client().get(f"/issues/{issue.sudocode_id}").content.decode()

    assert '<dt>Created by</dt><dd>the request\n    <a href="/approvals/req-abc123">' in page
    assert 'href="http://api.test:8001/approvals/req-abc123">its page there</a>' in page
    assert "req-abc123" not in anonymous and "Add user profile endpoint" in anonymous
    decisions = staff.get("/approvals/").content.decode()
    assert f'created <a href="/issues/{issue.sudocode_id}"><code>x</code></a>' in decisions


def test_the_issue_lists_show_remote_blockers_beside_local_relationships(node):  # noqa: F811
    from remotes import services as remote_services
    from remotes.models import CrossRepoReference

    issue = services.issue_create(
        title="Profile page", actor="t", content="Blocked by [[org/api-service#issue-084]]{ blocked-by }."
    )
    remote_services.references_rebuild()
    CrossRepoReference.objects.filter(remote_id="issue-084").update(
        cached_data={"title": "Profile endpoint", "status": "in_progress"}, last_fetched_at=timezone.now()
    )
    staff = Client()
    staff.force_login(User.objects.create_user("ops", is_staff=True))

    for path in ("/", "/issues/"):
        page = staff.get(path).content.decode()
        row = page.split(f'href="/issues/{issue.sudocode_id}"', 1)[1].split("</tr>", 1)[0]
        assert (
            'blocked-by <a href="http://api.test:8001/issues/issue-084"><code>org/api-service#issue-084</code></a>'
            ' <span class="chip chip-in_progress">in_progress</span>'
        ) in row, row
