"""How long the dependency graph takes (issue 13: `deps graph --format json` for 1,000 entities across 5
repositories, cached: under 200 ms in the process).

Builds, in a temp repository with a fresh SQLite database: 200 local issues (chains of `depends-on`, one
`blocks`, one spec they implement), each referencing one issue in each of 4 remotes (`remote_relationships`): 800
remote entities, 1,000 nodes across 5 repositories. Times, in this process, `remotes.graph.dependency_graph` plus
`graph_render(fmt="json")`:

- `graph_json_ms`: `deps graph --format json`: remote nodes from the cached cross-repo references (all fresh);
- `graph_cross_repo_json_ms`: `deps graph --cross-repo --format json` with the remotes' answers in the cache: every
  remote node expanded (each remote issue depends on the next one of its remote, and every 50th on a local
  issue: cycles across repositories), after one cold run against fake remotes (answering in-process, not timed)
  that counts the queries sent.

Prints one JSON document on stdout; progress goes to stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_graph.py [--runs N] [--local N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, django_in_new_repo, percentile, progress

sys.path.insert(0, str(REPO_ROOT))

HERE = "github.com/org/bench"
REMOTES = [f"github.com/org/remote-{i}" for i in range(1, 5)]


def figures(values: list[float]) -> dict:
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "p90": round(percentile(values, 0.9), 1),
        "max": round(max(values), 1),
    }


def remote_id(n: int) -> str:
    return f"issue-{n + 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each (default: %(default)s)")
    parser.add_argument("--local", type=int, default=200, help="local issues; each references 4 remote ones")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        repo = django_in_new_repo(Path(tmp))
        from django.utils import timezone

        from federation_site.config import default_config, write_config
        from remotes import services as remote_services
        from remotes.graph import dependency_graph, graph_render
        from remotes.models import CrossRepoReference
        from tracker import services

        config = default_config(url=HERE, display_name="Bench")
        config["remote_repos"] = [
            {"url": url, "display_name": url.rsplit("/", 1)[1], "trust_level": "verified", "endpoint": f"http://{i}.test/api/v1"}
            for i, url in enumerate(REMOTES)
        ]  # fmt: skip
        write_config(repo / ".sudocode" / "federation.config.json", config)
        remote_services.remotes_reconcile(force=True)

        progress(f"creating {args.local} local issues referencing {4 * args.local} remote ones")
        spec = services.spec_create(title="Platform v2", actor="bench")
        local_ids: list[str] = []
        for n in range(args.local):
            rels = [("implements", spec.sudocode_id)]
            if n % 10:  # chains of ten
                rels.append(("depends-on", local_ids[-1]))
            remote_rels = [
                {"type": "depends-on" if n % 3 else "related", "remote_repo": url, "remote_id": remote_id(n),
                 "canonical_ref": f"{url.split('/', 1)[1]}#{remote_id(n)}"}
                for url in REMOTES
            ]  # fmt: skip
            issue = services.issue_create(
                title=f"Local work {n}", actor="bench", relationships=rels, remote_relationships=remote_rels
            )
            local_ids.append(issue.sudocode_id)
        remote_services.references_rebuild()
        now = timezone.now()
        CrossRepoReference.objects.update(
            cached_data={"title": "Remote work", "status": "in_progress", "priority": 2, "updated_at": "2026-01-01"},
            last_fetched_at=now,
            fetch_status="success",
        )

        def one(cross_repo: bool) -> tuple[float, dict]:
            started = time.perf_counter()
            graph = dependency_graph(cross_repo=cross_repo)
            graph_render(graph, fmt="json")
            return (time.perf_counter() - started) * 1000, graph

        _, graph = one(False)
        assert len(graph["nodes"]) == args.local * 5 + 1, len(graph["nodes"])
        progress(f"{len(graph['nodes'])} nodes, {len(graph['edges'])} edges: timing {args.runs} runs")
        local_runs = [one(False)[0] for _ in range(args.runs)]

        queries: list[tuple[str, int]] = []

        def fake_query(*, remote, query, correlation_id=None):
            queries.append((remote.url, len(query["filters"]["ids"])))
            results = []
            for entity_id in query["filters"]["ids"]:
                n = int(entity_id.rsplit("-", 1)[1]) - 1
                rels = [{"from": entity_id, "from_type": "issue", "to": remote_id((n + 1) % args.local),
                         "to_type": "issue", "type": "depends-on"}] if n % 10 != 9 else []  # fmt: skip
                back = []
                if n % 50 == 0:  # back to one of ours: a cycle through two repositories
                    back = [{"type": "depends-on", "remote_repo": HERE, "remote_id": local_ids[n],
                             "remote_entity_type": "issue", "canonical_ref": f"org/bench#{local_ids[n]}"}]  # fmt: skip
                results.append(
                    {"id": entity_id, "uuid": f"{remote.url}-{entity_id}", "kind": "issue", "title": "Remote work",
                     "status": "open", "relationships": rels, "remote_relationships": back}
                )  # fmt: skip
            return {"type": "query_response", "results": results}

        import remotes.sync

        real_query = remotes.sync.remote_query
        remotes.sync.remote_query = fake_query
        try:
            cold_ms, cold = one(True)
            cold_queries = len(queries)
            cross_runs = [one(True)[0] for _ in range(args.runs)]
            assert len(queries) == cold_queries, "the warm runs queried a remote"
        finally:
            remotes.sync.remote_query = real_query

    print(
        json.dumps(
            {
                "benchmark": "deps_graph",
                "target_ms": 200,
                "entities": len(graph["nodes"]),
                "repositories": len({n["repo"] for n in graph["nodes"]}),
                "edges": len(graph["edges"]),
                "graph_json_ms": figures(local_runs),
                "graph_cross_repo_json_ms": figures(cross_runs),
                "cross_repo": {
                    "entities": len(cold["nodes"]),
                    "edges": len(cold["edges"]),
                    "cycles": len(cold["cycles"]),
                    "cold_run_ms_fake_remotes": round(cold_ms, 1),
                    "queries_cold": cold_queries,
                    "queries_warm": len(queries) - cold_queries,
                },
                "runs": args.runs,
                "python": platform.python_version(),
                "database": "sqlite",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
