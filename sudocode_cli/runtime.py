"""Bringing up Django for a CLI command: find the repository, configure, make sure the schema exists and the
database matches the JSONL files. Kept out of `main` so `--help` never pays for it."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from federation_site.node import REPO_ENV, RepoLayout, RepoNotFound, find_repo
from sudocode_cli.errors import UsageError
from sudocode_cli.output import note, warn

_ready: RepoLayout | None = None


def setup(repo: str | None, *, web: bool = False, sync: bool = True) -> RepoLayout:
    """Configure Django for the repository at `repo` (or found from the current directory). `web=True`
    loads the whole web stack and django.contrib's apps (for `serve`, and `staff add` whose users log in to the
    pages); the default CLI profile leaves them out to start fast."""
    global _ready
    if _ready is not None:
        return _ready
    # Start-up makes ~100k objects that live as long as the process: the cyclic garbage collector would walk
    # them again and again while they are made, and again in each later full collection. So it is off while
    # they are made, and they are then frozen (never scanned again) before it runs again for the command
    # (~15 ms of a command's CPU, issue 16; `serve` and `mcp` keep collecting what they make afterwards).
    collecting = gc.isenabled()
    gc.disable()
    try:
        lay = _setup(repo, web=web, sync=sync)
    finally:
        if collecting:
            gc.freeze()
            gc.enable()
    _ready = lay
    return lay


def _setup(repo: str | None, *, web: bool, sync: bool) -> RepoLayout:
    root = repo_root(repo)
    os.environ[REPO_ENV] = str(root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "federation_site.settings")
    if not web:
        os.environ.setdefault("SUDOCODE_FED_CLI", "1")
    _django_setup()
    from federation_site import node

    lay = RepoLayout(root)
    ensure_schema(lay)
    # A broken federation.config.json stops a command here, before it does anything (it never half-runs). The
    # file the database last reconciled with passed validation then: unchanged, it is not validated again.
    if web or not sync or not _config_reconciled():
        node.config()
    if sync:
        from tracker.sync import data_problems

        node.refresh_state(progress=note)
        for problem in data_problems():
            # Reads go on from the last good import; writes fail (exit 1) with the same words.
            warn(f"cannot read {problem.short}\n  (showing what was last read; changes wait until it is fixed)")
    return lay


def _django_setup() -> None:
    """`django.setup()`, but in the CLI profile without what only a web process uses: Django's default logging
    (mail to ADMINS on a 500, the runserver's lines; it imports django.core.mail and the debug views) and the URL
    script prefix (django.urls). ~20 ms of a command's start (issue 16). The project's own LOGGING applies."""
    from django.conf import settings

    if not settings.CLI_PROFILE:
        import django

        django.setup()
        return
    import logging

    from django.apps import apps

    from federation_site.logs import apply_logging

    logging.captureWarnings(True)
    apply_logging(settings.LOGGING)
    apps.populate(settings.INSTALLED_APPS)


def _config_reconciled() -> bool:
    from remotes.services import config_reconciled

    return config_reconciled()


def repo_root(repo: str | None) -> Path:
    """The repository a command serves: `repo`, else SUDOCODE_REPO, else found from the current directory."""
    try:
        return find_repo(explicit=repo or os.environ.get(REPO_ENV) or None)
    except RepoNotFound as exc:
        raise UsageError(str(exc)) from None


def ensure_schema(lay: RepoLayout) -> None:
    """Run migrations when the database lacks any (first use, or after an upgrade). Checking costs one
    query and a directory listing per app, where asking the migration loader would cost a quarter second."""
    if not _missing_migrations():
        return
    from django.core.management import call_command

    from tracker.locks import file_lock

    with file_lock(lay.lock_path("migrate")):
        if _missing_migrations():
            note("Preparing the database (first run or upgrade)...")
            call_command("migrate", verbosity=0, interactive=False)


def _missing_migrations() -> set[tuple[str, str]]:
    from django.apps import apps
    from django.db import DatabaseError, connection

    expected: set[tuple[str, str]] = set()
    for app in apps.get_app_configs():
        folder = Path(app.path) / "migrations"
        if folder.is_dir():
            expected |= {(app.label, f[:-3]) for f in os.listdir(folder) if f.endswith(".py") and f[:1].isdigit()}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations")
            applied = set(cursor.fetchall())
    except DatabaseError:
        return expected
    return expected - applied


def actor(lay: RepoLayout) -> str:
    """Who is acting, for commit messages and (later) the audit log: git's user.name, else the login."""
    import getpass

    from tracker.gitops import git_user

    return git_user(lay.root) or getpass.getuser()
