"""Browser tests: Playwright driving the system Chromium (Debian's `chromium`; the browser download of
`playwright install` is not available here), against real nodes.

Fixtures:
- `browser`: one Chromium per test module. Skipped when Chromium or Playwright is missing, a failure under
  FEDERATION_REQUIRE_SERVICES=1 (CI), so a green CI always ran them.
- `page`: a fresh browser context (its own cookies) at 1280x900. Console errors and uncaught page errors are
  collected in `page.console_errors` and fail the test at teardown; a test that expects one clears the list.
- `phone_page`: the same at 390x844, a phone.
- `new_page(width=..., height=...)`: more pages, each its own context unless `context=` is given.

Helpers: `login`, `assert_accessible` (axe-core, shipped here in `vendor/`, never in the pages) and
`assert_no_horizontal_scroll`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

AXE_SOURCE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# axe impacts that fail a page (issue 14: "no serious violations"); minor and moderate ones are reported, not fatal.
FAILING_IMPACTS = ("serious", "critical")


def chromium_path() -> str | None:
    """FEDERATION_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    return os.environ.get("FEDERATION_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


def _unavailable(reason: str) -> None:
    if os.environ.get("FEDERATION_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser tests cannot run and FEDERATION_REQUIRE_SERVICES=1: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if not executable:
        _unavailable("no Chromium (install it with `apt-get install -y chromium`, or set FEDERATION_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (`make install` installs it)")
    # Playwright's sync API runs an event loop in this thread; the tests talk to nodes over HTTP, and Django's
    # async-safety check would otherwise refuse the test database helpers some tests use alongside.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _watch_console(page: Any) -> None:
    page.console_errors = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            page.console_errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(f"page error: {error}"))


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """`new_page(width=1280, height=900, context=None)`: a page watching its console, in a fresh context unless
    one is given (pass `page.context` for a second tab sharing cookies)."""
    contexts: list[Any] = []
    pages: list[Any] = []

    def make(*, width: int = DESKTOP["width"], height: int = DESKTOP["height"], context: Any = None) -> Any:
        if context is None:
            context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
            contexts.append(context)
        made = context.new_page()
        made.set_viewport_size({"width": width, "height": height})
        _watch_console(made)
        pages.append(made)
        return made

    yield make
    errors = [error for made in pages for error in made.console_errors]
    for context in contexts:
        context.close()
    assert not errors, "the browser reported errors:\n" + "\n".join(errors)


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page(**DESKTOP)


@pytest.fixture
def phone_page(new_page: Callable[..., Any]) -> Any:
    return new_page(**PHONE)


def login(page: Any, base_url: str, username: str, password: str, *, next_path: str = "/") -> None:
    """Log in through the node's login form, as a maintainer would; fails when the form does not accept it."""
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("[type=submit]")
    assert "/login/" not in page.url, f"login to {base_url} as {username} failed: still on {page.url}"


def assert_accessible(page: Any, *, disable_rules: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; fail on serious or critical violations (WCAG A/AA and best
    practice rules). Returns the minor and moderate ones for the caller to look at.

    axe is evaluated through the DevTools protocol, which a Content-Security-Policy does not apply to, so the
    pages never ship it."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE.read_text(encoding="utf-8") + "\n;undefined")
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if disable_rules:
        options["rules"] = {rule: {"enabled": False} for rule in disable_rules}
    violations = page.evaluate("async (options) => (await axe.run(document, options)).violations", options)
    failing = [v for v in violations if v.get("impact") in FAILING_IMPACTS]
    if failing:
        lines = []
        for v in failing:
            targets = ", ".join(" ".join(node["target"]) for node in v["nodes"][:5])
            lines.append(f"- {v['id']} ({v['impact']}): {v['help']} -> {targets}")
        pytest.fail(f"accessibility violations on {page.url}:\n" + "\n".join(lines), pytrace=False)
    return [v for v in violations if v.get("impact") not in FAILING_IMPACTS]


def assert_no_horizontal_scroll(page: Any) -> None:
    """The page fits its viewport's width: nothing scrolls sideways (a wide table may scroll inside its own box).
    On failure names the widest elements that stick out."""
    overflow = page.evaluate(
        """() => {
            const root = document.documentElement;
            const width = root.clientWidth;
            if (root.scrollWidth <= width + 1) return null;
            const wide = [];
            for (const el of document.body.querySelectorAll('*')) {
                const box = el.getBoundingClientRect();
                const right = box.left + Math.max(box.width, el.scrollWidth);
                if (right > width + 1 && box.width > 0) {
                    wide.push({tag: el.tagName.toLowerCase(), cls: el.className && String(el.className),
                               id: el.id, right: Math.round(right)});
                }
            }
            wide.sort((a, b) => b.right - a.right);
            return {scrollWidth: root.scrollWidth, width, wide: wide.slice(0, 5)};
        }"""
    )
    assert overflow is None, f"{page.url} scrolls sideways at {overflow['width']} px: {overflow}"
