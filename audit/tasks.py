"""Celery tasks of the audit log: the upkeep of its rollups."""

from audit import services
from federation_site.celery import app


@app.task(ignore_result=True)
def prune_rollups() -> int:
    """Periodic: drop the rollups older than the metrics page shows (audit.services.ROLLUP_PERIODS)."""
    return services.rollups_prune()
