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


# The git directory of each repository found so far: it does not move while a node serves it, so each write
# that is committed asks git once instead of twice (a "no" is not kept: `git init` may come later).
_git_dirs: dict[Path, Path] = {}


def _git_dir(repo: Path) -> Path | None:
    if repo not in _git_dirs:
        found = _git(repo, "rev-parse", "--absolute-git-dir", check=False)
        if found.returncode != 0:
            return None
        _git_dirs[repo] = Path(found.stdout.strip())
    return _git_dirs[repo]


def is_git_repo(repo: Path) -> bool:
    return _git_dir(repo) is not None


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
    git_dir = _git_dir(repo)
    if git_dir is None:
        raise GitError(f"{repo} is not a git repository")
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


MERGE_DRIVER = "sudocode-jsonl"
MERGED_FILES = (".sudocode/issues.jsonl", ".sudocode/specs.jsonl")


def merge_driver_register(repo: Path, command: str) -> list[str]:
    """Make `git merge` and `git pull` merge the JSONL files with `command` (`... merge-driver %O %A %B %P`):
    `.gitattributes` names the driver for them (commit it: it travels with the repository), and the
    repository's git config says how to run it (local: each clone registers it, as `init` does). Returns
    what it changed, for the user."""
    done: list[str] = []
    attributes = repo / ".gitattributes"
    text = attributes.read_text() if attributes.exists() else ""
    lines = text.splitlines()
    missing = [f"{path} merge={MERGE_DRIVER}" for path in MERGED_FILES if f"{path} merge={MERGE_DRIVER}" not in lines]
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        attributes.write_text(text + "".join(f"{line}\n" for line in missing))
        done.append("added the JSONL merge driver to .gitattributes")
    key = f"merge.{MERGE_DRIVER}.driver"
    if _git(repo, "config", "--local", "--get", key, check=False).stdout.strip() != command:
        _git(repo, "config", "--local", f"merge.{MERGE_DRIVER}.name", "sudocode JSONL: merge issues and specs by uuid")
        _git(repo, "config", "--local", key, command)
        done.append("registered the JSONL merge driver in .git/config")
    return done


def merge_file_with_markers(ours: Path, base: Path, theirs: Path) -> bool:
    """git's own line merge of the three versions into `ours` (conflict markers where they clash), for files
    the record merge cannot read. Returns whether it merged cleanly."""
    result = subprocess.run(
        ["git", "merge-file", "-L", "ours", "-L", "base", "-L", "theirs", str(ours), str(base), str(theirs)],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


def push(repo: Path) -> None:
    """Push the current branch to its upstream (git.push in the config); a repository without one is left be."""
    if _git(repo, "rev-parse", "--abbrev-ref", "@{upstream}", check=False).returncode != 0:
        return
    _git(repo, "push", "-q")
