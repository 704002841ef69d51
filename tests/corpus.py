"""Where the real sudocode data (shared/corpus) lives, for tests that read it.

The corpus sits next to the repository in this workplace (`<repo>/../shared/corpus`) or wherever
`SUDOCODE_CORPUS` points. Tests that need it call `require_corpus()`: without it they are skipped, unless
`FEDERATION_REQUIRE_SERVICES=1` (CI), where a missing corpus fails the run instead of silently passing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
KIND_BY_FILENAME = {"issues.jsonl": "issue", "specs.jsonl": "spec"}


def corpus_dir() -> Path:
    configured = os.environ.get("SUDOCODE_CORPUS")
    if configured:
        return Path(configured)
    return (REPO_ROOT.parent / "shared" / "corpus").resolve()


def require_corpus() -> Path:
    path = corpus_dir()
    if path.is_dir():
        return path
    message = f"sudocode corpus missing at {path} (set SUDOCODE_CORPUS to its folder)"
    if os.environ.get("FEDERATION_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def corpus_files() -> list[tuple[Path, str]]:
    """Every issues.jsonl/specs.jsonl in the corpus, history snapshots included, with its kind."""
    root = corpus_dir()
    if not root.is_dir():
        return []
    found = [
        (path, KIND_BY_FILENAME[path.name]) for name in KIND_BY_FILENAME for path in root.rglob(name) if path.is_file()
    ]
    return sorted(found)
