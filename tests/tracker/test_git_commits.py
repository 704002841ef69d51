"""What another repository makes us change is committed to git by default, alone, with who asked; while the
repository is mid-merge, mid-rebase or detached the commit waits and is made later. Local edits keep sudocode's
behaviour (no commit) unless `git.auto_commit` says otherwise. Issue 10, fault 4."""

from __future__ import annotations

import pytest

from federation_site.config import default_config, write_config
from tests.conftest import git
from tracker import services
from tracker.models import PendingCommit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def repo(node_repo):
    write_config(
        node_repo / ".sudocode" / "federation.config.json", default_config(url="github.com/org/api", display_name="API")
    )
    (node_repo / "README.md").write_text("hello\n")
    git(node_repo, "add", "-A")
    git(node_repo, "commit", "-qm", "init")
    return node_repo


def commits(repo) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD"))


def remote_create(title: str):
    return services.issue_create(
        title=title, actor="claude-code-agent via github.com/org/frontend (request req-1)", from_remote=True
    )


def test_a_change_from_another_repository_is_committed_by_default_and_only_it(repo):
    (repo / "notes.txt").write_text("the user's own work\n")
    git(repo, "add", "notes.txt")  # staged by the user: must stay staged, uncommitted

    issue = remote_create("Add user profile endpoint")

    assert commits(repo) == 2
    message = git(repo, "log", "-1", "--format=%B")
    assert f"create issue {issue.sudocode_id}: Add user profile endpoint" in message
    assert "req-1" in message and "claude-code-agent" in message and "github.com/org/frontend" in message
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [".sudocode/issues.jsonl"]
    assert git(repo, "diff", "--cached", "--name-only").split() == ["notes.txt"]
    assert not PendingCommit.objects.exists()


def test_a_local_edit_is_not_committed_unless_configured(repo):
    services.issue_create(title="Mine", actor="ana")
    assert commits(repo) == 1 and not PendingCommit.objects.exists()


def _start_a_conflicting_merge(repo) -> None:
    git(repo, "checkout", "-qb", "other")
    (repo / "README.md").write_text("theirs\n")
    git(repo, "commit", "-qam", "theirs")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("ours\n")
    git(repo, "commit", "-qam", "ours")
    with pytest.raises(Exception):  # noqa: B017 (git exits 1 on a conflict)
        git(repo, "merge", "-q", "other")


def test_mid_merge_the_commit_waits_and_is_made_when_the_merge_is_over(repo):
    _start_a_conflicting_merge(repo)
    before = commits(repo)

    first = remote_create("First while merging")
    second = remote_create("Second while merging")

    assert commits(repo) == before  # nothing committed into the user's merge
    assert PendingCommit.objects.count() == 2
    assert "merge is in progress" in PendingCommit.objects.first().last_error
    assert services.git_commit_pending() == 0  # still merging

    git(repo, "merge", "--abort")
    assert services.git_commit_pending() == 2

    assert commits(repo) == before + 1
    message = git(repo, "log", "-1", "--format=%B")
    assert "2 changes" in message and first.sudocode_id in message and second.sudocode_id in message
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == [".sudocode/issues.jsonl"]
    assert not PendingCommit.objects.exists()


def test_on_a_detached_head_the_commit_waits(repo):
    git(repo, "checkout", "-q", "--detach")
    remote_create("While detached")
    assert commits(repo) == 1 and PendingCommit.objects.count() == 1
    assert "detached" in PendingCommit.objects.get().last_error

    git(repo, "checkout", "-q", "main")
    assert services.git_commit_pending() == 1 and commits(repo) == 2
