"""The audit API (/api/v1/federation/audit and /audit/stats): staff only, filters, cursor paging, a 400 naming
the parameter, and stats whose numbers are exact on a known set of rows."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

from audit.models import AuditLog
from audit.selectors import audit_stats

pytestmark = pytest.mark.django_db

AUDIT = "/api/v1/federation/audit"
STATS = "/api/v1/federation/audit/stats"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
API, WEB = "github.com/org/api-service", "github.com/org/web"


def row(n: int, **fields) -> AuditLog:
    defaults = {
        "log_id": f"log-{n:04d}",
        "operation_type": "query",
        "direction": "incoming",
        "local_repo": "github.com/org/frontend",
        "remote_repo": API,
        "status": "success",
        "timestamp": T0 + timedelta(minutes=n),
        "duration_ms": n,
    }
    return AuditLog.objects.create(**{**defaults, **fields})


@pytest.fixture
def rows(node_repo):
    """Ten rows a minute apart (durations 1..10 ms): 1-6 queries from api-service (5 and 6 failed), 7-8
    mutates from web going out, 9 a discover from web with correlation id c-9, 10 a pending query (no duration)."""
    for n in range(1, 7):
        row(n, status="failed" if n in (5, 6) else "success")
    row(7, operation_type="mutate", remote_repo=WEB, direction="outgoing")
    row(8, operation_type="mutate", remote_repo=WEB, direction="outgoing")
    row(9, operation_type="discover", remote_repo=WEB, correlation_id="c-9")
    row(10, status="pending", duration_ms=None)


@pytest.fixture
def staff(node_repo) -> Client:
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True)
    client = Client()
    client.login(username="maintainer", password="pw")
    return client


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [e["log_id"] for e in response.json()["results"]]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_log_is_newest_first_and_each_filter_narrows_it(staff, rows):
    assert ids(staff.get(AUDIT)) == [f"log-{n:04d}" for n in range(10, 0, -1)]
    assert ids(staff.get(AUDIT, {"remote": "WEB"})) == ["log-0009", "log-0008", "log-0007"]
    assert ids(staff.get(AUDIT, {"operation": "mutate"})) == ["log-0008", "log-0007"]
    assert ids(staff.get(AUDIT, {"direction": "outgoing"})) == ["log-0008", "log-0007"]
    assert ids(staff.get(AUDIT, {"status": "failed"})) == ["log-0006", "log-0005"]
    assert ids(staff.get(AUDIT, {"correlation_id": "c-9"})) == ["log-0009"]
    window = {"since": (T0 + timedelta(minutes=3)).isoformat(), "until": "2026-11-29T12:05:00Z"}
    assert ids(staff.get(AUDIT, window)) == ["log-0004", "log-0003"]  # since inclusive, until exclusive
    assert ids(staff.get(AUDIT, {"remote": "api", "status": "success", "until": "2026-11-29T12:03:00"})) == [
        "log-0002",
        "log-0001",
    ]


def test_cursor_paging_walks_every_row_once_even_when_rows_arrive_meanwhile(staff, rows):
    row(11, timestamp=T0 + timedelta(minutes=4), log_id="log-0004b")  # same time as log-0004: the id breaks the tie
    seen, cursor, pages = [], None, 0
    while True:
        body = staff.get(AUDIT, {"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [e["log_id"] for e in body["results"]]
        pages += 1
        if pages == 1:
            row(99, timestamp=T0 + timedelta(hours=1))  # newer than everything: not on a later page
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert seen == [f"log-{n:04d}" for n in range(10, 4, -1)] + ["log-0004b"] + [
        f"log-{n:04d}" for n in range(4, 0, -1)
    ]
    first = staff.get(AUDIT, {"limit": 1}).json()["results"][0]
    assert first["log_id"] == "log-0099" and set(first) >= {"timestamp", "operation", "remote_repo", "duration_ms"}


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        (AUDIT, {"direction": "sideways"}, "direction"),
        (AUDIT, {"status": "ok"}, "status"),
        (AUDIT, {"since": "yesterday"}, "since"),
        (AUDIT, {"until": "2026-13-01"}, "until"),
        (AUDIT, {"since": "2026-11-30", "until": "2026-11-29"}, "since"),
        (AUDIT, {"limit": "0"}, "limit"),
        (AUDIT, {"limit": "ten"}, "limit"),
        (AUDIT, {"limit": "501"}, "limit"),
        (AUDIT, {"cursor": "not-a-cursor"}, "cursor"),
        (AUDIT, {"remtoe": "web"}, "remtoe"),
        (STATS, {"status": "ok"}, "status"),
        (STATS, {"since": "soon"}, "since"),
        (STATS, {"cursor": "x"}, "cursor"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(staff, rows, path, params, named):
    response = staff.get(path, params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and [e["path"] for e in body["errors"]] == [named]


@pytest.mark.parametrize("path", [AUDIT, STATS])
def test_only_staff_may_read_it(node_repo, path):
    User.objects.create_user("someone", "s@example.com", "pw")
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True)
    anonymous = Client().get(path)
    assert anonymous.status_code == 403 and "detail" in anonymous.json()
    not_staff = Client().get(path, HTTP_AUTHORIZATION=basic("someone", "pw"))
    assert not_staff.status_code == 403 and "detail" in not_staff.json()
    wrong_password = Client().get(path, HTTP_AUTHORIZATION=basic("maintainer", "nope"))
    assert wrong_password.status_code == 403
    assert Client().get(path, HTTP_AUTHORIZATION=basic("maintainer", "pw")).status_code == 200


def test_stats_are_exact_on_a_known_set_of_rows(staff, rows):
    response = staff.get(STATS, {"since": "2026-11-29", "until": "2026-11-30"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert list(body["by_operation"]) == ["query", "mutate", "discover"]  # most first
    assert body == {
        "window": {"since": "2026-11-29T00:00:00+00:00", "until": "2026-11-30T00:00:00+00:00"},
        "total": 10,
        "by_operation": {"query": 7, "mutate": 2, "discover": 1},
        "by_status": {"success": 7, "failed": 2, "pending": 1},
        "by_remote": {API: 7, WEB: 3},
        # nearest rank over durations 1..9 (row 10 has none): p50 = 5th, p95 = p99 = 9th
        "duration_ms": {"count": 9, "p50": 5, "p95": 9, "p99": 9},
    }
    failed = staff.get(STATS, {"since": "2026-11-29", "status": "failed"}).json()
    assert (failed["total"], failed["by_operation"], failed["duration_ms"]) == (
        2,
        {"query": 2},
        {"count": 2, "p50": 5, "p95": 6, "p99": 6},
    )


def test_stats_read_the_last_24_hours_unless_told_otherwise(rows):
    row(50, timestamp=T0 - timedelta(days=2), duration_ms=1000)
    now = T0 + timedelta(hours=1)
    stats = audit_stats(now=now)
    assert stats["window"] == {"since": (now - timedelta(hours=24)).isoformat(), "until": None}
    assert stats["total"] == 10 and stats["duration_ms"]["p99"] == 9
    assert audit_stats(since=T0 - timedelta(days=3), now=now)["duration_ms"]["p99"] == 1000
    before = audit_stats(until=T0 + timedelta(minutes=5), now=now)  # the 24 hours before `until`
    assert before["window"]["since"] == (T0 + timedelta(minutes=5) - timedelta(hours=24)).isoformat()
    assert before["total"] == 4 and before["duration_ms"] == {"count": 4, "p50": 2, "p95": 4, "p99": 4}
    empty = audit_stats(now=now + timedelta(days=30))
    assert empty["total"] == 0 and empty["duration_ms"] == {"count": 0, "p50": None, "p95": None, "p99": None}
