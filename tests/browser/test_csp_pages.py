"""Issue 17 in a real browser: every page, the login page and the API docs run under the node's
Content-Security-Policy with nothing blocked (a blocked inline script or style is a console error, which fails the
test), and the API docs still draw the API."""

from __future__ import annotations

import pytest

from tests.browser.conftest import login
from tests.nodes import Node

STAFF, PASSWORD = "maintainer", "a-long-enough-password-1"
PAGES = ["/", "/approvals/", "/subscriptions/", "/remotes/", "/graph/", "/audit/"]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("csp"), "api-service", worker=False)
    try:
        node.start()
        node.create_staff(STAFF, PASSWORD)
        assert node.cli("issue", "create", "Seen in a browser").code == 0
        node.issue_id = node.cli_json("issue", "list")[0]["id"]
        yield node
    finally:
        node.stop()


def test_every_page_runs_under_the_policy_with_nothing_blocked(node, page):
    login(page, node.base, STAFF, PASSWORD)
    for path in [*PAGES, f"/issues/{node.issue_id}"]:
        response = page.goto(f"{node.base}{path}")
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
    page.goto(f"{node.base}/graph/")
    page.wait_for_selector("#graph canvas", state="attached")  # cytoscape drew, its stylesheet not inlined
    assert page.console_errors == []


def test_the_api_docs_draw_the_api_under_their_policy(node, page):
    response = page.goto(f"{node.base}/api/docs/")
    assert "img-src 'self' data:" in response.headers["content-security-policy"]
    page.wait_for_selector('[data-path="/api/v1/federation/query"]', timeout=30000)  # Swagger UI drew it
    assert page.console_errors == []


def test_a_blocked_inline_script_would_be_seen(node, page):
    """The check above can fail: an inline script under the node's policy is refused, and the refusal is a
    console error."""
    page.goto(f"{node.base}/remotes/")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.x = 1'; "
        "document.body.appendChild(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.x") is None
    assert any("Content Security Policy" in e for e in page.console_errors), page.console_errors
    page.console_errors.clear()
