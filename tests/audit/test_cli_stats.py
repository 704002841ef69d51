"""`sudocode-fed audit stats`: the same numbers as the API, run as a real process on the repository's database."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def fed(repo: Path, *args: str):
    return run_cli("--repo", str(repo), *args)


@pytest.fixture
def logged(git_repo: Path) -> Path:
    """Five rows on 2025-06-01: three queries from api (one failed), a mutate to web, a pending discover."""
    assert fed(git_repo, "init").code == 0
    assert fed(git_repo, "audit", "list").code == 0  # migrates the database
    rows = [
        ("log-1", "query", "incoming", "github.com/org/api", "success", "2025-06-01 10:00:00", 4),
        ("log-2", "query", "incoming", "github.com/org/api", "success", "2025-06-01 10:01:00", 8),
        ("log-3", "query", "incoming", "github.com/org/api", "failed", "2025-06-01 10:02:00", 30),
        ("log-4", "mutate", "outgoing", "github.com/org/web", "success", "2025-06-01 10:03:00", 120),
        ("log-5", "discover", "incoming", "github.com/org/web", "pending", "2025-06-01 10:04:00", None),
    ]
    with sqlite3.connect(git_repo / ".sudocode" / "federation.db") as db:
        db.executemany(
            "INSERT INTO cross_repo_audit_log (log_id, operation_type, direction, local_repo, remote_repo, request_id,"
            " correlation_id, status, error_message, timestamp, duration_ms)"
            " VALUES (?, ?, ?, 'github.com/acme/frontend', ?, '', '', ?, '', ?, ?)",
            rows,
        )
    return git_repo


def test_audit_stats_prints_the_totals_and_percentiles(logged):
    result = fed(logged, "audit", "stats", "--since", "2025-06-01", "--until", "2025-06-02")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "5 entries from 2025-06-01T00:00:00 to 2025-06-02T00:00:00"
    assert lines[1] == "duration (ms, 4 timed): p50 8  p95 120  p99 120"
    assert "QUERY" not in result.out and lines[3].split() == ["OPERATION", "ENTRIES"]
    assert lines[4].split() == ["query", "3"]
    assert ["github.com/org/web", "2"] in [line.split() for line in lines]


def test_audit_stats_as_json_with_filters(logged):
    result = fed(logged, "audit", "stats", "--since", "2025-06-01", "--remote", "api", "--format", "json")
    assert result.code == 0, result.err
    stats = json.loads(result.out)
    assert stats["total"] == 3 and stats["by_status"] == {"success": 2, "failed": 1}
    assert stats["duration_ms"] == {"count": 3, "p50": 8, "p95": 30, "p99": 30}
    assert stats["window"]["until"] is None


def test_audit_stats_names_a_bad_option(logged):
    result = fed(logged, "audit", "stats", "--since", "last week")
    assert result.code == 2 and "since:" in result.err


def test_the_default_window_is_the_last_24_hours(logged):
    recent = (datetime.now(UTC) - timedelta(hours=23)).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(logged / ".sudocode" / "federation.db") as db:
        db.execute(
            "INSERT INTO cross_repo_audit_log (log_id, operation_type, direction, local_repo, remote_repo, request_id,"
            " correlation_id, status, error_message, timestamp, duration_ms)"
            " VALUES ('log-6', 'event', 'outgoing', 'a', 'b', '', '', 'success', '', ?, 7)",
            (recent,),
        )
    result = fed(logged, "audit", "stats", "--format", "json")
    assert result.code == 0, result.err
    stats = json.loads(result.out)
    assert (stats["total"], stats["by_operation"]) == (1, {"event": 1})  # not the five of 2025


# --- audit prune (retention, subscriptions/retention.py) ---------------------------------------------------------


def test_audit_prune_dry_run_shows_what_would_go_and_the_real_run_archives_it(logged):
    # The five rows are from 2025-06-01: on 2025-08-31 the cut is 2025-06-02, on 2025-08-29 it is 2025-05-31.
    early = fed(logged, "audit", "prune", "--dry-run", "--now", "2025-08-29")
    assert early.code == 0, early.err
    assert "audit entries would go: 0 (older than 2025-05-31T00:00:00)" in early.out

    dry = fed(logged, "audit", "prune", "--dry-run", "--now", "2025-08-31", "--format", "json")
    assert dry.code == 0, dry.err
    shown = json.loads(dry.out)
    assert shown["dry_run"] and shown["audit"]["count"] == 5 and shown["audit"]["archive"] is None
    assert json.loads(fed(logged, "audit", "stats", "--since", "2025-06-01", "--format", "json").out)["total"] == 5

    done = fed(logged, "audit", "prune", "--now", "2025-08-31")
    assert done.code == 0, done.err
    assert "audit entries pruned: 5 (older than 2025-06-02T00:00:00, 2025-06-01T10:00:00 to 2025-06-01T10:04:00)" in (
        done.out
    )
    archive = Path(done.out.split("archived to ", 1)[1].strip())
    assert archive.parent == logged / ".sudocode" / "audit-archive"
    assert [json.loads(line)["log_id"] for line in archive.read_text().splitlines()] == [
        f"log-{n}" for n in range(1, 6)
    ]
    assert json.loads(fed(logged, "audit", "stats", "--since", "2025-06-01", "--format", "json").out)["total"] == 0


def test_audit_prune_refuses_a_now_that_is_not_a_time(logged):
    result = fed(logged, "audit", "prune", "--now", "next week")
    assert result.code == 2
    assert "--now: 'next week' is not an ISO 8601 date or time" in result.err
