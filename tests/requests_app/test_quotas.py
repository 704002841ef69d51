"""Quotas and limits the config declares (issue 11), on one real node over HTTP: queries per minute, the daily
bandwidth, a retried request_id after its quota is used up, identical requests sent at once, the node-wide
allowed filters, max_remote_repos, trust changes on the next message, and a config edit with a bad policy that
the running node refuses while it goes on with the last good one."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.nodes import Node, eventually
from tests.requests_app.test_use_case_1 import PASSWORD, STAFF, staff_session

pytestmark = pytest.mark.slow

CALLER = "github.com/org/caller"
OTHER = "github.com/org/other-caller"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("quotas"), "api-service", worker=False)
    config = node.config()
    config["rate_limits"]["per_repo"]["queries_per_minute"] = 1000
    config["a2a_policies"]["query"]["allowed_filters"] = ["status", "labels", "ids"]
    node.write_config(config)
    node.start()
    node.create_staff(STAFF, PASSWORD)
    node.keys = {url: add_remote(node, url, "verified") for url in (CALLER, OTHER)}
    yield node
    node.stop()


def add_remote(node: Node, url: str, trust: str) -> str:
    added = node.cli("remote", "add", url, "--trust", trust, "--no-discover")
    assert added.code == 0, added.err
    return next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))


def post(node: Node, path: str, body: object, *, sender: str = CALLER) -> requests.Response:
    headers = {"Authorization": f"Bearer {node.keys[sender]}"} if sender else {}
    return requests.post(f"{node.api}/federation/{path}", json=body, headers=headers, timeout=30)


def query(node: Node, **filters) -> requests.Response:
    return post(node, "query", {"type": "query", "from": CALLER, "query": {"entity": "issue", "filters": filters}})


def mutate(request_id: str, title: str = "Add an endpoint", **data) -> dict:
    return {
        "type": "mutate",
        "from": CALLER,
        "operation": "create_issue",
        "data": {"title": title, **data},
        "metadata": {"request_id": request_id},
    }


def edit_config(node: Node, change) -> dict:
    original = node.config()
    config = json.loads(json.dumps(original))
    change(config)
    node.write_config(config)
    return original


def test_queries_per_minute_answer_429_with_retry_after(node):
    original = edit_config(node, lambda c: c["rate_limits"]["per_repo"].update(queries_per_minute=3))
    try:
        answers = [query(node) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        refused = answers[-1]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        body = refused.json()
        assert body["error"] == "rate_limited" and "rate_limits.per_repo.queries_per_minute (3)" in body["detail"]
        assert post(node, "query", {"type": "query", "from": OTHER, "query": {"entity": "issue"}}, sender=OTHER).ok
    finally:
        node.write_config(original)


def test_a_filter_the_node_does_not_allow_is_a_400_naming_it(node):
    answer = query(node, priority=2)
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["path"] == "query.filters.priority"
    assert "a2a_policies.query.allowed_filters: ids, labels, status" in error["message"]
    assert query(node, status="open").status_code == 200


def test_a_retry_after_the_quota_is_used_up_gets_its_original_answer(node):
    original = edit_config(
        node,
        lambda c: (
            c["remote_repos"][0].setdefault("permissions", {}).setdefault("mutate", {}).update(mutations_per_hour=2)
        ),
    )
    try:
        first = post(node, "mutate", mutate("req-quota-1"))
        second = post(node, "mutate", mutate("req-quota-2"))
        assert first.status_code == second.status_code == 200
        third = post(node, "mutate", mutate("req-quota-3"))
        assert third.status_code == 429 and "mutations_per_hour (2)" in third.json()["detail"]
        assert int(third.headers["Retry-After"]) > 0
        retried = post(node, "mutate", mutate("req-quota-1"))
        assert retried.status_code == 200
        assert retried.json()["request_id"] == "req-quota-1"
        assert retried.json()["status"] == first.json()["status"] == "pending_approval"
    finally:
        node.write_config(original)


def test_identical_requests_sent_at_once_all_get_the_one_answer(node):
    original = edit_config(
        node,
        lambda c: (
            c["remote_repos"][1].setdefault("permissions", {}).setdefault("mutate", {}).update(mutations_per_hour=1)
        ),
    )
    try:
        message = {**mutate("req-eight-at-once", "Eight at once"), "from": OTHER}
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(node, "mutate", message, sender=OTHER), range(8)))
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        assert {a.json()["request_id"] for a in answers} == {"req-eight-at-once"}
        listed = [r for r in node.cli_json("requests", "list") if r["request_id"] == "req-eight-at-once"]
        assert len(listed) == 1
    finally:
        node.write_config(original)


def test_the_daily_bandwidth_is_enforced_on_bytes_in_and_out(node):
    original = edit_config(node, lambda c: c["rate_limits"]["global"].update(cross_repo_bandwidth_mb_per_day=1))
    try:
        padding = "x" * 200_000
        statuses = []
        for _ in range(8):
            statuses.append(post(node, "query", {"type": "query", "from": CALLER, "pad": padding}).status_code)
            if statuses[-1] == 429:
                break
        assert statuses[:5] == [400] * 5 and statuses[-1] == 429, statuses
        refused = query(node)
        assert refused.status_code == 429
        assert "cross_repo_bandwidth_mb_per_day" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) <= 86400
    finally:
        node.write_config({**original, "rate_limits": {**original["rate_limits"], "global": {
            **original["rate_limits"]["global"], "cross_repo_bandwidth_mb_per_day": 100_000}}})  # fmt: skip
    assert query(node).status_code == 200


def test_remote_add_past_max_remote_repos_is_refused(node):
    original = edit_config(node, lambda c: c["rate_limits"]["global"].update(max_remote_repos=2))
    try:
        refused = node.cli("remote", "add", "github.com/org/third", "--no-discover")
        assert refused.code == 2
        assert "as many as rate_limits.global.max_remote_repos (2) allows" in refused.err
    finally:
        node.write_config(original)


def test_a_demoted_remote_is_judged_at_its_new_level_on_its_next_message(node):
    assert post(node, "mutate", mutate("req-before-demotion")).status_code == 200
    demoted = node.cli("remote", "trust", CALLER, "untrusted")
    assert demoted.code == 0, demoted.err
    assert "verified -> untrusted" in demoted.out
    try:
        refused = post(node, "mutate", mutate("req-after-demotion"))
        assert refused.status_code == 403 and "trust level untrusted" in refused.json()["detail"]
        # Promoted: its next request is carried out at once, by the default rule init wrote.
        assert node.cli("remote", "trust", CALLER, "trusted").code == 0
        done = post(node, "mutate", mutate("req-after-promotion"))
        assert done.json()["status"] == "completed"
        assert done.json()["decision"]["rule"] == "policies.incoming_requests.mutate.auto_approve[0]"
        urgent = post(node, "mutate", mutate("req-urgent", priority=0))
        assert urgent.json()["status"] == "pending_approval"
        assert urgent.json()["decision"]["rule"] == "policies.incoming_requests.mutate.require_approval[0]"
    finally:
        node.cli("remote", "trust", CALLER, "verified")


def test_a_config_edit_with_a_bad_policy_is_not_applied_and_says_why(node):
    assert query(node).ok  # the node has read the file as it is now: its last good config
    original = node.config()
    broken = json.loads(json.dumps(original))
    broken["policies"]["incoming_requests"]["mutate"]["require_approval"] = [{"condition": "prio <= 1"}]
    broken["policies"]["incoming_requests"]["mutate"]["auto_approve"] = [{"condition": "true"}]
    node.write_config(broken)
    try:
        # The last good config decides: a verified caller still waits for a human.
        answer = post(node, "mutate", mutate("req-during-bad-config"))
        assert answer.status_code == 200 and answer.json()["status"] == "pending_approval", answer.json()["decision"]
        page = staff_session(node).get(f"{node.base}/approvals/", timeout=10).text
        assert "The last edit of federation.config.json was not applied" in page
        assert "unknown name &#x27;prio&#x27; at column 1" in page
        status = node.cli("status")
        assert status.code == 1 and "require_approval[0].condition: unknown name 'prio'" in status.err
        check = node.cli("policy", "check")
        assert check.code == 2 and "unknown name 'prio' at column 1" in check.err
        health = requests.get(f"{node.api}/health", timeout=10)
        assert health.status_code == 503 and "the last edit was not applied" in " ".join(health.json()["problems"])
        # A command refuses before it does anything: the request stays pending, nothing half-done.
        approve = node.cli("request", "approve", "req-during-bad-config")
        assert approve.code == 1 and "unknown name 'prio'" in approve.err
        with node.db() as db:
            [(status,)] = db.execute(
                "select status from cross_repo_requests where request_id = 'req-during-bad-config'"
            ).fetchall()
        assert status == "pending"
    finally:
        node.write_config(original)
    eventually(
        lambda: "was not applied" not in staff_session(node).get(f"{node.base}/approvals/", timeout=10).text,
        what="the banner going once the file is fixed",
    )
