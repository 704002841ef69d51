"""The circuit breaker between two real nodes (remotes/breaker.py): a node that stops answering is paused after
N failures in a row, calls to it fail at once while it is, deliveries to it wait without spending attempts, and
one probe after the cool-down closes the breaker when the node is back."""

from __future__ import annotations

import json
import time

import pytest

from tests.nodes import Node, eventually, link
from tests.requests_app.test_use_case_1 import PASSWORD, STAFF, staff_session

pytestmark = pytest.mark.slow

BREAKER = {"failures": 2, "cool_down_seconds": 6}


def with_breaker(node: Node) -> None:
    config = node.config()
    config["http"] = {**config.get("http", {}), "retries": 0, "connect_timeout_seconds": 1,
                      "circuit_breaker": BREAKER}  # fmt: skip
    node.write_config(config)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("breaker")
    frontend = Node(root, "frontend", worker=False)  # only its CLI calls out, and it receives the callback
    api = Node(root, "api-service")  # its worker sends the callback
    with_breaker(frontend)
    with_breaker(api)
    try:
        frontend.start()
        api.start()
        api.create_staff(STAFF, PASSWORD)
        link(frontend, api, trust="verified")
        yield frontend, api
    finally:
        frontend.stop()
        api.stop()


def query(frontend: Node, api: Node):
    return frontend.cli("remote", "query", api.identity, "issue")


def breaker_at(node: Node, url: str) -> tuple[str, int]:
    with node.db() as db:
        return db.execute("SELECT breaker_state, breaker_failures FROM remote_repos WHERE url = ?", (url,)).fetchone()


def test_calls_fail_fast_while_open_and_a_probe_closes_it_when_the_node_is_back(nodes):
    frontend, api = nodes
    assert query(frontend, api).code == 0
    api.stop()
    try:
        for _ in range(BREAKER["failures"]):
            failed = query(frontend, api)
            assert failed.code == 1 and "(circuit breaker)" not in failed.err
        opened = time.monotonic()
        paused = query(frontend, api)
        assert paused.code == 1
        assert f"{api.identity} is paused after 2 failures in a row; next try at" in paused.err
        assert "(circuit breaker)" in paused.err
        shown = frontend.cli("remote", "show", api.identity)
        assert "Calls:       paused after 2 failures in a row, next try at" in shown.out
        assert frontend.cli_json("remote", "show", api.identity)["circuit_breaker"]["state"] == "open"
    finally:
        api.start()
    # Back, but the cool-down is not over: still paused, and nothing reaches it.
    queries_before = api.requests_to("/api/v1/federation/query")
    if time.monotonic() - opened < BREAKER["cool_down_seconds"] - 2:
        assert "(circuit breaker)" in query(frontend, api).err
        assert api.requests_to("/api/v1/federation/query") == queries_before
    # After it, the next call is the probe; its answer closes the breaker.
    eventually(lambda: query(frontend, api).code == 0, timeout=20, what="the probe closing the breaker", every=0.5)
    assert breaker_at(frontend, api.identity) == ("closed", 0)
    shown = frontend.cli_json("remote", "show", api.identity)["circuit_breaker"]
    assert shown == {"state": "closed", "failures": 0, "next_try_at": None}
    assert "Calls:       going (circuit breaker closed)" in frontend.cli("remote", "show", api.identity).out


def callback_row(api: Node) -> tuple[str, int, str, str]:
    with api.db() as db:
        return db.execute(
            "SELECT status, attempts, last_error, next_attempt_at FROM requests_app_delivery WHERE kind = 'callback'"
        ).fetchone()


def test_a_callback_waits_for_the_probe_without_spending_attempts_and_goes_when_the_node_is_back(nodes):
    frontend, api = nodes
    asked = frontend.cli("remote", "create-issue", api.identity, "--title", "Add avatar endpoint")
    assert asked.code == 0, asked.err
    request_id = next(line.split(":", 1)[1].strip() for line in asked.out.splitlines() if "Request ID:" in line)
    frontend.stop()
    try:
        approved = api.cli("request", "approve", request_id)
        assert approved.code == 0, approved.err
        # api's worker tries the callback twice (refused), the breaker opens, and the row waits for the probe.
        eventually(lambda: "(circuit breaker)" in (callback_row(api) or ("", 0, "", ""))[2], timeout=30,
                   what="the callback paused by the breaker", every=0.3)  # fmt: skip
        status, attempts, error, _ = callback_row(api)
        assert (status, attempts) == ("pending", 2), error
        assert breaker_at(api, frontend.identity) == ("open", 2)
        page = staff_session(api).get(f"{api.base}/remotes/", timeout=10).text
        assert "paused</strong> after 2 failures in a row" in page and "(circuit breaker open)" in page
    finally:
        frontend.start()
    # The probe (the callback itself, at the breaker's next try) reaches frontend: delivered, one attempt more.
    eventually(lambda: callback_row(api)[0] == "delivered", timeout=30, what="the callback delivered", every=0.3)
    assert callback_row(api)[1] <= 4  # at most a probe failed while frontend was starting
    assert breaker_at(api, frontend.identity) == ("closed", 0)

    def outgoing_status():
        rows = json.loads(frontend.cli("requests", "list", "--direction", "outgoing", "--format", "json").out)
        return next(r["status"] for r in rows if r["request_id"] == request_id)

    assert outgoing_status() == "completed"
