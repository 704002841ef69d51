"""The metrics page (/metrics/) in a real browser against a real node: the charts are drawn (a canvas each) from
the series API, the alerts are on top, no console error, accessible (axe), and nothing scrolls sideways on a
phone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.browser.conftest import assert_accessible, assert_no_horizontal_scroll, login
from tests.conftest import REPO_ROOT, cli_env
from tests.nodes import Node

PASSWORD = "correct horse battery staple"
CHARTS = ("traffic", "errors", "latency", "queue", "approval", "decision")

# Written in the node's database the way services write: audit rows (with their rollups) for three remotes
# and two operations, one failure in eight, and an alert firing.
SEED = """
from datetime import timedelta
from django.utils import timezone
from alerts.models import Alert
from audit.services import audit_record
from requests_app.models import CrossRepoRequest
for n in range(40):
    audit_record(operation="query" if n % 4 else "mutate", direction="incoming" if n % 3 else "outgoing",
                 local_repo="github.com/org/frontend", remote_repo=f"github.com/org/service-{n % 3}",
                 status="failed" if n % 8 == 0 else "success", duration_ms=2 + n * 7)
now = timezone.now()
CrossRepoRequest.objects.create(request_id="req-1", direction="incoming", from_repo="github.com/org/service-1",
    to_repo="github.com/org/frontend", request_type="create_issue", payload={}, requires_approval=True,
    created_at=now - timedelta(minutes=5), updated_at=now)
Alert.objects.create(kind="remote_repo_unreachable", subject="github.com/org/service-2", value=12, threshold=10,
    summary="github.com/org/service-2 unreachable for 12 min (circuit breaker open)", fired_at=now)
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("metrics-page"), "frontend", worker=False)
    node.start()
    try:
        node.create_staff("maintainer", PASSWORD)
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SEED],
            cwd=REPO_ROOT,
            env=cli_env(SUDOCODE_REPO=str(node.repo)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        yield node
    finally:
        node.stop()


def open_metrics(page, node: Node, window: str = "hour") -> None:
    login(page, node.base, "maintainer", PASSWORD, next_path=f"/metrics/?window={window}")
    for chart in CHARTS:
        page.wait_for_selector(f"#chart-{chart} canvas")
    page.wait_for_function("() => document.getElementById('metrics-status').textContent.includes('calls in the last')")


def test_the_charts_are_drawn_with_the_alerts_on_top(page, node):
    open_metrics(page, node)
    assert "40 calls in the last hour" in page.text_content("#metrics-status")
    assert "service-2 unreachable for 12 min" in page.text_content("#metrics-alerts")
    assert page.get_by_role("alert").first.is_visible()  # the banner of every page
    options = page.eval_on_selector_all("#latency-operation option", "els => els.map(e => e.value)")
    assert options == ["mutate", "query"]
    # It starts on the busiest operation with timed calls (30 queries, 10 mutates), not the first name.
    assert page.eval_on_selector("#latency-operation", "el => el.value") == "query"
    page.select_option("#latency-operation", "mutate")
    page.wait_for_selector("#chart-latency canvas")
    assert page.eval_on_selector("#latency-operation", "el => el.value") == "mutate"
    page.wait_for_selector("#chart-latency canvas")
    legend = page.text_content("#chart-traffic .u-legend")
    assert "org/service-0" in legend and "org/service-2" in legend
    assert_accessible(page)


def test_the_window_selector_changes_the_window(page, node):
    open_metrics(page, node)
    page.click("text=Last day")
    page.wait_for_url("**/metrics/?window=day")
    page.wait_for_function("() => document.getElementById('metrics-status').textContent.includes('last day')")
    assert page.locator("#chart-traffic canvas").count() == 1


def test_it_fits_a_phone(phone_page, node):
    open_metrics(phone_page, node, "week")
    assert_no_horizontal_scroll(phone_page)
    assert_accessible(phone_page)
