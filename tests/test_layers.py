"""The layers contracts of pyproject.toml (ARCHITECTURE.md, "Layers") fail on a new wrong import.

`make lint` runs them on the tree as it is; here each case copies the tree, adds one import that breaks a
rule, and checks that import-linter refuses it and names it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _contracts_tree(tmp_path: Path) -> Path:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for package in config["root_packages"]:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))  # the copy, ahead of the installed project
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("module", "added", "named"),
    [
        # the tracker calling up into federation (the hook is tracker.signals.references_changed)
        ("tracker/services.py", "from subscriptions import outgoing", "tracker.services -> subscriptions.outgoing"),
        # the outbox waking webhooks by hand (the hook is events.signals.events_committed)
        ("events/publish.py", "from subscriptions.delivery import wake", "events.publish -> subscriptions.delivery"),
        # two apps of one layer are independent
        ("requests_app/services.py", "from subscriptions import incoming", "requests_app.services -> subscriptions"),
        # audit is a sink
        ("audit/services.py", "from events import selectors", "audit.services -> events.selectors"),
        # a service importing its app's Celery tasks (the hook is requests_app.signals.delivery_due)
        ("requests_app/delivery.py", "from requests_app import tasks", "requests_app.delivery -> requests_app.tasks"),
        # settings calling up (the hook is federation_site.signals.node_state_check)
        (
            "federation_site/middleware.py",
            "from tracker.sync import jsonl_sync",
            "federation_site.middleware -> tracker",
        ),
    ],
)
def test_a_new_import_against_the_layers_fails_the_contracts(tmp_path, module, added, named):
    tree = _contracts_tree(tmp_path)
    assert _lint(tree).returncode == 0, "the tree as it is keeps every contract"
    path = tree / module
    path.write_text(path.read_text() + f"\n{added}  # noqa: E402\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    assert named in " ".join(result.stdout.split()), result.stdout
