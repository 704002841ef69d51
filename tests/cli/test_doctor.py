"""`sudocode-fed doctor` lists what is wrong in a repository's data and config, reading the files themselves;
`--fix` repairs a duplicated id as one commit (issue 10)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import git, make_git_repo, run_cli


@pytest.fixture
def repo(tmp_path):
    repo = make_git_repo(tmp_path / "repo")
    assert run_cli("--repo", str(repo), "init").code == 0
    for title in ("Parent", "Child", "Third"):
        assert run_cli("--repo", str(repo), "issue", "create", title).code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    return repo


def doctor(repo, *args):
    return run_cli("--repo", str(repo), "doctor", *args)


def lines(repo) -> list[dict]:
    return [json.loads(line) for line in (repo / ".sudocode" / "issues.jsonl").read_text().splitlines() if line]


def test_a_healthy_repository_has_no_problems(repo):
    result = doctor(repo)
    assert (result.code, result.out.strip()) == (0, "No problems found.")


def test_it_lists_each_kind_of_problem_with_its_lines(repo):
    path = repo / ".sudocode" / "issues.jsonl"
    parent, child, third = lines(repo)
    twin = dict(child, uuid="00000000-0000-4000-8000-000000000001", title="Twin")
    broken = dict(third, content="Needs [[i-nope]] and [[acme/unknown#issue-1]]")
    path.write_text("\n".join(json.dumps(r) for r in (parent, child, twin, broken)) + "\n{not json\n")

    result = doctor(repo, "--format", "json")

    assert result.code == 1
    found = {(p["code"], tuple(p["lines"])) for p in json.loads(result.out)["problems"]}
    assert ("duplicate_id", (2, 3)) in found
    assert ("malformed", (5,)) in found
    assert ("broken_reference", (4,)) in found
    assert ("unknown_remote", (4,)) in found


def test_conflict_markers_are_one_problem_naming_the_lines(repo):
    path = repo / ".sudocode" / "issues.jsonl"
    first, second, third = path.read_text().splitlines()
    path.write_text("\n".join([first, "<<<<<<< HEAD", second, "=======", second, ">>>>>>> other", third]) + "\n")
    result = doctor(repo)
    assert result.code == 1
    assert "issues.jsonl:2,6: unresolved git merge conflict at lines 2-6" in result.out
    assert "duplicate" not in result.out  # both versions of the record are the conflict, not another problem


def test_fix_gives_the_later_twin_a_new_id_and_its_children_follow_in_one_commit(repo):
    path = repo / ".sudocode" / "issues.jsonl"
    parent, child, third = lines(repo)
    twin = dict(parent, uuid="00000000-0000-4000-8000-000000000002", title="Twin of the parent")
    kid = dict(third, parent_id=parent["id"], parent_uuid=twin["uuid"])  # the twin's child, by uuid
    path.write_text("\n".join(json.dumps(r) for r in (parent, child, twin, kid)) + "\n")
    git(repo, "commit", "-qam", "a merge kept both")
    commits = git(repo, "rev-list", "--count", "HEAD")

    result = doctor(repo, "--fix")

    assert result.code == 0, result.out + result.err
    assert "is now" in result.out and "No problems found." in result.out
    by_uuid = {r["uuid"]: r for r in lines(repo)}
    new_id = by_uuid[twin["uuid"]]["id"]
    assert new_id != parent["id"] and new_id.startswith("i-")
    assert by_uuid[parent["uuid"]]["id"] == parent["id"]  # the first keeps its id
    assert by_uuid[kid["uuid"]]["parent_id"] == new_id
    assert int(git(repo, "rev-list", "--count", "HEAD")) == int(commits) + 1
    assert "doctor --fix" in git(repo, "log", "-1", "--format=%s")
    assert run_cli("--repo", str(repo), "issue", "show", new_id).code == 0  # the node reads it again
