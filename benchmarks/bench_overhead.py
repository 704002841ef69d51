"""What metrics and structured logging cost a federated query (issue 15: under 0.3 ms per request).

In one process, on a fresh repository with 200 issues and one verified remote, `POST /api/v1/federation/query`
goes through Django's whole stack (middleware, authentication, the policy, the query, the audit row) with the
remote's key, in two modes:

- `on`, as under `sudocode-fed serve`: Prometheus in multiprocess mode (its files in a temp folder, as
  `.sudocode/metrics/`), JSON logging at INFO through structlog (federation_site/logs.py) to a file, the log
  context bound per request (federation_site.middleware.LogContextMiddleware) and the audit line rendered;
- `off`: no metric recorded (the CLI profile's switch), logging at WARNING (the audit line is not rendered), and
  the context binding replaced by a no-op.

The modes alternate in blocks (`--blocks` of `--per-block` requests each), so a machine whose load drifts (a
shared one) weighs on both alike; the figure is the median over blocks of (median `on` - median `off`). It
also times the parts alone, without Django around them: one `metrics.call_observe`, one audit line rendered to
the file, one `logs.bound` block. Prints one JSON document on stdout; progress on stderr; asserts nothing.

    .venv/bin/python benchmarks/bench_overhead.py [--blocks 30] [--per-block 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from common import django_in_new_repo, machine, percentile, progress

HERE = "github.com/org/bench-here"
CALLER = "github.com/org/bench-caller"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=30, help="blocks per mode, alternating (default: %(default)s)")
    parser.add_argument("--per-block", type=int, default=100, help="queries per block (default: %(default)s)")
    parser.add_argument("--issues", type=int, default=200, help="issues in the repository (default: %(default)s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        metrics_dir = Path(tmp) / "metrics"
        metrics_dir.mkdir()
        # As `serve` does before anything imports prometheus_client or reads the settings.
        env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "SUDOCODE_LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
        repo = django_in_new_repo(Path(tmp), env=env)
        from django.conf import settings
        from django.test import Client

        from audit.models import AuditLog
        from federation_site import logs, metrics
        from federation_site.config import default_config, write_config
        from remotes import services as remote_services
        from tracker import services

        config = default_config(url=HERE, display_name="Bench")
        config["rate_limits"]["per_repo"]["queries_per_minute"] = 10**6  # the quotas are not what is measured
        config["policies"]["incoming_requests"]["query"]["rate_limit"]["requests_per_minute"] = 10**6
        write_config(repo / ".sudocode" / "federation.config.json", config)
        _, key = remote_services.remote_add(url=CALLER, actor="bench", trust_level="verified", discover=False)
        progress(f"creating {args.issues} issues")
        for n in range(args.issues):
            services.issue_create(title=f"Issue {n}", actor="bench", priority=n % 5)

        log_path = Path(tmp) / "node.log"
        log_file = log_path.open("a", encoding="utf-8")
        root = logging.getLogger()
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log_file)  # the JSON lines go to a file, as serve's stderr does in production

        real_bound, real_bind = logs.bound, logs.bind

        def mode(on: bool) -> None:
            settings.CLI_PROFILE = not on  # metrics._recording()
            root.setLevel(logging.INFO if on else logging.WARNING)
            logs.bound = real_bound if on else (lambda **fields: contextlib.nullcontext())
            logs.bind = real_bind if on else (lambda **fields: None)

        client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {key}")
        body = json.dumps({"entity": "issue", "filters": {"status": "open"}, "limit": 20})

        def query() -> float:
            started = time.perf_counter()
            response = client.post("/api/v1/federation/query", body, content_type="application/json")
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.content[:300]
            return elapsed

        for on in (True, False):  # warm-up: imports, caches, the first files of the multiprocess folder
            mode(on)
            for _ in range(50):
                query()
        lines_before = _count_lines(log_file, log_path)
        samples: dict[bool, list[float]] = {True: [], False: []}
        differences = []
        progress(f"timing {args.blocks} blocks of {args.per_block} queries in each mode")
        for block in range(args.blocks):
            medians = {}
            for on in (block % 2 == 0, block % 2 == 1):  # alternate which mode goes first
                mode(on)
                times = [query() for _ in range(args.per_block)]
                samples[on] += times
                medians[on] = statistics.median(times)
            differences.append(medians[True] - medians[False])
        lines_written = _count_lines(log_file, log_path) - lines_before
        mode(True)

        # The parts alone.
        def per_call_us(fn, n: int = 20000) -> float:
            started = time.perf_counter()
            for _ in range(n):
                fn()
            return (time.perf_counter() - started) / n * 1e6

        observe_us = per_call_us(
            lambda: metrics.call_observe(
                operation="query", remote=CALLER, direction="incoming", outcome="success", duration_ms=3.0
            )
        )
        audit_logger = logging.getLogger("sudocode.audit")
        fields = {
            "operation": "query",
            "direction": "incoming",
            "remote": CALLER,
            "status": "success",
            "duration_ms": 3,
            "correlation_id": "0" * 32,
            "audit_log_id": "log-0123456789abcdef",
        }
        with logs.bound(correlation_id="0" * 32, remote=CALLER):
            log_line_us = per_call_us(lambda: audit_logger.info("incoming query success", extra=fields), 5000)

        def bind_block() -> None:
            with logs.bound(correlation_id="0" * 32):
                logs.bind(remote=CALLER, request_id="req-1")

        bound_us = per_call_us(bind_block)
        log_file.flush()
        audit_rows = AuditLog.objects.count()

    on, off = samples[True], samples[False]
    print(
        json.dumps(
            {
                "benchmark": "metrics_and_logging_overhead_per_query",
                "target_ms": 0.3,
                "overhead_ms": round(statistics.median(differences), 4),
                "overhead_ms_mean_of_blocks": round(statistics.mean(differences), 4),
                "overhead_ms_blocks_p10_p90": [
                    round(percentile(differences, 0.1), 4),
                    round(percentile(differences, 0.9), 4),
                ],
                "query_ms": {
                    "on_p50": round(percentile(on, 0.5), 3),
                    "off_p50": round(percentile(off, 0.5), 3),
                    "on_p90": round(percentile(on, 0.9), 3),
                    "off_p90": round(percentile(off, 0.9), 3),
                },
                "parts_us": {
                    "metrics_call_observe": round(observe_us, 2),
                    "audit_log_line_json_to_file": round(log_line_us, 2),
                    "log_context_bind_block": round(bound_us, 2),
                    "sum_ms": round((observe_us + log_line_us + bound_us) / 1000, 4),
                },
                "queries_per_mode": len(on),
                "log_lines_per_query_on": round(lines_written / len(on), 2),
                "audit_rows": audit_rows,
                "issues": args.issues,
                "machine": machine(),
            },
            indent=2,
        )
    )


def _count_lines(handle, path: Path) -> int:
    handle.flush()
    with path.open(encoding="utf-8") as fh:
        return sum(1 for _ in fh)


if __name__ == "__main__":
    main()
