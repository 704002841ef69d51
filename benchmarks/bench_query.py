"""How fast a node answers federated queries over real HTTP, next to sudocode's federation prototype.

Starts a real node (`sudocode-fed serve`, daphne) on 127.0.0.1 serving one corpus data set (default: the one with
the most issues), links a second node to it at trust level `verified`, and sends `POST /api/v1/federation/query`
with that node's key (Bearer), so every request goes through authentication, the permission checks, input
validation and the audit row. For each query, at each concurrency (threads, one keep-alive `requests.Session`
each), it reports latency percentiles, throughput, CPU per request on both sides and the server's own time as
the audit row records it. It also measures:
- the floor: the same settings, middleware and daphne serving `/bench/floor`, a plain Django view returning a
  fixed small JSON body, added by a settings, urls and ASGI module written to a temp dir (no project code
  touched); and, for reference, `/bench/raw-asgi`, answered in that ASGI module before Django (daphne alone);
- the audit table's growth per query: rows, payload+result bytes, and the database file's growth.

Prints one JSON document on stdout; progress goes to stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_query.py [--requests N] [--duration S] [--warmup N] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (  # noqa: E402
    corpus_dir,
    count_lines,
    cpu_seconds,
    largest_dataset,
    peak_memory,
    percentile,
    progress,
    wrk_load,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DAPHNE = REPO_ROOT / ".venv" / "bin" / "daphne"
FLOOR_PATH = "/bench/floor"
RAW_ASGI_PATH = "/bench/raw-asgi"
QUERY_PATH = "/api/v1/federation/query"

# The figures of the issue: sudocode's federation prototype on the same data set, "open issues, default page"
# (39 results), with no authentication, permission checks or validation.
REFERENCE = {
    "source": "sudocode's federation prototype, sudocode-ai__sudocode (676 issues), as quoted in our issue",
    "query": "open issues, default page",
    "results": 39,
    "p50_ms": 1.5,
    "p99_ms": 6.0,
    "throughput_rps": {"1": 600, "16": 680},
    "checks": "none: no authentication, permission checks or validation",
}

# name -> (request body, results expected or None). Bodies are the bare seed form the endpoint accepts.
QUERIES: dict[str, tuple[dict, int | None]] = {
    "open_issues_default_page": ({"entity": "issue", "filters": {"status": "open"}}, 39),
    "all_issues_limit_50": ({"entity": "issue", "limit": 50}, 50),
    "all_issues_limit_500": ({"entity": "issue", "limit": 500}, 500),
}
# Variables that would change how the served node runs (another database, debug mode, chattier logging).
_FOREIGN_ENV = ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SUDOCODE_REPO", "SUDOCODE_FED_CLI", "DEBUG", "LOG_LEVEL")


# --- the corpus -------------------------------------------------------------------------------------------------


# --- processes --------------------------------------------------------------------------------------------------


def wait_listening(proc: subprocess.Popen, port: int, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


FLOOR_MODULES = {
    "bench_floor_settings.py": """
        from federation_site.settings import *  # noqa: F403

        ROOT_URLCONF = "bench_floor_urls"
    """,
    "bench_floor_urls.py": """
        from django.http import JsonResponse
        from django.urls import include, path
        from django.views.decorators.csrf import csrf_exempt


        @csrf_exempt
        def floor(request):
            return JsonResponse({"ok": True})


        urlpatterns = [path("bench/floor", floor), path("", include("federation_site.urls"))]
    """,
    "bench_floor_asgi.py": """
        import os

        os.environ["DJANGO_SETTINGS_MODULE"] = "bench_floor_settings"

        from federation_site.asgi import application as node_application  # noqa: E402


        async def application(scope, receive, send):
            # /bench/raw-asgi is answered here, before Django: what daphne alone costs. Everything else,
            # /bench/floor included, goes to the node's own ASGI application.
            if scope["type"] != "http" or scope["path"] != "/bench/raw-asgi":
                return await node_application(scope, receive, send)
            while (await receive()).get("more_body"):
                pass
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"ok": true}'})
    """,
}


def start_floor_server(tmp: Path, repo: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """The node's own ASGI application under another ROOT_URLCONF (the project's urls plus /bench/floor), in its
    own daphne process on the same repository, with an access log as the node has."""
    modules = tmp / "floor-modules"
    modules.mkdir()
    for name, text in FLOOR_MODULES.items():
        (modules / name).write_text(textwrap.dedent(text).lstrip())
    daphne = DAPHNE if DAPHNE.exists() else Path(sys.executable).parent / "daphne"
    log = tmp / "floor-daphne.log"
    run_env = {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(modules), str(REPO_ROOT), env.get("PYTHONPATH")])),
        "SUDOCODE_REPO": str(repo),
    }
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                str(daphne),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "--access-log",
                str(tmp / "floor-access.log"),
                "bench_floor_asgi:application",
            ],
            env=run_env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_listening(proc, port, "the floor server")
    except SystemExit:
        stop(proc)
        raise SystemExit(f"the floor server did not start:\n{log.read_text()}") from None
    return proc, log


# --- the audit table --------------------------------------------------------------------------------------------


class AuditDb:
    """Reads the served node's SQLite database directly (the node keeps writing to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)

    def close(self) -> None:
        self.conn.close()

    def max_rowid(self) -> int:
        return self.conn.execute("SELECT coalesce(max(rowid), 0) FROM cross_repo_audit_log").fetchone()[0]

    def durations(self, after_rowid: int) -> list[int]:
        rows = self.conn.execute(
            "SELECT duration_ms FROM cross_repo_audit_log WHERE rowid > ? AND duration_ms IS NOT NULL", (after_rowid,)
        )
        return [r[0] for r in rows]

    def rows_after(self, after_rowid: int) -> int:
        return self.conn.execute(
            "SELECT count(*) FROM cross_repo_audit_log WHERE rowid > ?", (after_rowid,)
        ).fetchone()[0]

    def state(self) -> dict:
        """Row count, stored bytes and file sizes, after a checkpoint so the main file holds what the WAL held."""
        busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        rows, payload_result, all_columns = self.conn.execute(
            """SELECT count(*),
                      coalesce(sum(length(payload)), 0) + coalesce(sum(length(result)), 0),
                      coalesce(sum(length(log_id) + length(operation_type) + length(direction) + length(local_repo)
                          + length(remote_repo) + length(request_id) + length(correlation_id)
                          + coalesce(length(payload), 0) + coalesce(length(result), 0) + length(status)
                          + length(error_message) + length(timestamp) + coalesce(length(duration_ms), 0)), 0)
               FROM cross_repo_audit_log"""
        ).fetchone()
        wal = self.path.with_name(self.path.name + "-wal")
        return {
            "rows": rows,
            "payload_result_bytes": payload_result,
            "all_columns_bytes": all_columns,
            "db_file_bytes": self.path.stat().st_size,
            "wal_file_bytes": wal.stat().st_size if wal.exists() else 0,
            "checkpoint_complete": busy == 0,
        }

    def sample(self, after_rowid: int) -> dict | None:
        cursor = self.conn.execute(
            "SELECT * FROM cross_repo_audit_log WHERE rowid > ? ORDER BY rowid DESC LIMIT 1", (after_rowid,)
        )
        row = cursor.fetchone()
        return dict(zip([c[0] for c in cursor.description], row, strict=True)) if row else None


# --- load -------------------------------------------------------------------------------------------------------


@dataclass
class Target:
    url: str
    body: bytes | None  # None: GET
    headers: dict[str, str]


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    sent: int = 0  # warm-up included
    connections: int = 0
    seconds: float = 0.0
    first_reply: bytes = b""


def run_load(target: Target, *, concurrency: int, requests_max: int, seconds_max: float, warmup: int) -> Outcome:
    """Warm up every thread's session (its connection, the server's caches), then send until `requests_max`
    requests are done or `seconds_max` have passed, whichever comes first."""
    import requests

    outcome = Outcome()
    lock = threading.Lock()
    budget = iter(range(requests_max))
    state = {"began": 0.0, "deadline": math.inf}

    def open_window() -> None:  # run by the barrier once every thread is warm, before any goes on
        state["began"] = time.perf_counter()
        state["deadline"] = state["began"] + seconds_max

    start = threading.Barrier(concurrency, action=open_window)
    warmup_each = max(1, math.ceil(warmup / concurrency))
    crashes: list[str] = []

    def post(session: requests.Session) -> tuple[float, bytes | None, str]:
        started = time.perf_counter()
        try:
            if target.body is None:
                reply = session.get(target.url, headers=target.headers, timeout=60)
            else:
                reply = session.post(target.url, data=target.body, headers=target.headers, timeout=60)
            content = reply.content
        except requests.RequestException as exc:
            return (time.perf_counter() - started) * 1000, None, f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        if reply.status_code != 200:
            return elapsed, None, f"HTTP {reply.status_code}: {content[:300]!r}"
        return elapsed, content, ""

    def worker() -> None:
        session = requests.Session()
        mine: list[float] = []
        errors, first_error, sent, first_reply = 0, "", 0, b""
        try:
            warm_until = time.perf_counter() + 5
            for i in range(warmup_each):
                _, content, error = post(session)
                sent += 1
                if error:
                    errors, first_error = errors + 1, first_error or error
                elif not first_reply:
                    first_reply = content
                if i and time.perf_counter() > warm_until:
                    break
            start.wait()
            while time.perf_counter() < state["deadline"]:
                with lock:
                    if next(budget, None) is None:
                        break
                elapsed, _, error = post(session)
                sent += 1
                if error:
                    errors, first_error = errors + 1, first_error or error
                else:
                    mine.append(elapsed)
        except threading.BrokenBarrierError:
            # Another thread crashed and broke the start barrier; its own entry in `crashes` says why.
            return
        except BaseException as exc:
            start.abort()
            crashes.append(f"{type(exc).__name__}: {exc}")
        finally:
            pools = session.get_adapter(target.url).poolmanager.pools
            connections = sum(pools[key].num_connections for key in pools.keys())  # the container's own lock
            session.close()
            with lock:
                outcome.latencies_ms.extend(mine)
                outcome.errors += errors
                outcome.first_error = outcome.first_error or first_error
                outcome.sent += sent
                outcome.connections += connections
                outcome.first_reply = outcome.first_reply or first_reply

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if crashes:
        raise RuntimeError(f"a client thread failed: {crashes[0]}")
    outcome.seconds = time.perf_counter() - state["began"]
    return outcome


def figures(outcome: Outcome) -> dict:
    done = outcome.latencies_ms
    out: dict = {
        "requests": len(done),
        "errors": outcome.errors,
        "seconds": round(outcome.seconds, 2),
        "throughput_rps": round(len(done) / outcome.seconds, 1) if outcome.seconds else None,
        "connections_opened": outcome.connections,
    }
    if outcome.first_error:
        out["first_error"] = outcome.first_error
    if done:
        out["latency_ms"] = {
            "p50": round(percentile(done, 0.50), 2),
            "p95": round(percentile(done, 0.95), 2),
            "p99": round(percentile(done, 0.99), 2),
            "min": round(min(done), 2),
            "max": round(max(done), 2),
            "mean": round(statistics.fmean(done), 2),
        }
    return out


def measure(
    label: str,
    target: Target,
    *,
    concurrency: int,
    args: argparse.Namespace,
    server_pid: int,
    audit: AuditDb | None,
) -> tuple[dict, Outcome]:
    progress(f"{label} at concurrency {concurrency}: up to {args.requests} requests or {args.duration:g} s")
    before_rowid = audit.max_rowid() if audit else 0
    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    if args.client == "wrk":
        # Warm-up (and one answer to describe) from this process, then wrk: a client that takes little CPU.
        outcome = run_load(target, concurrency=concurrency, requests_max=0, seconds_max=1, warmup=args.warmup)
        headers = {k: v for k, v in target.headers.items() if target.body is not None or k != "Content-Type"}
        result = wrk_load(target.url, body=target.body, headers=headers, concurrency=concurrency, seconds=args.duration)
        outcome.sent += result["requests"]
    else:
        outcome = run_load(
            target, concurrency=concurrency, requests_max=args.requests, seconds_max=args.duration, warmup=args.warmup
        )
    server_cpu_after, client_cpu_after = cpu_seconds(server_pid), time.process_time()
    if args.client != "wrk":
        result = figures(outcome)
    # CPU over everything sent in the window, warm-up included (it is a small share of the requests).
    if server_cpu is not None and server_cpu_after is not None and outcome.sent:
        result["server_cpu_ms_per_request"] = round((server_cpu_after - server_cpu) * 1000 / outcome.sent, 3)
    if outcome.sent:
        result["client_cpu_ms_per_request"] = round((client_cpu_after - client_cpu) * 1000 / outcome.sent, 3)
    if audit:
        rows = audit.rows_after(before_rowid)
        durations = audit.durations(before_rowid)
        result["audit_rows_added"] = rows
        result["audit_rows_per_request"] = round(rows / outcome.sent, 3) if outcome.sent else None
        if durations:
            # duration_ms of the audit row: answer_query's own time (policy, query, serialising the results),
            # rounded to whole ms; daphne, middleware, DRF, the audit insert and JSON rendering are outside it.
            result["service_ms_from_audit"] = {
                "mean": round(statistics.fmean(durations), 2),
                "p50": percentile(durations, 0.5),
                "p99": percentile(durations, 0.99),
            }
    lat = result.get("latency_ms", {})
    progress(
        f"  {result['requests']} requests in {result['seconds']} s: {result['throughput_rps']} req/s, "
        f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, {result['errors']} errors"
    )
    return result, outcome


# --- main -------------------------------------------------------------------------------------------------------


def machine_facts() -> dict:
    import daphne
    import django
    import requests
    import twisted

    facts = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "django": django.get_version(),
        "daphne": daphne.__version__,
        "twisted": twisted.__version__,
        "requests": requests.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "database": "sqlite (the served repository's .sudocode/federation.db, WAL)",
    }
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        facts["cpu_model"] = model
    except (OSError, StopIteration):
        pass
    if hasattr(os, "getloadavg"):
        facts["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return facts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time federated queries (POST /api/v1/federation/query) between two real nodes over HTTP on "
        "127.0.0.1, next to a bare Django endpoint on the same stack, and the audit table's growth; print the "
        "figures as one JSON document.",
    )
    parser.add_argument("--dataset", help="a folder of the corpus (default: the one with the most issues)")
    parser.add_argument(
        "--requests", type=int, default=2000, help="measured requests per scenario, at most (default 2000)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario, at most (default 10)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=100,
        help="warm-up requests before each scenario, shared by its threads "
        "(at least one per thread, at most 5 s; default 100)",
    )
    parser.add_argument(
        "--concurrency", default="1,16", help="comma-separated numbers of client threads (default 1,16)"
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="serve without the Celery worker and beat (`serve --no-worker`)"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="web processes (`serve --workers`; default: cores)"
    )
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator: wrk (default when installed: one thread, little CPU) or this process's threads",
    )
    args = parser.parse_args(argv)
    try:
        args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        parser.error("--concurrency takes numbers separated by commas, e.g. 1,16")
    if not args.levels or min(args.levels) < 1:
        parser.error("--concurrency needs numbers of at least 1")
    if args.requests < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--requests must be at least 1, --duration above 0, --warmup not negative")
    root = corpus_dir()
    if not root.is_dir():
        parser.error(f"no corpus at {root} (set SUDOCODE_CORPUS)")
    args.dataset = args.dataset or largest_dataset(root)
    if not (root / args.dataset / "issues.jsonl").exists():
        parser.error(f"{root / args.dataset} has no issues.jsonl")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in _FOREIGN_ENV:
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO_ROOT))
    from tests.conftest import cli_env
    from tests.nodes import Node, free_port, link

    report: dict = {"dataset": args.dataset, "machine": machine_facts()}
    load = report["machine"].get("load_average_at_start", [0])[0]
    if load > 0.5:
        progress(f"load average {load}: something else is running, the figures will be slower than they should")
    served: Node | None = None
    floor_proc: subprocess.Popen | None = None
    audit: AuditDb | None = None
    with tempfile.TemporaryDirectory(prefix="sudocode-bench-query-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            progress(f"data set {args.dataset}: preparing the served node (migrations, import)")
            served = Node(tmp, "served", dataset=args.dataset, worker=not args.no_worker, workers=args.workers)
            status = served.cli_json("status")  # migrations and the import happen here, untimed
            served.start(timeout=120)
            caller = Node(tmp, "caller")
            key = link(caller, served, trust="verified")
            # The default 60 queries a minute would refuse the benchmark itself: limits stay on, out of reach.
            config = served.config()
            config["rate_limits"]["per_repo"]["queries_per_minute"] = 10**9
            config["policies"]["incoming_requests"]["query"]["rate_limit"]["requests_per_minute"] = 10**9
            # And the node's bytes per day: the 500-item page at c=16 sends ~1 GB within a minute.
            config["rate_limits"]["global"]["cross_repo_bandwidth_mb_per_day"] = 10**9
            served.write_config(config)
            progress(f"served node on {served.base} ({status['issues']} issues); {caller.identity} linked, verified")

            floor_port = free_port()
            floor_proc, floor_log = start_floor_server(tmp, served.repo, floor_port, cli_env())
            progress(f"floor server on http://127.0.0.1:{floor_port}{FLOOR_PATH}")

            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            audit = AuditDb(served.repo / ".sudocode" / "federation.db")
            scenarios: dict = {}

            floor_body = json.dumps(QUERIES["open_issues_default_page"][0]).encode()
            floors = {
                "floor": (
                    FLOOR_PATH,
                    f"POST {FLOOR_PATH}: a plain Django view returning JsonResponse({{'ok': True}}); the node's "
                    "settings, middleware and daphne; the open-issues body sent and not read",
                ),
                "floor_raw_asgi": (
                    RAW_ASGI_PATH,
                    f"POST {RAW_ASGI_PATH}: the same daphne process, answered by the ASGI wrapper before Django "
                    "(for reference: what daphne alone costs)",
                ),
            }
            for name, (path, what) in floors.items():
                floor: dict = {"what": what, "path": path}
                for level in args.levels:
                    target = Target(f"http://127.0.0.1:{floor_port}{path}", floor_body, headers)
                    floor[f"c{level}"], outcome = measure(
                        name, target, concurrency=level, args=args, server_pid=floor_proc.pid, audit=None
                    )
                    floor["response"] = outcome.first_reply.decode(errors="replace")
                scenarios[name] = floor
            stop(floor_proc)
            floor_proc = None

            info: dict = {"what": "GET /api/v1/federation/info (discover: auth, the caller's operations, audited)"}
            for level in args.levels:
                target = Target(f"{served.api}/federation/info", None, headers)
                info[f"c{level}"], _ = measure(
                    "info", target, concurrency=level, args=args, server_pid=served.proc.pid, audit=None
                )
            scenarios["federation_info"] = info

            audit_before = audit.state()
            start_rowid = audit.max_rowid()
            query_requests = 0
            for name, (body, expected) in QUERIES.items():
                encoded = json.dumps(body).encode()
                scenario: dict = {"body": body, "expected_results": expected}
                for level in args.levels:
                    target = Target(f"{served.base}{QUERY_PATH}", encoded, headers)
                    scenario[f"c{level}"], outcome = measure(
                        name, target, concurrency=level, args=args, server_pid=served.proc.pid, audit=audit
                    )
                    query_requests += outcome.sent
                    if outcome.first_reply:
                        reply = json.loads(outcome.first_reply)
                        scenario["results"] = len(reply.get("results", []))
                        scenario["archived_in_results"] = sum(1 for r in reply.get("results", []) if r.get("archived"))
                        scenario["total"] = reply.get("metadata", {}).get("total")
                        scenario["response_bytes"] = len(outcome.first_reply)
                scenarios[name] = scenario
            report["peak_memory"] = peak_memory(served.proc.pid)
            audit_after = audit.state()
            sample = audit.sample(start_rowid)

            rows = audit_after["rows"] - audit_before["rows"]

            def per_row(key: str) -> float | None:
                return round((audit_after[key] - audit_before[key]) / rows, 1) if rows else None

            report["records"] = {
                "issues": count_lines(corpus_dir() / args.dataset / "issues.jsonl"),
                "issues_in_node": status["issues"],
                "issues_by_status": status["issues_by_status"],
            }
            report["setup"] = {
                "server": f"`sudocode-fed serve --workers {args.workers}` (daphne) with --access-log, on 127.0.0.1, "
                + (
                    "without its Celery worker and beat (--no-worker)"
                    if args.no_worker
                    else "with its Celery worker and beat"
                ),
                "caller": f"{caller.identity}, linked at trust level verified; Authorization: Bearer <its key>",
                "endpoint": f"POST {QUERY_PATH} (bare seed body)",
                "client": "wrk, one thread, one keep-alive connection per concurrent client (warm-up from this process)"
                if args.client == "wrk"
                else "this process: one thread per concurrent client, one keep-alive requests.Session each",
                "requests_max": args.requests,
                "seconds_max": args.duration,
                "warmup": args.warmup,
                "concurrency": args.levels,
                "debug": False,
            }
            report["unit"] = "ms"
            report["scenarios"] = scenarios
            report["audit"] = {
                "query_requests_sent": query_requests,
                "rows_added": rows,
                "rows_per_request": round(rows / query_requests, 3) if query_requests else None,
                "payload_result_bytes_per_row": per_row("payload_result_bytes"),
                "all_columns_bytes_per_row": per_row("all_columns_bytes"),
                "db_file_growth_bytes_per_row": per_row("db_file_bytes"),
                "before": audit_before,
                "after": audit_after,
                "sample_row": sample,
                "note": "sizes after PRAGMA wal_checkpoint(TRUNCATE); payload+result is "
                "sum(length(payload))+sum(length(result)); the file's growth includes the table's indexes",
            }
            if hasattr(os, "getloadavg"):
                report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            report["reference"] = REFERENCE
            open_issues = scenarios["open_issues_default_page"]
            ratios = {}
            for level in args.levels:
                ours = open_issues.get(f"c{level}", {})
                theirs = REFERENCE["throughput_rps"].get(str(level))
                if theirs and ours.get("throughput_rps"):
                    ratios[f"throughput_c{level}"] = round(ours["throughput_rps"] / theirs, 2)
                if level == 1 and ours.get("latency_ms"):
                    ratios["p50_c1"] = round(ours["latency_ms"]["p50"] / REFERENCE["p50_ms"], 2)
                    ratios["p99_c1"] = round(ours["latency_ms"]["p99"] / REFERENCE["p99_ms"], 2)
            report["open_issues_vs_reference"] = ratios
        except BaseException:
            if served is not None and served.log_path.exists():
                progress(f"served node's log (end):\n{served.log_path.read_text()[-3000:]}")
            if floor_proc is not None and "floor_log" in locals():
                progress(f"floor server's stderr:\n{floor_log.read_text()[-3000:]}")
            raise
        finally:
            if audit is not None:
                audit.close()
            stop(floor_proc)
            if served is not None:
                served.stop()

    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
