"""Two processes writing the same repository at the same time lose nothing."""

import json
import subprocess
import sys

import pytest

from tests.conftest import cli_env, run_cli


@pytest.mark.slow
def test_two_processes_creating_200_issues_each_end_with_400(git_repo):
    assert run_cli("--repo", str(git_repo), "init").code == 0
    assert run_cli("--repo", str(git_repo), "status").code == 0  # schema in place before the race
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.tracker.concurrent_writer", str(git_repo), "200", name],
            env=cli_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err

    records = [json.loads(line) for line in (git_repo / ".sudocode" / "issues.jsonl").read_text().splitlines()]
    assert len(records) == 400
    assert len({r["uuid"] for r in records}) == 400
    assert len({r["id"] for r in records}) == 400
    titles = {r["title"] for r in records}
    assert titles == {f"{n} {i}" for n in ("alpha", "beta") for i in range(200)}
    assert records == sorted(records, key=lambda r: (r["created_at"], r["id"]))

    listed = run_cli("--repo", str(git_repo), "issue", "list", "--format", "json")
    assert listed.code == 0, listed.err
    assert len(json.loads(listed.out)) == 400
