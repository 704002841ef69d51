"""The metrics page (/metrics/, staff) renders with data, and its JSON endpoint
(/api/v1/federation/metrics/series) answers the window's series; /metrics without the slash stays the
Prometheus scrape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from alerts.models import Alert
from audit.services import audit_record
from requests_app.models import CrossRepoRequest

pytestmark = pytest.mark.django_db

SERIES = "/api/v1/federation/metrics/series"
API = "github.com/org/api-service"


@pytest.fixture
def data(node_repo):
    for n in range(12):
        audit_record(
            operation="query" if n % 3 else "mutate",
            direction="incoming",
            local_repo="github.com/org/frontend",
            remote_repo=API if n % 2 else "github.com/org/web",
            status="failed" if n == 5 else "success",
            duration_ms=3 * n,
        )
    now = timezone.now()
    CrossRepoRequest.objects.create(
        request_id="req-1",
        direction="incoming",
        from_repo=API,
        to_repo="github.com/org/frontend",
        request_type="create_issue",
        payload={},
        requires_approval=True,
        created_at=now - timedelta(minutes=3),
        updated_at=now,
    )
    Alert.objects.create(kind="approval_backlog", value=21, threshold=20, summary="21 requests wait", fired_at=now)


@pytest.fixture
def staff(node_repo) -> Client:
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True)
    client = Client()
    client.login(username="maintainer", password="pw")
    return client


def test_the_page_renders_its_charts_config_and_alerts(data, staff):
    response = staff.get("/metrics/?window=day")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<script id="metrics-config" type="application/json">' in page
    assert '"api": "/api/v1/federation/metrics/series", "window": "day"' in page
    assert "vendor/uplot/uPlot.iife.min.js" in page and "js/metrics.js" in page
    assert 'href="?window=day" aria-current="page"' in page
    assert "21 requests wait" in page  # in the banner and in the page's list
    assert 'id="chart-traffic"' in page and 'id="chart-latency"' in page
    assert " style=" not in page.split("<main")[1] and "onclick" not in page  # the CSP allows neither
    assert '<a href="/metrics/">Metrics</a>' in page  # the nav


def test_the_page_is_for_staff_and_refuses_an_unknown_window(data, staff):
    assert Client().get("/metrics/").status_code == 302  # to the login page
    response = staff.get("/metrics/?window=month")
    assert response.status_code == 400 and "month" in response.content.decode()


def test_the_series_endpoint_answers_the_window(data, staff):
    doc = staff.get(SERIES, {"window": "hour"}).json()
    assert doc["window"] == "hour" and doc["period_seconds"] == 60 and len(doc["times"]) == 60
    assert sum(doc["calls"]) == 12 and sum(doc["failed"]) == 1
    assert sum(doc["by_remote"][API]["calls"]) == 6
    assert set(doc["latency_ms"]) == {"query", "mutate"}
    assert sum(doc["requests"]["arrived"]) == 1 and doc["requests"]["queue_depth"][-1] == 1
    assert [a["summary"] for a in doc["alerts"]] == ["21 requests wait"]
    assert len(staff.get(SERIES, {"window": "week"}).json()["times"]) == 168


def test_the_series_endpoint_names_a_bad_parameter_and_is_staff_only(data, staff):
    bad = staff.get(SERIES, {"window": "year"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "window"
    unknown = staff.get(SERIES, {"windw": "day"})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["path"] == "windw"
    assert Client().get(SERIES).status_code == 403


def test_metrics_without_the_slash_is_still_the_prometheus_scrape(data, staff):
    response = staff.get("/metrics")
    assert response.status_code == 200 and b"sudocode_" in response.content
