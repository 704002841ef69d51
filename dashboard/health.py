"""Whether this node can do its work: one function per rule, read by `GET /api/v1/health`, `GET /health/ready`
and nothing else deciding it again. Each check answers None when fine, else the reason, in words an operator
can act on. No check writes to the database or calls another node: a load balancer asks every few seconds."""

from __future__ import annotations

from collections.abc import Callable

from django.db import DatabaseError, connection

from federation_site import node, workers
from tracker.sync import data_problems


def database_problem() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"the database does not answer ({exc})"
    return None


def worker_problem(worker: dict | None = None) -> str | None:
    """The worker `serve` runs must have touched its heartbeat lately (beat's 2 s task); not counted on a node
    served with `--no-worker`."""
    worker = worker or workers.worker_state(node.layout())
    if not worker["expected"] or worker["alive"]:
        return None
    seen = worker["last_seen_seconds"]
    return (
        "the background worker is not alive "
        + ("(never seen)" if seen is None else f"(last seen {seen:.0f} s ago)")
        + ": callbacks, notifications and webhooks wait"
    )


def data_problem() -> str | None:
    """A JSONL file that cannot be imported (reads go on from the last good import; writes wait)."""
    problems = [p.short for p in data_problems()]
    return "; ".join(problems) or None


def config_problem() -> str | None:
    refused = node.config_problem()
    if refused is None:
        return None
    return f"{refused} (the last edit was not applied: the last good config is in force)"


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": database_problem,
    "broker": workers.broker_problem,
    "worker": worker_problem,
    "jsonl": data_problem,
    "config": config_problem,
}


def readiness() -> dict:
    """`{"status": "ok" | "degraded", "checks": {name: "ok" | reason}, "problems": [reason], "worker": {...}}`:
    every check of CHECKS, in that order."""
    worker = workers.worker_state(node.layout())
    checks = {name: (worker_problem(worker) if name == "worker" else check()) for name, check in CHECKS.items()}
    problems = [reason for reason in checks.values() if reason]
    return {
        "status": "degraded" if problems else "ok",
        "checks": {name: reason or "ok" for name, reason in checks.items()},
        "problems": problems,
        "worker": worker,
    }
