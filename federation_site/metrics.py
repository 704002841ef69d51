"""The node's Prometheus metrics: the objects every layer records into, and the scrape that `/metrics` serves.

What happens in a process (calls in and out, their latency, cache lookups, decisions, WebSocket connections) is
counted here, in the process where it happens. `sudocode-fed serve` runs several processes (daphne, the Celery
worker and beat), so it points PROMETHEUS_MULTIPROC_DIR at `.sudocode/metrics/` (emptied at each start) before
any of them imports prometheus_client: each process then writes its values to its own files there, and a
scrape adds them up (prometheus_client's multiprocess mode). A process without that variable (a test, a shell)
counts in memory and its scrape shows only itself. The CLI does not record (it would leave a file per command).

What is database state (the approval queue, delivery backlog, dead deliveries, subscriptions, the worker's
heartbeat) is not counted here: the edge computes it at scrape time (`dashboard/metrics.py`), the same in every
process.

Every name starts with `sudocode_`. Calls are labelled by remote; a caller that is not a configured remote is
labelled `other` (or `anonymous`), so an unknown caller cannot add series without bound.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable
from functools import cache
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Cross-repo calls take from about a millisecond (a local node) to the client's read timeout (10 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A human decides a request in seconds to days.
DECISION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400)


class _Metrics:
    """The metric objects, made on first use: importing prometheus_client costs tens of milliseconds, which a
    CLI command (which records nothing) must not pay, and it must happen after `serve` set MULTIPROC_ENV."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.calls = Counter(
            "sudocode_cross_repo_calls",
            "Cross-repo operations in and out (one per audit row), by operation, remote, direction and outcome.",
            ["operation", "remote", "direction", "outcome"],
        )
        self.call_seconds = Histogram(
            "sudocode_cross_repo_call_duration_seconds",
            "Duration of the cross-repo calls whose audit row records one, by operation, remote and direction.",
            ["operation", "remote", "direction"],
            buckets=LATENCY_BUCKETS,
        )
        self.reference_cache = Counter(
            "sudocode_reference_cache_lookups",
            "Cached cross-repo references looked up before showing them: hit (fresh within the TTL) or miss (due).",
            ["result"],
        )
        self.decision_seconds = Histogram(
            "sudocode_approval_decision_seconds",
            "Time from an incoming request's arrival to its decision (approved or rejected) after waiting.",
            ["decision"],
            buckets=DECISION_BUCKETS,
        )
        self.websockets = Gauge(
            "sudocode_websocket_connections",
            "WebSocket connections open now (/api/v1/ws), over every live web process.",
            multiprocess_mode="livesum",
        )


_made_once = threading.Lock()


@cache
def _metrics() -> _Metrics:
    # functools.cache may call this twice when two request threads arrive together, and a second _Metrics would
    # register the same series again (prometheus_client raises "Duplicated timeseries"): one thread makes them.
    with _made_once:
        return _made()


@cache
def _made() -> _Metrics:
    return _Metrics()


def _recording() -> bool:
    from django.conf import settings

    return not getattr(settings, "CLI_PROFILE", False)


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def multiprocess_prepare(folder: Path) -> None:
    """Empty `folder` and point this process (and the children it starts) at it. Must run before anything
    imports prometheus_client, which chooses its storage at import: `serve` calls it first thing."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)


def _remote_label(remote: str) -> str:
    if not remote or remote == "anonymous":
        return "anonymous"
    from federation_site import node

    try:
        cfg = node.config()
    except Exception:  # noqa: BLE001 - a node without a usable config still counts its calls
        cfg = None
    known = {str(r.url) for r in cfg.remote_repos} if cfg is not None else set()
    return remote if remote in known else "other"


def call_observe(*, operation: str, remote: str, direction: str, outcome: str, duration_ms: float | None) -> None:
    """Count one cross-repo operation (audit.services.audit_record calls this for every row it writes)."""
    if not _recording():
        return
    m = _metrics()
    label = _remote_label(remote)
    m.calls.labels(operation=operation, remote=label, direction=direction, outcome=outcome).inc()
    if duration_ms is not None:
        m.call_seconds.labels(operation=operation, remote=label, direction=direction).observe(duration_ms / 1000)


def reference_cache_observe(*, hits: int, misses: int) -> None:
    if not _recording() or not (hits or misses):
        return
    m = _metrics()
    if hits:
        m.reference_cache.labels(result="hit").inc(hits)
    if misses:
        m.reference_cache.labels(result="miss").inc(misses)


def decision_observe(*, decision: str, seconds: float) -> None:
    if _recording():
        _metrics().decision_seconds.labels(decision=decision).observe(max(seconds, 0.0))


def websocket_opened() -> None:
    _metrics().websockets.inc()


def websocket_closed() -> None:
    _metrics().websockets.dec()


class _Sources:
    """What generate_latest needs of a registry (collect), over several collectors."""

    def __init__(self, collectors: Iterable) -> None:
        self.collectors = list(collectors)

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def scrape(*extra_collectors) -> tuple[bytes, str]:
    """The exposition text: every process's metrics (or this process's alone, outside multiprocess mode), then
    `extra_collectors` (the database gauges, computed now); and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.core import REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    _metrics()  # declared, so a scrape before the first call shows the families (at zero where labelless)
    folder = multiprocess_dir()
    base = MultiProcessCollector(None, path=str(folder)) if folder is not None else REGISTRY
    return generate_latest(_Sources([base, *extra_collectors])), CONTENT_TYPE_LATEST
