"""Committing the tracker's files to git: git stays the durable record of every change."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


class GitError(Exception):
    pass


class GitBusy(GitError):
    """The repository is in the middle of something a commit must not cut into (a merge, a rebase, a
    cherry-pick, a detached HEAD, another git's index lock): commit later."""


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


@functools.cache
def _identity_args(repo: Path) -> tuple[str, ...]:
    # A fresh machine or CI may have no git identity: commit as the tool rather than fail.
    has_name = _git(repo, "config", "user.name", check=False).stdout.strip()
    has_email = _git(repo, "config", "user.email", check=False).stdout.strip()
    args: list[str] = []
    if not has_name:
        args += ["-c", "user.name=sudocode-fed"]
    if not has_email:
        args += ["-c", "user.email=sudocode-fed@localhost"]
    return tuple(args)


def is_git_repo(repo: Path) -> bool:
    return _git(repo, "rev-parse", "--git-dir", check=False).returncode == 0


def git_user(repo: Path) -> str:
    return _git(repo, "config", "user.name", check=False).stdout.strip()


def origin_url(repo: Path) -> str:
    return _git(repo, "remote", "get-url", "origin", check=False).stdout.strip()


_IN_PROGRESS = {
    "MERGE_HEAD": "a merge is in progress",
    "rebase-merge": "a rebase is in progress",
    "rebase-apply": "a rebase or git am is in progress",
    "CHERRY_PICK_HEAD": "a cherry-pick is in progress",
    "REVERT_HEAD": "a revert is in progress",
    "index.lock": "another git command holds the index lock",
}


def busy_reason(repo: Path) -> str | None:
    """Why a commit must wait now, or None when the repository is on a branch with nothing in progress."""
    git_dir = Path(_git(repo, "rev-parse", "--absolute-git-dir").stdout.strip())
    for name, reason in _IN_PROGRESS.items():
        if (git_dir / name).exists():
            return reason
    if _git(repo, "symbolic-ref", "-q", "HEAD", check=False).returncode != 0:
        return "HEAD is detached (not on a branch)"
    return None


def commit_files(repo: Path, paths: list[Path], message: str) -> str | None:
    """Commit exactly `paths` (nothing else that is staged) and return the new commit's sha, or None when
    they hold no change. GitBusy while the repository is mid-merge, mid-rebase or detached."""
    reason = busy_reason(repo)
    if reason:
        raise GitBusy(f"not committed yet: {reason}")
    rel = [str(p.relative_to(repo)) for p in paths]
    _git(repo, "add", "--", *rel)
    if _git(repo, "diff", "--cached", "--quiet", "--", *rel, check=False).returncode == 0:
        return None
    _git(repo, *_identity_args(repo), "commit", "-q", "-m", message, "--", *rel)
    return _git(repo, "rev-parse", "HEAD").stdout.strip()


def push(repo: Path) -> None:
    """Push the current branch to its upstream (git.push in the config); a repository without one is left be."""
    if _git(repo, "rev-parse", "--abbrev-ref", "@{upstream}", check=False).returncode != 0:
        return
    _git(repo, "push", "-q")
