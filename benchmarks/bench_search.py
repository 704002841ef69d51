"""Full-text search over sudocode's own data (issue 13: p50 under 10 ms locally).

Imports one corpus data set (default: the largest, `sudocode-ai__sudocode`: 676 issues, 75 specs) into a fresh
SQLite database (the embedded default: FTS5), then times
`tracker.search.search_ranked` (the ranking alone) and `tracker.selectors.entity_search(search=...)` (what a
federated query with the `search` filter does: ranking plus the entities) in this process, for a fixed set of
queries, `--rounds` times each. Prints one JSON document on stdout; progress goes to stderr.

    .venv/bin/python benchmarks/bench_search.py [--rounds 50] [--dataset NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, corpus_dir, django_in_new_repo, largest_dataset, percentile, progress

sys.path.insert(0, str(REPO_ROOT))

QUERIES = ["authentication", "merge conflict", "agent execution", "websocket", "sync", "spec relationship",
           "error handling in the cli", "feedback"]  # fmt: skip


def figures(samples: list[float]) -> dict:
    return {
        "calls": len(samples),
        "p50_ms": round(percentile(samples, 0.5), 3),
        "p90_ms": round(percentile(samples, 0.9), 3),
        "max_ms": round(max(samples), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50, help="rounds over the queries (default: %(default)s)")
    parser.add_argument("--dataset", help="corpus data set (default: the one with the most issues)")
    args = parser.parse_args()
    dataset = args.dataset or largest_dataset(corpus_dir())
    with tempfile.TemporaryDirectory() as tmp:
        repo = django_in_new_repo(Path(tmp))
        for name in ("issues.jsonl", "specs.jsonl"):
            shutil.copyfile(corpus_dir() / dataset / name, repo / ".sudocode" / name)
        from django.db import connection

        from tracker.models import Entity
        from tracker.search import search_ranked
        from tracker.selectors import entity_search
        from tracker.sync import jsonl_sync

        progress(f"importing {dataset} ...")
        jsonl_sync(force=True)
        issues = Entity.objects.filter(kind="issue").count()
        ranked, full, hits = [], [], {}
        for _ in range(args.rounds):
            for query in QUERIES:
                started = time.perf_counter()
                found = search_ranked(query, kind="issue")
                ranked.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                page, total = entity_search(kind="issue", search=query, limit=50)
                full.append((time.perf_counter() - started) * 1000)
                hits[query] = total
                assert len(found) == total
        backend = connection.vendor
    print(
        json.dumps(
            {
                "benchmark": "full-text search over one repository's issues",
                "dataset": dataset,
                "issues": issues,
                "database": backend,
                "matches_per_query": hits,
                "search_ranked": figures(ranked),
                "entity_search_page_of_50": figures(full),
                "target": "p50 under 10 ms (issue 13)",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
