"""What the benchmark scripts share: where the corpus is, which data set is largest, percentiles, progress."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def corpus_dir() -> Path:
    # Same rule as tests/corpus.py, which imports pytest and so is not for a script.
    configured = os.environ.get("SUDOCODE_CORPUS")
    return Path(configured) if configured else (REPO_ROOT.parent / "shared" / "corpus").resolve()


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def largest_dataset(root: Path) -> str:
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "issues.jsonl").exists()]
    if not folders:
        raise SystemExit(f"no data set with an issues.jsonl in {root}")
    return max(folders, key=lambda p: (count_lines(p / "issues.jsonl"), p.name)).name


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[rank - 1]


def django_in_new_repo(root: Path, *, env: dict[str, str] | None = None) -> Path:
    """A fresh repository `root`/repo (an empty `.sudocode/`) with Django set up on it in this process, on its own
    SQLite database (the embedded default), migrated. `env`: more environment first. Returns the repository."""
    repo = root / "repo"
    (repo / ".sudocode").mkdir(parents=True)
    os.environ["SUDOCODE_REPO"] = str(repo)
    os.environ["DJANGO_SETTINGS_MODULE"] = "federation_site.settings"
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(env or {})
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return repo
