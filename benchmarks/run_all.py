"""Every benchmark, one after another, printed as one JSON document (`make bench`).

Each script runs in its own process as `make bench` always ran them; their JSON documents are collected under
`benchmarks`, the machine's load average is taken before and after each, and `issue_16` sets the figures the
performance issue names beside its table: what we measured before the work ("before"), the targets, and the
ratio of ours now to each (`vs_target`: above 1 is better than the target for throughput, below 1 for times).

    .venv/bin/python benchmarks/run_all.py                      # everything, defaults (a quarter of an hour)
    .venv/bin/python benchmarks/run_all.py --quick              # shorter runs of the issue's benchmarks only
    .venv/bin/python benchmarks/run_all.py --only query,tracker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import progress  # noqa: E402

HERE = Path(__file__).resolve().parent

# name -> (script, arguments by default, arguments with --quick)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "tracker": ("bench_tracker.py", [], ["--runs", "8", "--creates", "20", "--imports", "1"]),
    "query": ("bench_query.py", [], ["--duration", "4", "--warmup", "50"]),
    "mutate": (
        "bench_mutate.py",
        ["--dataset", "sudocode-ai__sudocode"],
        ["--dataset", "sudocode-ai__sudocode", "--no-git", "--requests", "100"],
    ),
    "propagation": ("bench_propagation.py", [], ["--changes", "100", "--fanout-rounds", "3", "--profiles", "embedded"]),
    "policy": ("bench_policy.py", [], None),
    "agents": ("bench_agents.py", [], None),
    "query_all": ("bench_query_all.py", [], None),
    "graph": ("bench_graph.py", [], None),
    "search": ("bench_search.py", [], None),
    "metrics": ("bench_metrics.py", [], None),
    "audit": ("bench_audit.py", [], None),
    "overhead": ("bench_overhead.py", [], None),
    "security": ("bench_security.py", [], None),
}

# The issue's table (ours before the work, same machine) and its targets. Throughputs in req/s, times in ms.
ISSUE_16 = {
    "federation_info": {"before_c1_rps": 204, "before_c16_rps": 206, "before_c1_p50_ms": 4.6, "target_rps": 1500},
    "open_issues_default_page": {
        "before_c1_rps": 77,
        "before_c1_p50_ms": 12.6,
        "before_c16_rps": 50,
        "target_c1_p50_ms": 2.0,
        "target_c16_rps": 600,
    },
    "all_issues_limit_50": {
        "before_c1_rps": 65,
        "before_c1_p50_ms": 14.9,
        "before_c16_rps": 45,
        "target_c1_p50_ms": 2.0,
        "target_c16_rps": 600,
    },
    "all_issues_limit_500": {"target_rps": 100},
    "create_issue": {"before_c1_per_s": 19.6, "before_c16_per_s": 17, "target_c16_per_s": 500},
    "cli": {"before_issue_list_ms": 398, "target_list_show_ms": 150, "target_create_ms": 250},
}


def _dig(data: dict | None, *path: str):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _ratio(ours, theirs) -> float | None:
    return round(ours / theirs, 2) if isinstance(ours, (int, float)) and theirs else None


def issue_16(results: dict) -> dict:
    """Our figures now beside the issue's table: each with `vs_before` and `vs_target`."""
    query = _dig(results, "query", "scenarios") or {}
    out: dict = {}
    for name in ("federation_info", "open_issues_default_page", "all_issues_limit_50", "all_issues_limit_500"):
        table = ISSUE_16[name]
        c1, c16 = query.get(name, {}).get("c1", {}), query.get(name, {}).get("c16", {})
        p50 = _dig(c1, "latency_ms", "p50")
        row = {
            "c1_rps": c1.get("throughput_rps"),
            "c1_p50_ms": p50,
            "c16_rps": c16.get("throughput_rps"),
            "c16_p99_ms": _dig(c16, "latency_ms", "p99"),
            "issue_table": table,
            "vs_before": {
                "c1_rps": _ratio(c1.get("throughput_rps"), table.get("before_c1_rps")),
                "c16_rps": _ratio(c16.get("throughput_rps"), table.get("before_c16_rps")),
            },
            "vs_target": {
                "c16_rps": _ratio(c16.get("throughput_rps"), table.get("target_c16_rps") or table.get("target_rps")),
                "c1_p50_ms": _ratio(p50, table.get("target_c1_p50_ms")),
            },
        }
        out[name] = row
    mutate = _dig(results, "mutate", "results", "without_git_commit") or {}
    table = ISSUE_16["create_issue"]
    c1, c16 = (
        mutate.get("concurrency_1", {}).get("requests_per_s"),
        mutate.get("concurrency_16", {}).get("requests_per_s"),
    )
    out["create_issue"] = {
        "c1_per_s": c1,
        "c16_per_s": c16,
        "issue_table": table,
        "vs_before": {"c1": _ratio(c1, table["before_c1_per_s"]), "c16": _ratio(c16, table["before_c16_per_s"])},
        "vs_target": {"c16": _ratio(c16, table["target_c16_per_s"])},
    }
    tracker = results.get("tracker") or {}
    table = ISSUE_16["cli"]
    median = {k: _dig(tracker, f"issue_{k}_ms", "median") for k in ("list", "show", "create")}
    out["cli"] = {
        "median_ms": median,
        # CPU time of each whole process: what the machine's load does not inflate much (wall time it does).
        "cpu_median_ms": {k: _dig(tracker, "cpu_ms", f"issue_{k}", "median") for k in ("list", "show", "create")},
        "issue_table": table,
        "vs_before": {"issue_list": _ratio(median["list"], table["before_issue_list_ms"])},
        "vs_target": {
            "issue_list": _ratio(median["list"], table["target_list_show_ms"]),
            "issue_show": _ratio(median["show"], table["target_list_show_ms"]),
            "issue_create": _ratio(median["create"], table["target_create_ms"]),
        },
    }
    out["peak_memory_mib"] = _dig(results, "query", "peak_memory")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs, and only the issue's benchmarks")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (one of: {', '.join(BENCHMARKS)})")
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "benchmarks": {}, "load": {}}
    for name in names:
        script, normal, quick = BENCHMARKS[name]
        if args.quick and quick is None:
            continue
        load_before = [round(x, 2) for x in os.getloadavg()]
        progress(f"{name}: {script} (load average {load_before[0]})")
        run = subprocess.run(
            [sys.executable, str(HERE / script), *(quick if args.quick else normal)],
            stdout=subprocess.PIPE,
            text=True,
        )
        report["load"][name] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
        try:
            report["benchmarks"][name] = json.loads(run.stdout)
        except ValueError:
            report["benchmarks"][name] = {"error": f"exit {run.returncode}", "stdout": run.stdout[-2000:]}
    report["issue_16"] = issue_16(report["benchmarks"])
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
