"""`sudocode-fed serve` keeps its Celery worker and beat running: one that dies is started again, and the
heartbeat (and so the health check) comes back (issue 10, fault 6). On a real node."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import requests

from tests.nodes import Node, eventually

pytestmark = pytest.mark.slow


def children(node: Node, what: str) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(node.proc.pid)], capture_output=True, text=True)
    return [int(line.split()[0]) for line in out.stdout.splitlines() if "celery" in line and f" {what}" in line]


def test_a_killed_worker_is_started_again_and_the_health_check_follows(tmp_path):
    node = Node(tmp_path, "api-service").start()
    try:
        eventually(
            lambda: requests.get(f"{node.api}/health", timeout=5).status_code == 200,
            timeout=30,
            what="the worker's first heartbeat",
        )
        [worker] = eventually(lambda: children(node, "worker"), what="a worker process")

        os.kill(worker, signal.SIGKILL)

        [again] = eventually(
            lambda: [p for p in children(node, "worker") if p != worker], timeout=20, what="a new worker process"
        )
        assert again != worker
        eventually(
            lambda: requests.get(f"{node.api}/health", timeout=5).json()["worker"]["alive"],
            timeout=30,
            what="the new worker's heartbeat",
        )
        assert "the Celery worker exited (code -9); starting it again" in node.log_path.read_text()
    finally:
        node.stop()
