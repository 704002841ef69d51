"""The A2A conformance kit (../shared/tools/a2a-tck, the public TCK) against a real node, at MUST level, over
every transport the card declares (JSON-RPC and HTTP+JSON; the card declares no gRPC).

Two runs: a node started for conformance testing (FEDERATION_A2A_CONFORMANCE=1, the same as `serve
--a2a-conformance`) must pass every MUST requirement the kit tests; a node in normal operation must pass all but
the requirements whose tests need the kit's scenarios (tasks made from a plain message by messageId prefix),
which README.md lists. The kit runs in its own venv on a copy (shared/ is read-only; it writes reports/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.nodes import Node

pytestmark = pytest.mark.slow

KIT = REPO_ROOT.parent / "shared" / "tools" / "a2a-tck"
TRANSPORTS = "jsonrpc,http_json"

# The MUST requirements a node in normal operation fails: each one's test makes its task from a plain message
# (the kit's scenarios), which a real node answers with help. README.md "A2A conformance" names them too.
NEED_THE_CONFORMANCE_EXECUTOR = {
    "CORE-CANCEL-001", "CORE-CANCEL-002", "CORE-ERR-002", "CORE-GET-001", "CORE-HIST-002", "CORE-MULTI-001a",
    "CORE-MULTI-004", "CORE-MULTI-005", "CORE-MULTI-006", "CORE-SEND-002", "DM-ART-001", "DM-MSG-001",
    "PUSH-CREATE-001", "PUSH-CREATE-002", "PUSH-DEL-001", "PUSH-DEL-002", "PUSH-DELIVER-001", "PUSH-DELIVER-002",
    "PUSH-DELIVER-003", "PUSH-GET-001", "PUSH-GET-002", "PUSH-LIST-001", "STREAM-ORDER-002", "STREAM-ORDER-003",
    "STREAM-ORDER-004", "STREAM-SUB-001", "STREAM-SUB-002", "STREAM-SUB-003",
}  # fmt: skip


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    if not KIT.is_dir():
        pytest.fail(f"the A2A conformance kit is not at {KIT} (the workplace's shared/tools/a2a-tck)")
    copy = tmp_path_factory.mktemp("tck") / "a2a-tck"
    shutil.copytree(KIT, copy, ignore=shutil.ignore_patterns(".venv", "reports", "__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", str(copy / ".venv")], check=True)
    subprocess.run(
        [str(copy / ".venv" / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-e", str(copy)],
        check=True,
    )
    return copy


def run_kit(kit: Path, node: Node) -> dict[str, dict]:
    """Run the kit at MUST level against `node`; return its per-requirement results."""
    reports = kit / "reports" / "compatibility.json"
    reports.unlink(missing_ok=True)
    done = subprocess.run(
        [str(kit / ".venv" / "bin" / "python"), "run_tck.py", "--sut-host", node.base, "--level", "must",
         "--transport", TRANSPORTS],
        cwd=kit, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert reports.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(reports.read_text())["per_requirement"]
    return {name: {**r, "output": done.stdout} for name, r in results.items() if r["level"] == "MUST"}


def failed(results: dict[str, dict]) -> dict[str, list]:
    return {name: r["errors"][:1] for name, r in results.items() if r["status"] == "FAIL"}


def test_every_must_requirement_passes_on_a_node_started_for_conformance(kit, tmp_path):
    node = Node(tmp_path, "conformance", worker=False, env={"FEDERATION_A2A_CONFORMANCE": "1"})
    try:
        node.start()
        results = run_kit(kit, node)
    finally:
        node.stop()
    assert not failed(results), failed(results)
    passed = {name for name, r in results.items() if r["status"] == "PASS"}
    assert len(passed) >= 82, sorted(passed)  # 82 on 2026-11-30; the rest are gRPC, signatures, or untested


def test_in_normal_operation_only_the_kits_scenarios_are_missing(kit, tmp_path):
    node = Node(tmp_path, "normal", worker=False)
    try:
        node.start()
        results = run_kit(kit, node)
    finally:
        node.stop()
    assert set(failed(results)) == NEED_THE_CONFORMANCE_EXECUTOR
