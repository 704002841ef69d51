"""The metrics page's numbers (audit.selectors.audit_series, requests_app.selectors.request_series) against a
scripted set of rows, and the rollups that audit_record keeps agreeing with a rebuild from the audit rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditLog, AuditRollup
from audit.selectors import audit_series, bucket_quantile, series_window
from audit.services import audit_record, rollups_prune, rollups_rebuild
from requests_app.models import CrossRepoRequest
from requests_app.selectors import request_series

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 30, 30, tzinfo=UTC)  # half a minute into the 12:30 minute
API, WEB = "github.com/org/api-service", "github.com/org/web"


def audit_row(n: int, at: datetime, *, remote=API, operation="query", status="success", duration=None) -> None:
    AuditLog.objects.create(
        log_id=f"log-{n:05d}",
        operation_type=operation,
        direction="incoming",
        local_repo="github.com/org/frontend",
        remote_repo=remote,
        status=status,
        timestamp=at,
        duration_ms=duration,
    )


@pytest.fixture
def scripted(node_repo):
    """In the 12:29 minute: api-service 10 queries (durations 1..10 ms, two failed); in the 12:30 minute: web 4
    mutates of 300 ms (one failed), api-service 1 query of 20 ms. Two hours earlier: 5 api queries (outside the
    hour, inside the day)."""
    n = 0
    for d in range(1, 11):
        n += 1
        audit_row(n, NOW.replace(minute=29, second=d), status="failed" if d in (3, 7) else "success", duration=d)
    for _ in range(4):
        n += 1
        audit_row(
            n,
            NOW.replace(second=5),
            remote=WEB,
            operation="mutate",
            duration=300,
            status="failed" if n == 11 else "success",
        )
    n += 1
    audit_row(n, NOW.replace(second=10), duration=20)
    for _ in range(5):
        n += 1
        audit_row(n, NOW - timedelta(hours=2), duration=5000)
    rollups_rebuild(now=NOW)


def test_windows_are_aligned_points_ending_with_the_current_period():
    hour = series_window("hour", now=NOW)
    assert hour["period_seconds"] == 60 and len(hour["starts"]) == 60
    assert hour["starts"][-1] == NOW.replace(second=0) and hour["until"] == NOW.replace(minute=31, second=0)
    day, week = series_window("day", now=NOW), series_window("week", now=NOW)
    assert (len(day["starts"]), day["period_seconds"]) == (96, 900)
    assert (len(week["starts"]), week["period_seconds"]) == (168, 3600)
    with pytest.raises(ValidationError) as caught:
        series_window("month", now=NOW)
    assert "window" in caught.value.message_dict


def test_hour_series_counts_traffic_errors_and_latency_per_point(scripted):
    series = audit_series("hour", now=NOW)
    assert series["calls"][-2:] == [10, 5] and sum(series["calls"]) == 15  # the 2-hour-old rows are outside
    assert series["failed"][-2:] == [2, 1]
    assert series["error_rate"][-2:] == [20.0, 20.0] and series["error_rate"][0] is None
    assert list(series["by_remote"]) == [API, WEB]  # most calls first
    assert series["by_remote"][API]["calls"][-2:] == [10, 1]
    assert series["by_remote"][WEB]["error_rate"][-1] == 25.0
    query = series["latency_ms"]["query"]
    # 10 durations 1..10 in buckets le_1:1, le_2:1, le_5:3, le_10:5; the median (rank 5) is in (5, 10]: 5 + 5*0/5
    assert query["calls"][-2] == 10
    assert query["p50"][-2] == 5.0
    assert query["p95"][-2] == 9.5 and query["p99"][-2] == 9.9
    assert query["p50"][-1] == 17.5  # one duration of 20 ms, in (10, 25]: rank 0.5 of 1 -> 10 + 15 * 0.5
    assert series["latency_ms"]["mutate"]["p99"][-1] == pytest.approx(250 + 250 * 3.96 / 4, abs=0.1)


def test_day_series_sees_the_older_rows_in_their_quarter(scripted):
    series = audit_series("day", now=NOW)
    assert sum(series["calls"]) == 20
    older = series["times"].index(int(datetime(2026, 11, 30, 10, 30, tzinfo=UTC).timestamp()))
    assert series["calls"][older] == 5
    assert series["latency_ms"]["query"]["p50"][older] == 3750.0  # 2500 + 2500 * 2.5 / 5


def test_audit_record_keeps_the_rollups_a_rebuild_makes(node_repo):
    for n in range(6):
        audit_record(
            operation="query" if n % 2 else "discover",
            direction="outgoing",
            local_repo="github.com/org/frontend",
            remote_repo=API,
            status="failed" if n == 4 else "success",
            duration_ms=n * 40,
        )
    audit_record(operation="mutate", direction="incoming", local_repo="x", remote_repo=WEB, status="pending")

    def snapshot():
        fields = ("period_seconds", "dimension", "start", "name", "calls", "failed", "duration_sum_ms", "le_50")
        return sorted(AuditRollup.objects.values_list(*fields))

    kept = snapshot()
    assert {(row[1], row[3]) for row in kept} == {
        ("remote", API),
        ("remote", WEB),
        ("operation", "discover"),
        ("operation", "query"),
        ("operation", "mutate"),
    }
    # each row counted in 3 periods, once by remote and once by operation; pending is neither failed nor timed
    assert sum(row[4] for row in kept) == 7 * 3 * 2 and sum(row[5] for row in kept) == 1 * 3 * 2
    assert sum(row[6] for row in kept) == (0 + 40 + 80 + 120 + 160 + 200) * 3 * 2
    assert sum(row[7] for row in kept if row[1] == "remote" and row[0] == 60) == 1  # 40 ms (0 ms is in le_1)
    rollups_rebuild()
    assert snapshot() == kept


def test_prune_drops_each_period_past_its_keeping(scripted):
    assert rollups_prune(now=NOW) == 2  # the minute two hours back, by remote and by operation
    assert rollups_prune(now=NOW + timedelta(days=3)) > 0
    assert set(AuditRollup.objects.values_list("period_seconds", flat=True)) == {3600}


def test_bucket_quantile_interpolates_and_caps():
    assert bucket_quantile([0] * 14, 0.5) is None
    assert bucket_quantile([2] + [0] * 13, 0.5) == 0.5
    assert bucket_quantile([0] * 13 + [4], 0.99) == 10000.0


def make_request(n: int, created: datetime, *, status="pending", approved_at=None, completed_at=None):
    return CrossRepoRequest.objects.create(
        request_id=f"req-{n}",
        direction="incoming",
        from_repo=WEB,
        to_repo=API,
        request_type="create_issue",
        payload={},
        status=status,
        requires_approval=True,
        approved_at=approved_at,
        completed_at=completed_at,
        created_at=created,
        updated_at=created,
    )


def test_request_series_approval_rate_time_to_decision_and_queue_depth(node_repo):
    m = NOW.replace(second=0)
    make_request(1, m - timedelta(hours=3))  # waiting since before the window: the queue all along
    make_request(2, m - timedelta(minutes=10), status="completed", approved_at=m - timedelta(minutes=4), completed_at=m)
    make_request(3, m - timedelta(minutes=5), status="rejected", completed_at=m - timedelta(minutes=4))
    make_request(4, m - timedelta(minutes=2))
    make_request(5, m - timedelta(hours=5), status="rejected", completed_at=m - timedelta(hours=4))  # long gone
    series = request_series(series_window("hour", now=NOW))
    at = lambda minutes_ago: 59 - minutes_ago  # noqa: E731 - the point `minutes_ago` minutes before NOW's
    assert series["arrived"][at(10)] == 1 and series["arrived"][at(5)] == 1 and sum(series["arrived"]) == 3
    assert series["approved"][at(4)] == 1 and series["rejected"][at(4)] == 1
    assert series["approval_rate"][at(4)] == 50.0 and series["approval_rate"][at(3)] is None
    assert series["decision_seconds"][at(4)] == (360 + 60) / 2
    assert series["queue_depth"][0] == 1
    assert series["queue_depth"][at(10)] == 2 and series["queue_depth"][at(5)] == 3
    assert series["queue_depth"][at(4)] == 1 and series["queue_depth"][at(0)] == 2
