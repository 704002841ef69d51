"""`remote query-all` over many nodes next to one query to one node (issue 13: wall time within 2x of one query).

Every node runs on this machine, so the fan-out competes with the nodes it asks for the same cores: on 2 cores its
floor is the nodes' CPU time, not one round trip; `the_same_queries_one_after_another` shows what the parallelism
saves. Starts `--nodes` nodes (`sudocode-fed serve --no-worker`, each on a fresh repository with `--issues` issues
tagged `platform-migration`) and a hub linked to all of them at trust level verified. Then, in the hub's process
(Django set up on the hub's repository, as the CLI runs), times one `remotes.sync.remote_query` to one node and one
`remotes.sync.remotes_query_all` to all of them, `--runs` times each after a warm-up, with the same query. Prints
one JSON document on stdout; progress goes to stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_query_all.py [--nodes 10] [--runs 30] [--issues 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import percentile, progress  # noqa: E402

from tests.nodes import Node, link  # noqa: E402

QUERY = {"entity": "issue", "filters": {"labels": ["platform-migration"]}}


def fill(node: Node, issues: int) -> None:
    lines = []
    for n in range(issues):
        status = ("open", "in_progress", "closed")[n % 3]
        lines.append(
            json.dumps(
                {
                    "id": f"i-{node.name[:4]}{n:04d}",
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{node.name}/{n}")),
                    "title": f"Migrate part {n}",
                    "content": "",
                    "status": status,
                    "priority": 2,
                    "created_at": "2026-11-01 10:00:00",
                    "updated_at": "2026-11-01 10:00:00",
                    "relationships": [],
                    "tags": ["platform-migration"],
                }  # fmt: skip
            )
        )
    (node.repo / ".sudocode" / "issues.jsonl").write_text("\n".join(lines) + "\n")


def figures(samples: list[float]) -> dict:
    return {
        "runs": len(samples),
        "min_ms": round(min(samples), 2),
        "p50_ms": round(percentile(samples, 0.5), 2),
        "p90_ms": round(percentile(samples, 0.9), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10, help="remote nodes (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each (default: %(default)s)")
    parser.add_argument("--issues", type=int, default=20, help="matching issues per node (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hub = Node(root, "platform", worker=False)
        nodes = [Node(root, f"service-{n:02d}", worker=False) for n in range(args.nodes)]
        for node in nodes:
            fill(node, args.issues)
        progress(f"starting {args.nodes + 1} nodes ...")
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(Node.start, [hub, *nodes]))
        try:
            for node in nodes:
                link(hub, node, trust="verified")
            os.environ["SUDOCODE_REPO"] = str(hub.repo)
            os.environ["DJANGO_SETTINGS_MODULE"] = "federation_site.settings"
            os.environ.pop("DATABASE_URL", None)
            from sudocode_cli import runtime

            runtime.setup(str(hub.repo))
            from remotes.models import RemoteRepo
            from remotes.sync import remote_query, remotes_query_all

            one = RemoteRepo.objects.get(url=nodes[0].identity)
            body = {**QUERY, "limit": 500}
            everyone = list(RemoteRepo.objects.order_by("url"))
            single, fan_out, one_by_one = [], [], []
            for run in range(args.runs + 2):
                started = time.perf_counter()
                for remote in everyone:
                    remote_query(remote=remote, query=body)
                sequential_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                page = remote_query(remote=one, query=body)
                single_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                answer = remotes_query_all(query=QUERY)
                all_ms = (time.perf_counter() - started) * 1000
                assert len(page["results"]) == args.issues
                assert answer["total"] == args.issues * args.nodes, answer["remotes"]
                if run >= 2:
                    single.append(single_ms)
                    fan_out.append(all_ms)
                    one_by_one.append(sequential_ms)
        finally:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(Node.stop, [hub, *nodes]))
    one_query, query_all = figures(single), figures(fan_out)
    print(
        json.dumps(
            {
                "benchmark": "remote query-all over many nodes vs one query to one node",
                "nodes": args.nodes,
                "issues_per_node": args.issues,
                "one_query": one_query,
                "query_all": query_all,
                "the_same_queries_one_after_another": figures(one_by_one),
                "ratio_p50": round(query_all["p50_ms"] / one_query["p50_ms"], 2),
                "target": "query_all within 2x of one query (issue 13)",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
