"""The JSONL merge driver on real `git merge`s of diverged branches made from sudocode's own data: records added
on both sides kept, changes to different fields of one record both kept, the same field by last write, what
needs a human listed, unchanged lines byte for byte, sudocode's line order (issue 10)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_corpus, git, make_git_repo, run_cli
from tracker import jsonl

pytestmark = pytest.mark.corpus

ISSUES = ".sudocode/issues.jsonl"


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = make_git_repo(tmp_path / "repo")
    copy_corpus("sudocode-ai__sudocode", repo)
    assert run_cli("--repo", str(repo), "init").code == 0  # registers the driver
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "sudocode's issues")
    return repo


def records(repo: Path) -> list[dict]:
    return [json.loads(line) for line in (repo / ISSUES).read_text().splitlines()]


def edit(repo: Path, change) -> None:
    """Rewrite issues.jsonl through `change(records)` as sudocode would (its order, its serialisation)."""
    path = repo / ISSUES
    snapshot = jsonl.read_jsonl(path, "issue")
    before = {r["uuid"]: json.dumps(r) for r in snapshot.records}
    after = change([dict(r) for r in snapshot.records])
    upserts = {r["uuid"]: r for r in after if before.get(r["uuid"]) != json.dumps(r)}
    deletes = set(before) - {r["uuid"] for r in after}
    path.write_bytes(jsonl.render_lines(snapshot, upserts=upserts, deletes=deletes))


def new_issue(issue_id: str, title: str, created_at: str) -> dict:
    return jsonl.new_issue_record(
        id=issue_id,
        uuid=f"00000000-0000-4000-8000-{abs(hash(issue_id)) % 10**12:012d}",
        title=title,
        content="",
        status="open",
        priority=2,
        assignee=None,
        created_at=created_at,
        updated_at=created_at,
        parent_id=None,
        parent_uuid=None,
        relationships=[],
        tags=[],
    )


def on_branch(repo: Path, branch: str, message: str, change) -> None:
    git(repo, "checkout", "-q", branch)
    edit(repo, change)
    git(repo, "commit", "-qam", message)


def set_fields(issue_id: str, **fields):
    def change(rs):
        for r in rs:
            if r["id"] == issue_id:
                r.update(fields)
        return rs

    return change


def test_diverged_branches_merge_by_record_without_conflict_markers(repo):
    original = (repo / ISSUES).read_bytes()
    first, second, third = (r["id"] for r in records(repo)[100:103])
    git(repo, "branch", "theirs")
    on_branch(
        repo,
        "main",
        "ours",
        lambda rs: (
            set_fields(first, title="Ours: a new title", updated_at="2026-11-01T10:00:00.000Z")(rs)
            + [new_issue("i-aaa1", "Added on main", "2026-11-01 10:00:00")]
        ),
    )
    on_branch(
        repo,
        "theirs",
        "theirs",
        lambda rs: (
            set_fields(first, status="closed", updated_at="2026-11-01T11:00:00.000Z")(
                set_fields(second, priority=0, updated_at="2026-11-01T11:00:00.000Z")(rs)
            )
            + [new_issue("i-bbb2", "Added on the other branch", "2026-11-01 11:00:00")]
        ),
    )
    git(repo, "checkout", "-q", "main")

    merged = subprocess.run(["git", "-C", str(repo), "merge", "-q", "theirs", "-m", "merge"], capture_output=True)

    assert merged.returncode == 0, merged.stderr
    lines = (repo / ISSUES).read_text().splitlines()
    assert not [line for line in lines if line.startswith(("<<<<<<<", "=======", ">>>>>>>"))]
    by_id = {r["id"]: r for r in records(repo)}
    assert by_id[first]["title"] == "Ours: a new title" and by_id[first]["status"] == "closed"  # two fields merged
    assert by_id[first]["updated_at"] == "2026-11-01T11:00:00.000Z"
    assert by_id[second]["priority"] == 0
    assert {"i-aaa1", "i-bbb2"} <= set(by_id)
    assert len(by_id) == len(original.splitlines()) + 2
    # Unchanged records are the same bytes, in the same order; the file is in sudocode's order.
    untouched = [line for line in original.splitlines() if json.loads(line)["id"] not in (first, second)]
    merged_lines = set((repo / ISSUES).read_bytes().splitlines())
    assert all(line in merged_lines for line in untouched)
    snapshot = jsonl.read_jsonl(repo / ISSUES, "issue")
    assert list(snapshot.records) == sorted(snapshot.records, key=jsonl.sort_key)
    assert third in by_id


def test_the_same_field_on_both_sides_goes_to_the_later_write_and_a_delete_against_a_change_is_listed(repo):
    target, doomed = (r["id"] for r in records(repo)[200:202])
    git(repo, "branch", "theirs")
    on_branch(repo, "main", "ours", set_fields(target, title="Ours, earlier", updated_at="2026-11-02 09:00:00"))
    on_branch(repo, "theirs", "theirs", set_fields(target, title="Theirs, later", updated_at="2026-11-02 10:00:00"))
    on_branch(repo, "main", "ours 2", set_fields(doomed, title="Changed here", updated_at="2026-11-02 09:30:00"))
    on_branch(repo, "theirs", "theirs 2", lambda rs: [r for r in rs if r["id"] != doomed])
    git(repo, "checkout", "-q", "main")

    merged = subprocess.run(["git", "-C", str(repo), "merge", "theirs", "-m", "merge"], capture_output=True, text=True)

    assert merged.returncode == 0, merged.stderr
    by_id = {r["id"]: r for r in records(repo)}
    assert by_id[target]["title"] == "Theirs, later"
    assert by_id[doomed]["title"] == "Changed here"  # kept, and listed for a human
    assert f"{doomed}: changed on this branch, deleted on the other" in merged.stderr
    [listed] = [json.loads(line) for line in (repo / ".sudocode" / "merge-conflicts.jsonl").read_text().splitlines()]
    assert listed["id"] == doomed and listed["file"] == ISSUES
    checked = run_cli("--repo", str(repo), "doctor")  # and doctor lists it until a human deletes the line
    assert checked.code == 1 and f"{doomed}: changed on this branch, deleted on the other" in checked.out


def test_two_records_given_one_id_on_two_branches_are_both_kept_one_renamed(repo):
    git(repo, "branch", "theirs")
    on_branch(repo, "main", "ours", lambda rs: rs + [new_issue("ISSUE-900", "Ours", "2026-11-03 09:00:00")])
    twin = new_issue("ISSUE-900", "Theirs", "2026-11-03 10:00:00") | {"uuid": "00000000-0000-4000-8000-000000000900"}
    on_branch(repo, "theirs", "theirs", lambda rs: rs + [twin])
    git(repo, "checkout", "-q", "main")

    merged = subprocess.run(["git", "-C", str(repo), "merge", "theirs", "-m", "merge"], capture_output=True, text=True)

    assert merged.returncode == 0, merged.stderr
    by_id = {r["id"]: r["title"] for r in records(repo)}
    assert by_id["ISSUE-900"] == "Ours" and by_id["ISSUE-900.1"] == "Theirs"
    assert "renamed ISSUE-900.1" in merged.stderr


def test_a_version_with_conflict_markers_is_left_to_gits_line_merge(tmp_path):
    base, ours, theirs = (tmp_path / n for n in ("base", "ours", "theirs"))
    line = json.dumps(new_issue("i-aaa1", "x", "2026-11-01 10:00:00"))
    base.write_text(line + "\n")
    ours.write_text("<<<<<<< HEAD\n" + line + "\n=======\n>>>>>>> b\n")
    theirs.write_text(json.dumps(new_issue("i-aaa1", "changed", "2026-11-01 10:00:00")) + "\n")
    result = run_cli("merge-driver", str(base), str(ours), str(theirs), ISSUES)
    assert result.code == 1 and "merging line by line" in result.err
