"""The node and its repository: which git repository this process serves, and where its files live.

One node serves one git repository. The repository is the folder that holds `.sudocode/`; it is found from
`--repo PATH` / `SUDOCODE_REPO`, or by walking up from the current directory. Everything else (settings, the
tracker, the CLI) asks this module for paths instead of building them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

SUDOCODE_DIR = ".sudocode"
REPO_ENV = "SUDOCODE_REPO"


logger = logging.getLogger(__name__)


class RepoNotFound(Exception):
    pass


@dataclass(frozen=True)
class RepoLayout:
    root: Path

    @cached_property
    def sudocode_dir(self) -> Path:
        return self.root / SUDOCODE_DIR

    @cached_property
    def config_path(self) -> Path:
        return self.sudocode_dir / "federation.config.json"

    @property
    def secrets_path(self) -> Path:
        return self.sudocode_dir / "secrets.env"

    @property
    def db_path(self) -> Path:
        return self.sudocode_dir / "federation.db"

    @property
    def gitignore_path(self) -> Path:
        return self.sudocode_dir / ".gitignore"

    @lru_cache(maxsize=16)  # noqa: B019 (a few layouts per process; refresh_state asks on every request)
    def jsonl_path(self, kind: str) -> Path:
        return self.sudocode_dir / ("issues.jsonl" if kind == "issue" else "specs.jsonl")

    @property
    def worker_heartbeat_path(self) -> Path:
        """Touched by the Celery worker each time beat's 2 s task runs there: its age says whether both live."""
        return self.sudocode_dir / "celery" / "heartbeat"

    @property
    def metrics_dir(self) -> Path:
        """Where each process of `serve` keeps its Prometheus values (multiprocess mode); emptied at each start."""
        return self.sudocode_dir / "metrics"

    @property
    def audit_archive_dir(self) -> Path:
        """Where retention exports the audit rows it prunes, one JSONL file per run (gitignored)."""
        return self.sudocode_dir / "audit-archive"

    def lock_path(self, name: str) -> Path:
        return self.sudocode_dir / f".federation-{name}.lock"


def find_repo(*, explicit: str | os.PathLike | None = None, start: Path | None = None) -> Path:
    """The repository root: `explicit` (a path that must hold `.sudocode/`), else the nearest parent of
    `start` (default: the current directory) that holds `.sudocode/`."""
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not root.is_dir():
            raise RepoNotFound(f"{root} is not a directory")
        if not (root / SUDOCODE_DIR).is_dir():
            raise RepoNotFound(f"{root} has no {SUDOCODE_DIR}/ folder: run `sudocode-fed init` there first")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SUDOCODE_DIR).is_dir():
            return folder
    raise RepoNotFound(
        f"no {SUDOCODE_DIR}/ folder in {here} or any parent: run `sudocode-fed init` in your git "
        f"repository, or pass --repo PATH (or set {REPO_ENV})"
    )


def layout() -> RepoLayout:
    """The layout of the repository this process serves (settings.SUDOCODE_REPO)."""
    from django.conf import settings

    if not settings.SUDOCODE_REPO:
        raise RepoNotFound(
            f"this process serves no repository: set {REPO_ENV} or run it inside a repository with "
            f"a {SUDOCODE_DIR}/ folder"
        )
    root = settings.SUDOCODE_REPO
    found = _layouts.get(root)
    if found is None:  # built once per repository: config() asks on every call, several times per request
        found = _layouts[root] = RepoLayout(Path(root))
    return found


_layouts: dict[object, RepoLayout] = {}


_config_cache: dict[str, tuple[tuple[int, int], object]] = {}
_config_refused: dict[str, tuple[tuple[int, int], Exception]] = {}


_pinned: ContextVar[list | None] = ContextVar("node_config_pinned", default=None)


@contextmanager
def config_pinned() -> Iterator[None]:
    """Inside the block `config()` looks at the file once and then answers the same: one request sees one config
    from start to end, and pays one stat for it instead of one per call (federation.fastdoor)."""
    token = _pinned.set([])  # empty until the first config() of the block
    try:
        yield
    finally:
        _pinned.reset(token)


def config():
    """The node's validated federation.config.json (re-read when the file changes), or None when the
    repository has none (a plain sudocode repository: the tracker works, federation is off). Inside
    `config_pinned()`, the one read first in the block.

    A file that cannot be used (a ConfigError: a bad key, a policy condition that does not compile) raises when
    no good config was loaded yet, so a node never starts with it; once one was, an edit that breaks the file
    is not applied: the last good config stays in force and `config_problem()` says why (the dashboard's
    banner, `sudocode-fed status`)."""
    pinned = _pinned.get()
    if pinned is None:
        return _config()
    if not pinned:
        pinned.append(_config())
    return pinned[0]


def _config():
    from federation_site.config import ConfigError, load_config

    path = layout().config_path
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (st.st_size, st.st_mtime_ns)
    cached = _config_cache.get(str(path))
    if cached and cached[0] == key:
        return cached[1]
    refused = _config_refused.get(str(path))
    if cached and refused and refused[0] == key:
        return cached[1]
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        if cached is None:
            raise
        if not (refused and refused[0] == key):
            logger.error("%s; the last good config stays in force until the file is fixed", exc)
        _config_refused[str(path)] = (key, exc)
        return cached[1]
    _config_refused.pop(str(path), None)
    _config_cache[str(path)] = (key, loaded)
    return loaded


@dataclass(frozen=True)
class GitWriteSettings:
    """The `git` keys of federation.config.json that a write reads (`tracker.services`: whether to commit,
    whether to push). The defaults are the config's own: `federation_site.config.GitSettings` takes them from
    here."""

    auto_commit: bool = False
    commit_remote_changes: bool = True
    push: bool = False


GIT_WRITE_DEFAULTS = GitWriteSettings()
_config_vouched: dict[str, tuple[int, int]] = {}


def config_vouched(stamp: tuple[int, int]) -> None:
    """Record that federation.config.json as it is on disk now, `stamp` = (size in bytes, mtime in ns), passed
    validation (the database recorded it so: `remotes.services.config_reconciled()` calls this), so that
    `git_settings()` may read it without validating it again."""
    _config_vouched[str(layout().config_path)] = stamp


def git_settings() -> GitWriteSettings | None:
    """The config's `git` keys a write needs, or None when the repository has no federation.config.json (as
    `config()`). A file that this process validated, or that `config_vouched()` says passed validation, is read
    as plain JSON: a write does not import pydantic nor validate the file again for three booleans (~120 ms of a
    CLI `issue create`, issue 16). Any other file goes through `config()`, so an unvalidated edit is validated
    (and a broken one raises ConfigError, or keeps the last good config in a running node, as `config()` says)."""
    path = layout().config_path
    cached = _config_cache.get(str(path))
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            key = (st.st_size, st.st_mtime_ns)
            if cached and cached[0] == key:
                git = cached[1].git
                return GitWriteSettings(git.auto_commit, git.commit_remote_changes, git.push)
            if _config_vouched.get(str(path)) == key:
                found = _git_keys(fh.read())
                if found is not None:
                    return found
    except FileNotFoundError:
        return None
    cfg = config()
    if cfg is None:
        return None
    return GitWriteSettings(cfg.git.auto_commit, cfg.git.commit_remote_changes, cfg.git.push)


def _git_keys(data: bytes) -> GitWriteSettings | None:
    """The `git` keys of a config file's bytes that passed validation; None when they are not as validation
    left them (then the caller validates)."""
    try:
        git = json.loads(data.decode("utf-8-sig")).get("git") or {}
    except (ValueError, AttributeError):
        return None
    if not isinstance(git, dict):
        return None
    values = {
        name: git.get(name, getattr(GIT_WRITE_DEFAULTS, name))
        for name in ("auto_commit", "commit_remote_changes", "push")
    }
    if not all(isinstance(v, bool) for v in values.values()):
        return None
    return GitWriteSettings(**values)


def config_problem() -> Exception | None:
    """The ConfigError of an edit this process refused (the last good config is in force), or None."""
    try:
        path = layout().config_path
    except RepoNotFound:
        return None
    refused = _config_refused.get(str(path))
    return refused[1] if refused else None


def refresh_state(*, progress: Callable[[str], object] | None = None) -> None:
    """Bring the database in line with the repository's files: JSONL entities changed under us (by a `git
    pull`, the sudocode CLI, an editor) and remotes declared in federation.config.json. Two stat calls per file
    when nothing changed. The middleware calls this before each request, the CLI before each command, beat every
    2 s. The work is done by the apps that own those files, through the `node_state_check` hook."""
    from federation_site.signals import node_state_check

    node_state_check.send(sender=RepoLayout, progress=progress)
