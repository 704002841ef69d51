"""The HTML side of a node: the issue and spec pages, static files, the admin, and picking up JSONL edits."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from tests.conftest import copy_corpus
from tracker import jsonl, services
from tracker.selectors import entity_get
from tracker.sync import jsonl_sync

pytestmark = pytest.mark.django_db(transaction=True)

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def client() -> Client:
    """A maintainer's browser: the pages are staff only unless web.public_read (tests/dashboard/test_access.py)."""
    browser = Client(raise_request_exception=False)
    browser.force_login(User.objects.create_user("reader", password="pw", is_staff=True))
    return browser


@pytest.fixture
def tracker(node_repo):
    services.spec_create(title="Auth design", actor="t", sudocode_id="SPEC-001", tags=["auth"])
    services.issue_create(title="Login form", actor="t", sudocode_id="ISSUE-001", priority=0, tags=["ui"])
    services.issue_create(
        title="Token refresh",
        actor="t",
        sudocode_id="ISSUE-002",
        status="blocked",
        content="Waits for [[ISSUE-001]] and [[acme/backend#i-ab12]].\n\nThen rotate keys.",
        relationships=[("depends-on", "ISSUE-001"), ("implements", "SPEC-001")],
    )
    services.issue_create(title="Write docs", actor="t", sudocode_id="ISSUE-003", status="closed")
    services.issue_create(title="Old idea", actor="t", sudocode_id="ISSUE-004")
    services.issue_update(issue="ISSUE-004", actor="t", archived=True)
    return node_repo


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def listed(page: str, kind: str = "issues") -> list[str]:
    return re.findall(rf'href="/{kind}/([^"]+)"', page)


# --- the home page ----------------------------------------------------------------------------------------


def test_home_lists_issues_and_specs_with_their_relationships(client, tracker):
    page = html(client.get("/"))

    assert listed(page) == ["ISSUE-001", "ISSUE-002", "ISSUE-003"]  # archived ones are hidden by default
    assert listed(page, "specs") == ["SPEC-001"]
    row = page[page.index('href="/issues/ISSUE-002"') :].split("</tr>")[0]
    assert "Token refresh" in row and "status-blocked" in row
    assert "depends-on <code>ISSUE-001</code>" in row and "implements <code>SPEC-001</code>" in row
    assert "Auth design" in page


@pytest.mark.parametrize(
    ("query", "issues", "specs"),
    [
        ("status=blocked", ["ISSUE-002"], ["SPEC-001"]),
        ("status=open&status=closed", ["ISSUE-001", "ISSUE-003"], ["SPEC-001"]),
        ("status=bogus", ["ISSUE-001", "ISSUE-002", "ISSUE-003"], ["SPEC-001"]),
        ("q=rotate", ["ISSUE-002"], []),
        ("q=AUTH", [], ["SPEC-001"]),
        ("q=idea", [], []),
        ("q=idea&archived=1", ["ISSUE-004"], []),
        ("archived=1", ["ISSUE-001", "ISSUE-002", "ISSUE-003", "ISSUE-004"], ["SPEC-001"]),
    ],
)
def test_home_filters_by_status_and_search(client, tracker, query, issues, specs):
    page = html(client.get(f"/?{query}"))

    assert listed(page) == issues
    assert listed(page, "specs") == specs


def test_home_keeps_the_chosen_filters_in_the_form(client, tracker):
    page = html(client.get("/?status=blocked&q=tok"))

    assert 'value="blocked" checked' in page and 'value="open" checked' not in page
    assert 'name="q" value="tok"' in page


@pytest.mark.corpus
def test_home_renders_the_real_sudocode_repository(client, node_repo):
    copy_corpus("sudocode-ai__sudocode", node_repo)
    jsonl_sync()

    page = html(client.get("/?archived=1"))
    assert 'Issues <span class="muted">(676)</span>' in page and len(listed(page)) == 50  # one page of 50
    assert 'Specs <span class="muted">(75)</span>' in page and 'href="/specs/?archived=1">All 75 specs' in page
    last = html(client.get("/issues/?archived=1&page=14"))
    assert len(listed(last)) == 676 - 13 * 50 and "page 14 of 14" in last
    assert len(listed(html(client.get("/specs/?archived=1&page=2")), "specs")) == 25
    assert len(listed(html(client.get("/?status=blocked&archived=1")))) == 16


def test_lists_are_paginated_with_the_filters_kept_in_the_links(client, node_repo, settings):
    for n in range(1, 56):
        services.issue_create(title=f"Task {n}", actor="t", sudocode_id=f"ISSUE-{n:03}", tags=["bulk"])
    services.spec_create(title="Only spec", actor="t", sudocode_id="SPEC-001")

    first = html(client.get("/issues/?q=Task"))
    assert len(listed(first)) == 50 and "page 1 of 2" in first and "<h2>Specs" not in first
    assert 'href="?q=Task&amp;page=2" rel="next"' in first
    second = html(client.get("/issues/?q=Task&page=2"))
    assert listed(second) == [f"ISSUE-{n:03}" for n in range(51, 56)] and 'rel="prev"' in second
    assert listed(html(client.get("/issues/?q=Task&page=99"))) == listed(second)  # past the end: the last page
    specs = html(client.get("/specs/"))
    assert listed(specs, "specs") == ["SPEC-001"] and "<h1>Specs" in specs and "Task 1" not in specs


# --- an entity's page -------------------------------------------------------------------------------------


def test_an_issue_page_shows_status_blockers_relationships_references_and_content(client, tracker):
    page = html(client.get("/issues/ISSUE-002"))

    assert "<code>ISSUE-002</code> Token refresh" in page
    assert "status-blocked" in page and "blocked by 1 open" in page
    blocked_by, relationships, referenced_by = (
        page[page.index(f'<h2 class="h3">{h}</h2>') :].split("</ul>")[0]
        for h in ("Blocked by", "Relationships", "Referenced by")
    )
    assert 'href="/issues/ISSUE-001"' in blocked_by and "Login form" in blocked_by
    assert 'href="/issues/ISSUE-001"' in relationships and 'href="/specs/SPEC-001"' in relationships
    assert "none" in referenced_by
    references = page[page.index('<h2 class="h3">Local references in the content</h2>') :].split("</ul>")[0]
    assert 'href="/issues/ISSUE-001"><code>ISSUE-001</code></a>' in references and "Login form" in references
    cross_repo = page[page.index('<h2 class="h3">Cross-repo</h2>') :].split("</table>")[0]
    assert "<code>acme/backend#i-ab12</code>" in cross_repo and "acme/backend is not a known remote" in cross_repo
    content = page[page.index('<div class="content markdown">') :]
    assert "<p>Then rotate keys.</p>" in content
    # Each ref of the content is a link (when its page is known) with its status chip.
    assert (
        'href="/issues/ISSUE-001" title="Login form"><code>ISSUE-001</code></a> <span class="chip chip-open">'
        in content
    )
    assert '<code>acme/backend#i-ab12</code> <span class="chip chip-unknown">unknown</span>' in content
    assert entity_get(kind="issue", ref="ISSUE-002").uuid not in page  # no uuid line on top


def test_a_blocker_that_is_closed_does_not_count_as_open(client, tracker):
    services.issue_close(issue="ISSUE-001", actor="t")

    page = html(client.get("/issues/ISSUE-002"))

    assert "blocked by" not in page and "status-closed" in page


def test_a_spec_page_shows_who_implements_it(client, tracker):
    page = html(client.get("/specs/SPEC-001"))

    referenced_by = page[page.index('<h2 class="h3">Referenced by</h2>') :].split("</ul>")[0]
    assert "implements" in referenced_by and 'href="/issues/ISSUE-002"' in referenced_by
    assert "specs/SPEC-001" in page  # its file


@pytest.mark.parametrize("url", ["/issues/ISSUE-999", "/specs/ISSUE-001", "/issues/SPEC-001"])
def test_an_unknown_id_is_a_404(client, tracker, url):
    assert client.get(url).status_code == 404


def test_remote_content_is_escaped_on_every_page(client, node_repo):
    services.issue_create(title=EVIL, actor="t", sudocode_id="ISSUE-001", content=EVIL, tags=[EVIL])
    services.spec_create(title=EVIL, actor="t", sudocode_id="SPEC-001", content=EVIL)
    services.issue_create(
        title="Points at it",
        actor="t",
        sudocode_id="ISSUE-002",
        content=f"See [[ISSUE-001|{EVIL}]] and [[ISSUE-001]].",
        relationships=[("blocks", "ISSUE-001")],
    )

    for url in ("/", "/issues/ISSUE-001", "/issues/ISSUE-002", "/specs/SPEC-001", "/?q=%3Cscript%3E"):
        page = html(client.get(url))
        assert "<script>alert(1)" not in page, url
        assert "&lt;script&gt;alert(1)" in page, url


def test_an_id_no_url_can_carry_does_not_break_the_pages(client, node_repo):
    # Ids come from files other tools write; one with a "/" cannot be reversed into /issues/<id>.
    now = jsonl.sqlite_timestamp()
    records = [
        jsonl.new_issue_record(id="team/42", uuid="u-42", title="Odd id", created_at=now, updated_at=now),
        jsonl.new_issue_record(
            id="ISSUE-001",
            uuid="u-1",
            title="Waits on it",
            created_at=now,
            updated_at=now,
            relationships=[
                {"from": "ISSUE-001", "from_type": "issue", "to": "team/42", "to_type": "issue", "type": "depends-on"}
            ],
        ),
    ]
    (node_repo / ".sudocode" / "issues.jsonl").write_text("".join(jsonl.dump_record(r) + "\n" for r in records))

    home = html(client.get("/"))
    assert listed(home) == ["ISSUE-001", "u-42"]  # the odd one is linked by its uuid
    assert "<code>team/42</code>" in html(client.get("/issues/ISSUE-001"))
    assert "Odd id" in html(client.get("/issues/u-42"))


# --- static files -----------------------------------------------------------------------------------------


@override_settings(DEBUG=False)
@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("/static/css/site.css", b".status-blocked"),
        ("/static/admin/css/base.css", b"body"),
    ],
)
def test_static_files_are_served_without_collectstatic(node_repo, url, needle):
    response = Client().get(url)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert needle in b"".join(response.streaming_content)


def test_pages_link_the_stylesheet(client, tracker):
    assert 'href="/static/css/site.css"' in html(client.get("/"))


# --- the admin --------------------------------------------------------------------------------------------


@pytest.fixture
def staff(db) -> User:
    user = User.objects.create_user("ops", password="a long enough password", is_staff=True)
    # Every permission on entities: the admin must still refuse writes, because the files are the truth.
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="tracker", codename__endswith="entity"))
    return user


def admin_login(user: User) -> Client:
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    assert browser.get("/admin/login/").status_code == 200
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    response = browser.post(
        "/admin/login/?next=/admin/tracker/entity/",
        {
            "username": user.username,
            "password": "a long enough password",
            "next": "/admin/tracker/entity/",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302 and response["Location"] == "/admin/tracker/entity/"
    return browser


def test_a_login_without_the_csrf_token_is_refused(staff, node_repo):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/admin/login/")

    response = browser.post("/admin/login/", {"username": "ops", "password": "a long enough password"})

    assert response.status_code == 403


def test_staff_log_in_and_see_entities_read_only(staff, tracker):
    browser = admin_login(staff)

    changelist = html(browser.get("/admin/tracker/entity/"))
    for sudocode_id in ("ISSUE-001", "ISSUE-004", "SPEC-001"):
        assert sudocode_id in changelist
    assert "/admin/tracker/entity/add/" not in changelist
    assert browser.get("/admin/tracker/entity/add/").status_code == 403

    uuid = entity_get(kind="issue", ref="ISSUE-002").uuid
    change_url = f"/admin/tracker/entity/{uuid}/change/"
    detail = html(browser.get(change_url))
    assert "Token refresh" in detail and 'name="_save"' not in detail
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    assert browser.post(change_url, {"title": "Hacked", "csrfmiddlewaretoken": token}).status_code == 403
    assert browser.post(f"/admin/tracker/entity/{uuid}/delete/", {"csrfmiddlewaretoken": token}).status_code == 403
    assert "Hacked" not in (tracker / ".sudocode" / "issues.jsonl").read_text()


# --- files changed under the node -------------------------------------------------------------------------


def test_a_jsonl_file_edited_on_disk_shows_in_the_next_response(client, tracker):
    path = tracker / ".sudocode" / "issues.jsonl"
    assert "Login form" in html(client.get("/issues/ISSUE-001"))

    # Another tool (an editor, `git pull`, the sudocode CLI) rewrites the file between two requests.
    path.write_text(path.read_text().replace('"title":"Login form"', '"title":"Sign-in form, edited by hand"'))

    assert "Sign-in form, edited by hand" in html(client.get("/issues/ISSUE-001"))
    assert client.get("/api/v1/issues/ISSUE-001").json()["title"] == "Sign-in form, edited by hand"

    kept = [line for line in path.read_text().splitlines() if '"id":"ISSUE-003"' not in line]
    path.write_text("\n".join(kept) + "\n")

    assert client.get("/issues/ISSUE-003").status_code == 404
    assert "ISSUE-003" not in listed(html(client.get("/")))


@pytest.mark.parametrize("url", ["/?q=a%00b", "/issues/ISSUE%00001"])
def test_a_null_character_in_the_input_is_a_400_saying_so(client, tracker, url):
    # PostgreSQL refuses NUL in a query: no view ever sees one (federation_site.middleware.RefuseNulMiddleware).
    response = client.get(url)
    assert response.status_code == 400
    assert "NUL character" in response.content.decode()


# --- the site's frame: errors, login, favicon ----------------------------------------------------------------


def test_a_missing_page_is_a_styled_404_with_the_navigation(client, tracker):
    response = client.get("/issues/ISSUE-999")

    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Not found</h1>" in page and '<nav aria-label="Main">' in page and 'href="/issues/"' in page
    assert '<a class="skip" href="#main">' in page and 'rel="icon"' in page


@override_settings(DEBUG=False)
def test_the_favicon_is_served_and_linked(client, tracker):
    assert 'href="/static/favicon.svg"' in html(client.get("/"))
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"
    assert Client().get("/static/favicon.svg").status_code == 200


def test_login_and_logout_are_in_the_sites_style(staff, tracker):
    login = html(Client().get("/admin/login/?next=/approvals/"))
    assert "<h1>Log in to" in login and '<nav aria-label="Main">' in login
    assert 'for="id_username"' in login and 'name="next" value="/approvals/"' in login

    browser = admin_login(staff)
    out = browser.post("/admin/logout/", {"csrfmiddlewaretoken": browser.cookies[settings.CSRF_COOKIE_NAME].value})
    assert out.status_code == 200 and "<h1>Logged out</h1>" in out.content.decode()
