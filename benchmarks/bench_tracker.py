"""How fast the tracker is on real sudocode data, next to sudocode's own CLI.

Measures, on one data set of the corpus (default: the one with the most issues):
- importing its JSONL files into an empty database, in this process (`jsonl_sync(force=True)`), and as the first
  `sudocode-fed issue list` on a fresh copy (migrations and import included);
- whole-process wall time of `issue list`, `issue show` and `issue create` through the installed console script.

Prints one JSON document on stdout; progress goes to stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_tracker.py [--dataset NAME] [--runs N] [--creates N] [--imports N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import corpus_dir, count_lines, largest_dataset, percentile, progress  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
CLI = REPO_ROOT / ".venv" / "bin" / "sudocode-fed"
# What sudocode's own CLI (Node) takes on its 676-issue repository on this machine, measured by hand.
REFERENCE_MS = {"issue_list": 170, "issue_show": 170, "issue_create": 330}
REFERENCE_NOTE = "sudocode's own CLI (Node), sudocode-ai/sudocode repository (676 issues), this machine"
# Variables that would point a CLI run at another database, settings module or repository; and one that keeps
# Python from writing .pyc files, so that every run would compile our modules again (~15-50 ms) where an
# installed package has them (the warm-up runs below write them, into the gitignored __pycache__ folders).
_FOREIGN_ENV = (
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "SUDOCODE_REPO",
    "SUDOCODE_FED_CLI",
    "PYTHONDONTWRITEBYTECODE",
)


# --- the corpus and temp repositories -------------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)


def fresh_repo(parent: Path, name: str, dataset: Path) -> Path:
    """A git repository holding a copy of the data set's `.sudocode/*.jsonl`, and nothing of ours yet."""
    repo = parent / name
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Bench User")
    git(repo, "config", "user.email", "bench@example.com")
    owner, _, repo_name = dataset.name.partition("__")
    git(repo, "remote", "add", "origin", f"git@github.com:{owner}/{repo_name or owner}.git")
    (repo / ".sudocode").mkdir()
    for name in ("issues.jsonl", "specs.jsonl"):
        if (dataset / name).exists():
            shutil.copyfile(dataset / name, repo / ".sudocode" / name)
    return repo


def issue_with_most_relationships(issues_jsonl: Path) -> tuple[str, int]:
    best, most = "", -1
    with issues_jsonl.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                record = json.loads(line)
                count = len(record.get("relationships") or [])
                if count > most:
                    best, most = record["id"], count
    return best, most


# --- running the CLI --------------------------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env["COLUMNS"] = "200"
    return env


def run_cli(repo: Path, *args: str, stdout=subprocess.DEVNULL) -> tuple[float, str, float]:
    """One whole `sudocode-fed` process: its wall time in ms, its stdout when asked for, and the CPU time (user +
    system, ms) it and the processes it waited for (git) used: the figure to trust on a loaded machine."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [str(CLI), "--repo", str(repo), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=repo,
    )
    elapsed = (time.perf_counter() - started) * 1000
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime) * 1000
    if result.returncode != 0:
        raise SystemExit(f"`sudocode-fed {' '.join(args)}` failed ({result.returncode}):\n{result.stderr}")
    return elapsed, result.stdout if stdout is subprocess.PIPE else "", cpu


def init_node(repo: Path) -> None:
    """`sudocode-fed init`: a federation config (git.auto_commit off by default) and secrets; no database yet."""
    run_cli(repo, "init")


# --- figures ----------------------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    return {
        "runs": len(values),
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "p90": round(percentile(values, 0.9), 1),
        "max": round(max(values), 1),
    }


def timed_runs(label: str, runs: int, once: Callable[[], tuple[float, str, float]]) -> tuple[list[float], list[float]]:
    """`runs` calls of `once` (a `run_cli`): their wall times and their CPU times, in ms."""
    times, cpu = [], []
    for i in range(runs):
        wall, _, cpu_ms = once()
        times.append(wall)
        cpu.append(cpu_ms)
        if (i + 1) % 10 == 0 or i + 1 == runs:
            progress(f"{label}: {i + 1}/{runs}")
    return times, cpu


# --- the measurements -------------------------------------------------------------------------------------------


def bench_first_cli_run(tmp: Path, dataset: Path, count: int) -> list[float]:
    times = []
    for i in range(count):
        repo = fresh_repo(tmp, f"first-run-{i}", dataset)
        init_node(repo)
        times.append(run_cli(repo, "issue", "list")[0])
        progress(f"first `issue list` on fresh repo {i + 1}/{count}: {times[-1]:.0f} ms")
        shutil.rmtree(repo)
    return times


def bench_import_in_process(tmp: Path, dataset: Path, count: int) -> tuple[list[float], dict]:
    """Configure Django in this process for one temp repository; before each run, drop its database and
    migrate a new one (not timed), then time `jsonl_sync(force=True)` into it."""
    repo = fresh_repo(tmp, "import", dataset)
    os.environ["SUDOCODE_REPO"] = str(repo)
    os.environ["DJANGO_SETTINGS_MODULE"] = "federation_site.settings"
    os.environ["SUDOCODE_FED_CLI"] = "1"
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from federation_site.node import RepoLayout
    from tracker import sync
    from tracker.models import ContentRef, Entity, Relationship, Tag

    db_path = RepoLayout(repo).db_path
    times = []
    for i in range(count):
        connections.close_all()
        for leftover in db_path.parent.glob(db_path.name + "*"):  # the database and its -wal/-shm files
            leftover.unlink()
        call_command("migrate", verbosity=0, interactive=False)
        sync._seen.clear()
        started = time.perf_counter()
        result = sync.jsonl_sync(force=True)
        times.append((time.perf_counter() - started) * 1000)
        progress(f"in-process import {i + 1}/{count}: {times[-1]:.0f} ms ({len(result.created)} entities)")
    rows = {
        "entities": Entity.objects.count(),
        "tags": Tag.objects.count(),
        "relationships": Relationship.objects.count(),
        "content_refs": ContentRef.objects.count(),
    }
    connections.close_all()
    return times, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time the tracker (import, issue list/show/create through the CLI) on a corpus data set "
        "and print the figures as one JSON document.",
    )
    parser.add_argument("--dataset", help="a folder of the corpus (default: the one with the most issues)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs of issue list and show (default 20)")
    parser.add_argument("--creates", type=int, default=100, help="issues to create, one process each (default 100)")
    parser.add_argument("--imports", type=int, default=5, help="fresh databases to import into (default 5)")
    args = parser.parse_args(argv)
    if min(args.runs, args.creates, args.imports) < 1:
        parser.error("--runs, --creates and --imports must be at least 1")
    if not CLI.exists():
        parser.error(f"{CLI} is missing: run `make install` first")

    root = corpus_dir()
    if not root.is_dir():
        parser.error(f"no corpus at {root} (set SUDOCODE_CORPUS)")
    name = args.dataset or largest_dataset(root)
    dataset = root / name
    if not (dataset / "issues.jsonl").exists():
        parser.error(f"{dataset} has no issues.jsonl")
    show_id, show_rels = issue_with_most_relationships(dataset / "issues.jsonl")
    progress(f"data set {name}; `issue show` uses {show_id} ({show_rels} relationships)")

    with tempfile.TemporaryDirectory(prefix="sudocode-bench-") as tmp_name:
        tmp = Path(tmp_name)
        first_run = bench_first_cli_run(tmp, dataset, args.imports)

        repo = fresh_repo(tmp, "bench", dataset)
        init_node(repo)
        run_cli(repo, "issue", "list")  # migrations and import happen here, untimed
        status = json.loads(run_cli(repo, "status", "--format", "json", stdout=subprocess.PIPE)[1])

        run_cli(repo, "issue", "list")  # warm-up: the OS file cache, .pyc files
        list_ms, list_cpu = timed_runs("issue list", args.runs, lambda: run_cli(repo, "issue", "list"))
        run_cli(repo, "issue", "show", show_id)
        show_ms, show_cpu = timed_runs("issue show", args.runs, lambda: run_cli(repo, "issue", "show", show_id))

        numbers = iter(range(1, args.creates + 1))

        def create_one() -> tuple[float, str, float]:
            return run_cli(repo, "issue", "create", f"Bench {next(numbers)}", "-p", "2", "--tags", "bench")

        create_ms, create_cpu = timed_runs("issue create", args.creates, create_one)
        issues_after = count_lines(repo / ".sudocode" / "issues.jsonl")

        # Last: it configures Django in this process, which nothing above needs.
        import_ms, db_rows = bench_import_in_process(tmp, dataset, args.imports)

    import django

    report = {
        "dataset": name,
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "django": django.get_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "database": "sqlite (the repository's .sudocode/federation.db)",
        },
        "records": {
            "issues": count_lines(dataset / "issues.jsonl"),
            "specs": count_lines(dataset / "specs.jsonl"),
            "db_rows_after_import": db_rows,
            "issues_after_creates": issues_after,
        },
        "setup": {
            "federation_configured": status["configured"],
            "git_auto_commit": status["git_auto_commit"],
            "issue_show_id": show_id,
            "issue_show_relationships": show_rels,
            "cli": str(CLI.relative_to(REPO_ROOT)),
        },
        "unit": "ms",
        "import_fresh_ms": summary(import_ms),
        "import_first_cli_run_ms": summary(first_run),
        "issue_list_ms": summary(list_ms),
        "issue_show_ms": summary(show_ms),
        "issue_create_ms": {**summary(create_ms), "total_s": round(sum(create_ms) / 1000, 2)},
        "cpu_ms": {
            "issue_list": summary(list_cpu),
            "issue_show": summary(show_cpu),
            "issue_create": summary(create_cpu),
        },
        "load_average": os.getloadavg(),
        "reference": {"source": REFERENCE_NOTE, **{f"{k}_ms": v for k, v in REFERENCE_MS.items()}},
        "median_vs_reference": {
            k: round(statistics.median(v) / REFERENCE_MS[k], 2)
            for k, v in (("issue_list", list_ms), ("issue_show", show_ms), ("issue_create", create_ms))
        },
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
