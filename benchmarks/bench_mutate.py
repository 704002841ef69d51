"""Auto-approved create_issue throughput, node to node over real HTTP.

A real node (`sudocode-fed serve`: daphne, worker, beat) trusts the calling remote with
`permissions.mutate.allowed`, so every mutate message is carried out at once: the issue is written through to
`.sudocode/issues.jsonl` (atomic rewrite, fsync), the request and its audit rows are stored, and, in the
"with git" scenarios, the JSONL is committed. Prints one JSON document; progress goes to stderr.

    .venv/bin/python benchmarks/bench_mutate.py [--requests N] [--dataset NAME|none]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.test_settings")

import requests  # noqa: E402
from common import cpu_seconds, peak_memory, percentile, progress  # noqa: E402

from tests.nodes import Node, link  # noqa: E402

REFERENCE = {
    "source": "sudocode's federation prototype on this machine: ~1,000 auto-approved create_issue/s, but it "
    "creates nothing (its auto-approve only sets a flag)",
    "requests_per_s": 1000,
    "target_requests_per_s": 500,
}


def message(sender: str, to: str, n: int) -> dict:
    return {
        "type": "mutate",
        "from": sender,
        "to": to,
        "operation": "create_issue",
        "data": {
            "title": f"Benchmark issue {n}",
            "description": "Created by bench_mutate.",
            "priority": 2,
            "labels": ["bench"],
        },
        "metadata": {"request_id": f"req-{uuid.uuid4().hex[:16]}", "requester": "bench"},
    }


def run(node: Node, sender: Node, key: str, total: int, concurrency: int) -> dict:
    """`total` create_issue messages from `concurrency` clients. Figures: requests/s (wall clock: trust it only on
    an idle machine), latency, and the server's CPU per request, which load on the machine does not inflate:
    its web processes' alone and the whole node's (web processes, `serve`, the Celery worker and beat)."""
    url = f"{node.api}/federation/mutate"
    latencies: list[float] = []
    errors: list[str] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            started = time.perf_counter()
            response = session.post(url, json=message(sender.identity, node.identity, n), timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            status = response.json().get("status") if response.status_code == 200 else str(response.status_code)
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                if status != "completed":
                    errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    web_cpu, node_cpu = cpu_seconds(node.proc.pid, kind="web (daphne)"), cpu_seconds(node.proc.pid)
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    web_cpu_after, node_cpu_after = cpu_seconds(node.proc.pid, kind="web (daphne)"), cpu_seconds(node.proc.pid)
    return {
        "requests": total,
        "concurrency": concurrency,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "answers": statuses,
        "requests_per_s": round(total / wall, 1),
        "server_cpu_ms_per_request": _per_request(web_cpu, web_cpu_after, total),
        "node_cpu_ms_per_request": _per_request(node_cpu, node_cpu_after, total),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies), 1),
        },
    }


def _per_request(before: float | None, after: float | None, total: int) -> float | None:
    return None if before is None or after is None else round((after - before) * 1000 / total, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="create_issue requests per scenario (300)")
    parser.add_argument(
        "--dataset",
        default="none",
        help="corpus data set the receiving repository starts with (default: none, an empty one; "
        "e.g. sudocode-ai__sudocode for 676 issues)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="web processes (`serve --workers`; default: cores)"
    )
    parser.add_argument("--no-git", action="store_true", help="only the scenario without git commits")
    args = parser.parse_args()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for git_commit in (False,) if args.no_git else (False, True):
            name = "with_git_commit" if git_commit else "without_git_commit"
            api = Node(
                root / name,
                "api-service",
                dataset=None if args.dataset == "none" else args.dataset,
                workers=args.workers,
            )
            caller = Node(root / name, "frontend")
            config = api.config()
            # Both switches: a create asked for by another repository is committed by `commit_remote_changes`
            # (on by default), whatever `auto_commit` says.
            config["git"]["auto_commit"] = config["git"]["commit_remote_changes"] = git_commit
            api.write_config(config)
            api.start()
            try:
                key = link(caller, api, trust="trusted")
                config = api.config()
                for remote in config["remote_repos"]:
                    remote.setdefault("permissions", {})["mutate"] = {"allowed": True}
                config["rate_limits"]["per_repo"]["mutations_per_hour"] = 10**9
                api.write_config(config)
                run(api, caller, key, 10, 1)  # warm-up
                results[name] = {}
                for concurrency in (1, 16):
                    progress(f"{name}, concurrency {concurrency}: {args.requests} create_issue requests ...")
                    results[name][f"concurrency_{concurrency}"] = run(api, caller, key, args.requests, concurrency)
                results[name]["peak_memory"] = peak_memory(api.proc.pid)
                lines = (api.repo / ".sudocode" / "issues.jsonl").read_text().splitlines()
                results[name]["issues_in_jsonl_after"] = len(lines)
                if git_commit:
                    import subprocess

                    count = subprocess.run(
                        ["git", "-C", str(api.repo), "rev-list", "--count", "HEAD"], capture_output=True, text=True
                    ).stdout.strip()
                    results[name]["git_commits"] = int(count or 0)
            finally:
                api.stop()
    print(
        json.dumps(
            {
                "benchmark": f"auto-approved create_issue, node to node over HTTP (serve --workers {args.workers})",
                "dataset": args.dataset,
                "machine": {
                    "python": platform.python_version(),
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                    "load_average_at_start": load_at_start,
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                },
                "results": results,
                "reference": REFERENCE,
                "note": "each request: auth, validation, policy, request row, write-through of the JSONL (lock, "
                "read, render, atomic replace with fsync), audit rows; with git: plus `git add` + `git commit`",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
