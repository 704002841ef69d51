"""Celery tasks of the tracker."""

from federation_site import node, workers
from federation_site.celery import app


@app.task(ignore_result=True)
def refresh_node_state() -> None:
    """Periodic: pick up JSONL files changed by another tool (a `git pull`, the sudocode CLI, an editor) even when
    nobody calls this node, so their changes become events within seconds. A stat per file when nothing changed.
    Also the worker's heartbeat: that this runs every 2 s proves beat and the worker both live."""
    workers.heartbeat(node.layout())
    node.refresh_state()


@app.task(ignore_result=True)
def commit_pending() -> int:
    """Periodic: the git commits that waited for a merge, a rebase or a detached HEAD to end. One query when
    none is owed."""
    from tracker.services import git_commit_pending

    return git_commit_pending()
