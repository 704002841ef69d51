"""The browser harness itself can fail: axe finds a real violation (even under a strict Content-Security-Policy),
the overflow check finds a page that scrolls sideways, console errors are caught, and a maintainer logs in to a
real node through its form."""

from __future__ import annotations

import pytest

from tests.browser.conftest import assert_accessible, assert_no_horizontal_scroll, login
from tests.nodes import Node

STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'"


def serve(page, html: str, *, csp: str | None = None) -> None:
    """Answer http://page.test/ with `html` inside the browser (no network), optionally under a CSP header."""
    headers = {"content-type": "text/html; charset=utf-8"}
    if csp:
        headers["content-security-policy"] = csp
    page.route("http://page.test/", lambda route: route.fulfill(status=200, headers=headers, body=html))
    page.route("http://page.test/logo.png", lambda route: route.fulfill(status=200, content_type="image/png", body=b""))
    page.goto("http://page.test/")


GOOD = """<!doctype html><html lang="en"><head><title>ok</title></head><body><main><h1>Fine</h1>
<label for="q">Search</label><input id="q"></main></body></html>"""
BAD = """<!doctype html><html lang="en"><head><title>bad</title></head><body><main><h1>Bad</h1>
<input id="q"><img src="/logo.png"></main></body></html>"""


def test_axe_passes_a_clean_page_and_fails_an_unlabelled_input_under_a_strict_csp(page):
    serve(page, GOOD, csp=STRICT_CSP)
    assert_accessible(page)
    serve(page, BAD, csp=STRICT_CSP)
    with pytest.raises(pytest.fail.Exception) as failed:
        assert_accessible(page)
    assert "label" in str(failed.value) and "image-alt" in str(failed.value)


def test_sideways_scrolling_is_found_and_named(phone_page):
    serve(phone_page, GOOD)
    assert_no_horizontal_scroll(phone_page)
    serve(phone_page, GOOD.replace("<h1>Fine</h1>", '<h1>Fine</h1><pre id="wide">' + "x" * 200 + "</pre>"))
    with pytest.raises(AssertionError, match="scrolls sideways at 390 px.*'id': 'wide'"):
        assert_no_horizontal_scroll(phone_page)


def test_console_errors_are_collected(page):
    serve(page, GOOD)
    page.evaluate("() => console.error('boom')")
    page.evaluate("() => setTimeout(() => { throw new Error('uncaught'); }, 0)")
    page.wait_for_timeout(100)
    assert any("boom" in e for e in page.console_errors)
    assert any("uncaught" in e for e in page.console_errors)
    page.console_errors.clear()  # expected here; any other test fails on them at teardown


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("browser-harness"), "frontend")
    node.start()
    try:
        node.create_staff("maintainer", "correct horse battery staple")
        yield node
    finally:
        node.stop()


def test_a_maintainer_logs_in_through_the_form(page, node):
    login(page, node.base, "maintainer", "correct horse battery staple")
    assert page.get_by_role("button", name="Log out maintainer").is_visible()
    with pytest.raises(AssertionError, match="login .* failed"):
        other = page.context.browser.new_context()
        try:
            stranger = other.new_page()
            stranger.console_errors = []
            login(stranger, node.base, "maintainer", "wrong password")
        finally:
            other.close()
