"""The audit log at 1,000,000 rows, and the readiness check (issue 15: `audit/stats` under 50 ms on SQLite, about
370 bytes of database growth per audit row; `/health/ready` under 10 ms).

In a fresh temp repository with a freshly migrated SQLite database (the embedded default), inserts `--rows` audit
rows shaped like the ones federated queries write (operation mix of mostly queries, 20 remotes, a uuid hex
correlation id, a query summary as payload, `{total, returned}` as result, 5% failed, log-normal durations)
spread evenly over the `--days` before now, with raw `executemany` in 50,000-row transactions. Then, in this
process:

- `bytes_per_row`: the database file's growth per row, after `PRAGMA wal_checkpoint(TRUNCATE)`;
- `audit_stats`: `audit.selectors.audit_stats()` (what `GET /api/v1/federation/audit/stats` answers) for its
  default window (the last 24 h), with a filter, and over every row (`since` before the first);
- `audit_page`: the first page of 50, newest first, unfiltered and filtered, and the page after a cursor;
- `health_ready`, `health_live`: `GET /health/ready` and `GET /health` through Django's test client (all
  middleware, DRF, every check; a fresh worker heartbeat, so the answer is 200);
- `rollups`: `audit.services.rollups_rebuild()` over the rows (what audit_record keeps as it writes: the rows
  were inserted raw), the rollup rows and bytes it made (bounded by time, not by audit rows: minutes for 2 h,
  quarter hours for 2 days, hours for 8 days);
- `metrics_page`: the metrics page's queries (`audit_series`, `request_series`, and the whole
  `GET /api/v1/federation/metrics/series` as staff) for each window (hour, day, week);
- `audit_record`: one audit row written the way services write it (with its rollups), `--writes` times.

Prints one JSON document on stdout; progress goes to stderr.

    .venv/bin/python benchmarks/bench_audit.py [--rows 1000000] [--days 30] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import REPO_ROOT, django_in_new_repo, percentile, progress

sys.path.insert(0, str(REPO_ROOT))

OPERATIONS = ["query"] * 14 + ["discover", "mutate", "subscribe", "event", "callback", "event"]
REMOTES = [f"github.com/org/service-{n:02d}" for n in range(20)]
PAYLOAD = json.dumps({"entity": "issue", "filters": {"status": "open"}, "limit": 50, "offset": 0})
RESULT = json.dumps({"total": 43, "returned": 43})
BATCH = 50_000
COLUMNS = ("log_id, operation_type, direction, local_repo, remote_repo, request_id, correlation_id, payload, result,"
           " status, error_message, timestamp, duration_ms")  # fmt: skip
INSERT = f"INSERT INTO cross_repo_audit_log ({COLUMNS}) VALUES ({', '.join(['%s'] * 13)})"


def figures(samples: list[float]) -> dict:
    return {
        "calls": len(samples),
        "min_ms": round(min(samples), 3),
        "p50_ms": round(percentile(samples, 0.5), 3),
        "p90_ms": round(percentile(samples, 0.9), 3),
        "max_ms": round(max(samples), 3),
    }


def timed(call, rounds: int) -> tuple[dict, object]:
    samples, answer = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - started) * 1000)
    return figures(samples), answer


def rows(count: int, *, now: datetime, days: float, seed: int = 15):
    rnd = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    for n in range(count):
        moment = now - timedelta(seconds=span * (count - n) / count)
        yield (
            f"log-{uuid.UUID(int=rnd.getrandbits(128)).hex[:16]}",
            rnd.choice(OPERATIONS),
            "incoming" if rnd.random() < 0.8 else "outgoing",
            "github.com/org/frontend",
            rnd.choice(REMOTES),
            "",
            uuid.UUID(int=rnd.getrandbits(128)).hex,
            PAYLOAD,
            RESULT,
            "failed" if rnd.random() < 0.05 else "success",
            "",
            moment.strftime("%Y-%m-%d %H:%M:%S.%f"),  # how Django stores a datetime on SQLite (UTC)
            min(int(rnd.lognormvariate(1.2, 0.9)), 60_000),
        )


def file_bytes(db: Path, connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="audit rows (default: %(default)s)")
    parser.add_argument("--days", type=float, default=30, help="spread over the last N days (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=20, help="timed calls per figure (default: %(default)s)")
    parser.add_argument("--writes", type=int, default=500, help="audit_record calls timed (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = django_in_new_repo(Path(tmp), env={"SUDOCODE_WORKER": "supervised"})
        from django.contrib.auth.models import User
        from django.db import connection, transaction
        from django.test import Client

        from audit.models import AuditRollup
        from audit.selectors import audit_page, audit_series, audit_stats, series_window
        from audit.services import audit_record, rollups_rebuild
        from federation.metrics_apis import metrics_series
        from federation_site import workers
        from federation_site.node import RepoLayout
        from requests_app.selectors import request_series

        db = repo / ".sudocode" / "federation.db"
        empty = file_bytes(db, connection)
        now = datetime.now(UTC)
        progress(f"inserting {args.rows} audit rows over {args.days} days ...")
        started = time.perf_counter()
        generated = rows(args.rows, now=now, days=args.days)
        for _ in range(0, args.rows, BATCH):
            batch = [row for _, row in zip(range(BATCH), generated, strict=False)]
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(INSERT, batch)
        insert_s = time.perf_counter() - started
        grown = file_bytes(db, connection) - empty
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT avg(length(payload) + length(result)), avg(length(correlation_id)) FROM cross_repo_audit_log"
            )
            payload_bytes, correlation_bytes = cursor.fetchone()

        progress("timing audit_stats ...")
        stats_default, answer = timed(lambda: audit_stats(), args.rounds)
        in_window = answer["total"]
        stats_filtered, _ = timed(
            lambda: audit_stats(remote="service-03", operation="query", status="success"), args.rounds
        )
        stats_all, whole = timed(lambda: audit_stats(since=now - timedelta(days=args.days + 1)), 3)
        assert whole["total"] == args.rows, whole["total"]

        progress("timing audit_page ...")
        page_first, first = timed(lambda: audit_page(), args.rounds)
        page_filtered, _ = timed(lambda: audit_page(remote="service-07", status="failed"), args.rounds)
        page_next, _ = timed(lambda: audit_page(cursor=first["next_cursor"]), args.rounds)

        progress("rebuilding the rollups ...")
        before_rollups = file_bytes(db, connection)
        started = time.perf_counter()
        rebuilt = rollups_rebuild()
        rebuild_s = time.perf_counter() - started
        rollup_rows = AuditRollup.objects.count()
        rollup_bytes = file_bytes(db, connection) - before_rollups

        progress("timing the metrics page's queries ...")
        page_figures = {}
        staff = User.objects.create_user("bench", "b@example.com", "pw", is_staff=True)
        api = Client(HTTP_HOST="127.0.0.1")
        api.force_login(staff)
        for window in ("hour", "day", "week"):
            frame = series_window(window)
            series_figure, series = timed(lambda window=window: audit_series(window), args.rounds)
            requests_figure, _ = timed(lambda frame=frame: request_series(frame), args.rounds)
            whole_figure, _ = timed(lambda window=window: metrics_series(window), args.rounds)
            assert api.get(f"/api/v1/federation/metrics/series?window={window}").status_code == 200
            endpoint_figure, _ = timed(
                lambda window=window: api.get(f"/api/v1/federation/metrics/series?window={window}"), args.rounds
            )
            page_figures[window] = {
                "audit_series": {**series_figure, "calls_in_window": sum(series["calls"])},
                "request_series": requests_figure,
                "metrics_series": whole_figure,
                "endpoint": endpoint_figure,
            }

        progress("timing audit_record ...")
        writes, _ = timed(
            lambda: audit_record(
                operation="query",
                direction="incoming",
                local_repo="github.com/org/frontend",
                remote_repo=REMOTES[3],
                status="success",
                payload={"entity": "issue", "filters": {"status": "open"}, "limit": 50, "offset": 0},
                result={"total": 43, "returned": 43},
                correlation_id=uuid.uuid4().hex,
                duration_ms=4.2,
            ),
            args.writes,
        )

        progress("timing /health/ready ...")
        workers.heartbeat(RepoLayout(repo))
        client = Client(HTTP_HOST="127.0.0.1")
        assert client.get("/health/ready").status_code == 200  # warm-up, and it must be ready
        ready, _ = timed(lambda: client.get("/health/ready"), max(args.rounds, 200))
        live, _ = timed(lambda: client.get("/health"), max(args.rounds, 200))

    print(
        json.dumps(
            {
                "benchmark": "the audit log at scale, and the readiness check",
                "database": "sqlite",
                "rows": args.rows,
                "days": args.days,
                "insert_seconds": round(insert_s, 1),
                "bytes_per_row": round(grown / args.rows, 1),
                "payload_and_result_bytes_per_row": round(payload_bytes, 1),
                "correlation_id_bytes_per_row": round(correlation_bytes, 1),
                "audit_stats": {
                    "default_window_last_24h": {**stats_default, "rows_in_window": in_window},
                    "last_24h_one_remote_query_success": stats_filtered,
                    "all_rows": {**stats_all, "rows_in_window": whole["total"]},
                    "sample": answer,
                },
                "audit_page": {"first_page_of_50": page_first, "filtered": page_filtered, "after_cursor": page_next},
                "rollups": {
                    "rebuild_seconds": round(rebuild_s, 1),
                    "audit_rows_read": rebuilt,
                    "rollup_rows": rollup_rows,
                    "rollup_bytes": rollup_bytes,
                },
                "metrics_page": page_figures,
                "audit_record_with_rollups": writes,
                "health_ready": ready,
                "health_live": live,
                "target": "audit/stats and the metrics page's queries under 50 ms with 1,000,000 rows; ~370 bytes "
                "per row; /health/ready under 10 ms",
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine slows every figure
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
