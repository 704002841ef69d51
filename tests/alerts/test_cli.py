"""`sudocode-fed alerts check|list`, run as a real process on the repository's database: a remote that has been
unreachable for an hour fires once; a second check changes nothing; the list shows it."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def fed(repo: Path, *args: str):
    return run_cli("--repo", str(repo), *args)


def test_alerts_check_fires_once_and_list_shows_it(git_repo: Path):
    assert fed(git_repo, "init").code == 0
    assert fed(git_repo, "remote", "add", "github.com/org/api-service", "--no-discover").code == 0, "remote add"
    assert fed(git_repo, "alerts", "list").code == 0  # migrated, nothing yet
    with sqlite3.connect(git_repo / ".sudocode" / "federation.db") as db:
        db.execute(
            "UPDATE remote_repos SET sync_status = 'unreachable', breaker_state = 'open',"
            " last_synced_at = datetime('now', '-1 hour'), last_error = 'connection refused'"
        )
    first = fed(git_repo, "alerts", "check")
    assert first.code == 0, first.err
    assert re.match(r"fired: github.com/org/api-service unreachable for 6[01] min \(circuit breaker open\)", first.out)
    assert fed(git_repo, "alerts", "check").out.strip() == "Nothing changed."
    listed = json.loads(fed(git_repo, "alerts", "list", "--format", "json").out)
    assert [(a["kind"], a["subject"], a["status"]) for a in listed] == [
        ("remote_repo_unreachable", "github.com/org/api-service", "firing")
    ]
    table = fed(git_repo, "alerts", "list").out
    assert "firing" in table and "remote_repo_unreachable" in table
