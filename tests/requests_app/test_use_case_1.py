"""The seed's Use Case 1 between two real nodes: `frontend` asks `api-service` for an issue, a maintainer of
api-service decides over HTTP (or the CLI), and frontend learns the outcome by itself (the callback sent by
api-service's worker, or frontend's poller). Each node is a temp git repository served by `sudocode-fed serve`
on 127.0.0.1 and driven through the CLI; what api-service created is checked in its JSONL file and git log."""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import git
from tests.nodes import Node, link, node_cookie
from tests.nodes import eventually as _eventually

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "maintainer", "a-long-enough-password-1"
WAIT = 15.0  # seconds frontend may take to learn an outcome (the worker's callback, else the 5 s poller)


@dataclass
class Nodes:
    frontend: Node
    api: Node
    key: str  # frontend's key at api-service

    def ask(self, title: str, *extra: str) -> str:
        """frontend asks api-service for an issue; returns the request id."""
        result = self.frontend.cli(
            "remote",
            "create-issue",
            self.api.identity,
            "--title",
            title,
            "--description",
            "Frontend needs it",
            "--labels",
            "api,frontend-request",
            *extra,
        )
        assert result.code == 0, result.err
        return request_id_in(result.out)


def request_id_in(out: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("→ Request ID:"))


def start_together(*nodes: Node) -> None:
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(Node.start, nodes))


def stop_together(*nodes: Node) -> None:
    """Stop the nodes at once: each waits seconds for its Celery worker's warm shutdown."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        for stopping in [pool.submit(node.stop) for node in nodes]:
            stopping.result()


@contextmanager
def staffed_pair(root) -> Iterator[tuple[Node, Node]]:
    """frontend and api-service under `root`, started together, each with the staff user (STAFF, PASSWORD),
    frontend declared at api-service at trust level verified (its requests wait for a maintainer there);
    both stopped when the block ends."""
    frontend, api = Node(root, "frontend"), Node(root, "api-service")
    try:
        start_together(frontend, api)
        for node in (frontend, api):
            node.create_staff(STAFF, PASSWORD)
        link(frontend, api, trust="verified")
        yield frontend, api
    finally:
        stop_together(frontend, api)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("use-case-1")
    frontend = Node(root, "frontend")
    api = Node(root, "api-service")
    config = api.config()
    config["git"]["auto_commit"] = True
    api.write_config(config)
    try:
        start_together(frontend, api)
        api.create_staff(STAFF, PASSWORD)  # once served: the CLI's own database has no auth tables
        frontend.create_staff(STAFF, PASSWORD)
        key = link(frontend, api, trust="verified")
        yield Nodes(frontend, api, key)
    finally:
        stop_together(frontend, api)


def staff_session(node: Node) -> requests.Session:
    """A maintainer logged in to the node's admin, as a browser would: the login form with its CSRF token."""
    session = requests.Session()
    assert session.get(f"{node.base}/admin/login/", timeout=10).status_code == 200
    login = session.post(
        f"{node.base}/admin/login/",
        data={
            "username": STAFF,
            "password": PASSWORD,
            "csrfmiddlewaretoken": node_cookie(session.cookies, "csrftoken"),
        },
        timeout=10,
    )
    assert login.status_code == 200 and any(c.name.startswith("sessionid_") for c in session.cookies), (
        "the maintainer could not log in"
    )
    return session


def decide(session: requests.Session, node: Node, request_id: str, action: str, **fields: str) -> requests.Response:
    """Click the dashboard's approve or reject button."""
    return session.post(
        f"{node.base}/approvals/{request_id}/{action}",
        data={"csrfmiddlewaretoken": node_cookie(session.cookies, "csrftoken"), **fields},
        allow_redirects=False,
        timeout=30,
    )


def requests_of(node: Node, direction: str) -> dict[str, dict]:
    return {r["request_id"]: r for r in node.cli_json("requests", "list", "--direction", direction)}


def issues_of(node: Node) -> list[dict]:
    path = node.repo / ".sudocode" / "issues.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def eventually(check: Callable[[], object], *, timeout: float = WAIT, what: str = "the condition"):
    return _eventually(check, timeout=timeout, what=what, every=0.3)


def outgoing_when_final(nodes: Nodes, request_id: str) -> dict:
    def final():
        request = requests_of(nodes.frontend, "outgoing")[request_id]
        return request if request["status"] in ("completed", "rejected", "failed") else None

    return eventually(final, what=f"frontend learning the outcome of {request_id}")


def mutate_message(nodes: Nodes, request_id: str, *, sender: str | None = None) -> dict:
    return {
        "type": "mutate",
        "from": sender or nodes.frontend.identity,
        "to": nodes.api.identity,
        "operation": "create_issue",
        "data": {"title": "Add user avatar endpoint", "labels": ["api"]},
        "metadata": {"request_id": request_id, "requester": "claude-code-agent"},
    }


@contextmanager
def trusted_to_mutate(nodes: Nodes):
    """api-service trusts frontend fully for a while: its requests are carried out without a human."""
    original = nodes.api.config()
    config = json.loads(json.dumps(original))
    [declared] = [r for r in config["remote_repos"] if r["url"] == nodes.frontend.identity]
    declared["trust_level"] = "trusted"
    declared.setdefault("permissions", {}).setdefault("mutate", {})["allowed"] = True
    nodes.api.write_config(config)
    try:
        yield
    finally:
        nodes.api.write_config(original)


# --- the use case ------------------------------------------------------------------------------------------


def test_use_case_1_end_to_end_approved_over_http_and_frontend_learns_it_by_itself(nodes):
    page = nodes.frontend.cli("issue", "create", "Add user profile page", "--id", "issue-100")
    assert page.code == 0, page.err
    assert "Created issue issue-100" in page.out and "Status: open" in page.out

    result = nodes.frontend.cli(
        "remote",
        "create-issue",
        nodes.api.identity,
        "--title",
        "Add user profile endpoint",
        "--description",
        "Frontend needs GET /api/v1/users/:id",
        "--labels",
        "api,frontend-request",
        "--discovered-from",
        "issue-100",
        "--requester",
        "claude-code-agent",
    )
    assert result.code == 0, result.err
    request_id = request_id_in(result.out)
    assert "→ Status: Pending approval from api-service maintainers" in result.out
    assert f"→ Approval URL: {nodes.api.base}/approvals/{request_id}" in result.out

    # Pending on both sides, under the same id.
    incoming = requests_of(nodes.api, "incoming")[request_id]
    outgoing = requests_of(nodes.frontend, "outgoing")[request_id]
    assert incoming["status"] == outgoing["status"] == "pending"
    assert incoming["from"] == outgoing["from"] == nodes.frontend.identity
    assert incoming["title"] == "Add user profile endpoint" and incoming["labels"] == ["api", "frontend-request"]
    pending = nodes.api.cli("requests", "pending").out
    assert f'→ [{request_id}] github.com/org/frontend requests: "Add user profile endpoint"' in pending
    assert "Requested by: claude-code-agent" in pending and "Labels: api, frontend-request" in pending
    issues_before = issues_of(nodes.api)

    maintainer = staff_session(nodes.api)
    forged = maintainer.post(f"{nodes.api.base}/approvals/{request_id}/approve", allow_redirects=False, timeout=10)
    assert forged.status_code == 403  # no CSRF token: refused, nothing done
    assert requests_of(nodes.api, "incoming")[request_id]["status"] == "pending"
    assert decide(maintainer, nodes.api, request_id, "approve").status_code == 302

    incoming = requests_of(nodes.api, "incoming")[request_id]
    assert (incoming["status"], incoming["approved_by"]) == ("completed", STAFF)
    created = incoming["result"]["created"]
    [new] = [i for i in issues_of(nodes.api) if i not in issues_before]
    assert new["id"] == created["id"] and new["title"] == "Add user profile endpoint"
    assert new["tags"] == ["api", "frontend-request"]
    relationships = {(r["type"], r["canonical_ref"]) for r in new["remote_relationships"]}
    assert ("blocks", "org/frontend#issue-100") in relationships
    commit = git(nodes.api.repo, "log", "-1", "--format=%B")
    assert f"create issue {created['id']}" in commit
    assert request_id in commit and "claude-code-agent" in commit and nodes.frontend.identity in commit

    # No `remote sync`: frontend learns it by itself.
    outgoing = outgoing_when_final(nodes, request_id)
    assert outgoing["status"] == "completed"
    assert outgoing["result"]["created"]["id"] == created["id"]
    # The poller may have asked first; the callback comes all the same.
    callbacks = eventually(
        lambda: nodes.frontend.cli_json("audit", "list", "--request-id", request_id, "--operation", "callback"),
        what="api-service's worker calling frontend back",
    )
    assert {(c["direction"], c["status"], c["payload"]["status"]) for c in callbacks} == {
        ("incoming", "success", "completed")
    }
    shown = nodes.frontend.cli_json("issue", "show", "issue-100")
    assert shown["status"] == "blocked"
    [blocker] = [b for b in shown["blocked_by"] if b.get("remote")]
    assert blocker["id"] == f"org/api-service#{created['id']}"
    assert (blocker["title"], blocker["status"]) == ("Add user profile endpoint", "open")


def test_a_rejection_with_its_reason_reaches_frontend_and_creates_nothing(nodes):
    request_id = nodes.ask("Rewrite the API in COBOL")
    issues_before = issues_of(nodes.api)
    maintainer = staff_session(nodes.api)

    assert decide(maintainer, nodes.api, request_id, "reject", reason="Out of scope for api-service").status_code == 302

    assert requests_of(nodes.api, "incoming")[request_id]["status"] == "rejected"
    outgoing = outgoing_when_final(nodes, request_id)
    assert (outgoing["status"], outgoing["rejection_reason"]) == ("rejected", "Out of scope for api-service")
    assert issues_of(nodes.api) == issues_before


def test_the_requesters_view_of_a_rejection_and_of_an_approval(nodes):
    rejected = nodes.ask("Rewrite the API in Fortran")
    assert decide(staff_session(nodes.api), nodes.api, rejected, "reject", reason="Not *this* year").status_code == 302
    outgoing_when_final(nodes, rejected)
    approved = nodes.ask("Add a health endpoint", "--requester", "claude-code-agent")
    assert decide(staff_session(nodes.api), nodes.api, approved, "approve").status_code == 302
    created = outgoing_when_final(nodes, approved)["result"]["created"]
    ours = staff_session(nodes.frontend)

    # frontend's queue: what it sent, when, what became of it, links to api-service's pages.
    queue = ours.get(f"{nodes.frontend.base}/approvals/", timeout=10).text
    sent = queue[queue.index("Our requests and delegations") :]
    row = sent[sent.index(f"<code>{rejected}</code>") :].split("</tr>")[0]
    assert "status-rejected" in row and "Reason:</span> Not *this* year" in row
    assert f'href="{nodes.api.base}/approvals/{rejected}"' in row and "<time datetime=" in row
    row = sent[sent.index(f"<code>{approved}</code>") :].split("</tr>")[0]
    assert (
        f'created <a href="{nodes.api.base}/issues/{created["id"]}"><code>{created["canonical_ref"]}</code></a>' in row
    )

    page = ours.get(f"{nodes.frontend.base}/approvals/{rejected}", timeout=10).text
    assert "<dt>Sent</dt>" in page and "<dt>Received</dt>" not in page
    assert "<dt>Reason</dt><dd>Not *this* year</dd>" in page
    page = ours.get(f"{nodes.frontend.base}/approvals/{approved}", timeout=10).text
    assert f'href="{nodes.api.base}/issues/{created["id"]}"' in page

    # api-service's side: the issue links back to the request, here and on frontend; the result column links it.
    theirs = staff_session(nodes.api)
    issue = theirs.get(f"{nodes.api.base}/issues/{created['id']}", timeout=10).text
    assert f'href="/approvals/{approved}"' in issue and f'href="{nodes.frontend.base}/approvals/{approved}"' in issue
    decisions = theirs.get(f"{nodes.api.base}/approvals/", timeout=10).text
    assert f'created <a href="/issues/{created["id"]}">' in decisions

    listing = nodes.frontend.cli("requests", "list", "--direction", "outgoing").out
    assert f'→ [{rejected}] you asked {nodes.api.identity}: "Rewrite the API in Fortran" (rejected)' in listing
    assert "Reason: Not *this* year" in listing and f"Created: {created['canonical_ref']}" in listing


def test_an_untrusted_node_is_refused_and_its_request_is_failed(nodes, tmp_path):
    stranger = Node(tmp_path, "stranger")  # not served: it only asks
    key = link(stranger, nodes.api, trust="untrusted")

    result = stranger.cli("remote", "create-issue", nodes.api.identity, "--title", "Let me in")
    assert result.code == 1
    assert "→ Status: Failed: " in result.out
    assert "HTTP 403" in result.out and "github.com/org/stranger has trust level untrusted" in result.out
    [outgoing] = stranger.cli_json("requests", "list", "--direction", "outgoing")
    assert outgoing["status"] == "failed" and "untrusted" in outgoing["error"]
    assert outgoing["request_id"] not in requests_of(nodes.api, "incoming")

    refused = requests.post(
        f"{nodes.api.api}/federation/mutate",
        json=mutate_message(nodes, f"req-{uuid.uuid4().hex[:12]}", sender=stranger.identity),
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert refused.status_code == 403
    assert refused.json()["trust_level"] == "untrusted" and "trust level untrusted" in refused.json()["detail"]


def test_the_same_request_sent_eight_times_at_once_creates_one_issue(nodes):
    message = mutate_message(nodes, f"req-{uuid.uuid4().hex[:12]}")
    headers = {"Authorization": f"Bearer {nodes.key}"}
    issues_before = len(issues_of(nodes.api))

    def send(_: int) -> requests.Response:
        return requests.post(f"{nodes.api.api}/federation/mutate", json=message, headers=headers, timeout=30)

    with trusted_to_mutate(nodes), ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))

    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    bodies = [a.json() for a in answers]
    # The same answer (but its timestamp) eight times.
    assert {(b["status"], b["request_id"]) for b in bodies} == {("completed", message["metadata"]["request_id"])}
    assert len({json.dumps(b["created"], sort_keys=True) for b in bodies}) == 1
    created = bodies[0]["created"]["id"]
    assert len(issues_of(nodes.api)) == issues_before + 1
    assert [i["id"] for i in issues_of(nodes.api)].count(created) == 1


def test_a_request_survives_a_restart_of_api_service_before_it_is_approved(nodes):
    nodes.frontend.cli_json("issue", "create", "Add user settings page", "--id", "issue-101")
    request_id = nodes.ask("Add user settings endpoint", "--discovered-from", "issue-101")
    nodes.api.stop()
    nodes.api.start()

    approved = nodes.api.cli("request", "approve", request_id)
    assert approved.code == 0, approved.err
    assert "→ Created: " in approved.out and "Blocks org/frontend#issue-101" in approved.out

    outgoing = outgoing_when_final(nodes, request_id)
    assert outgoing["status"] == "completed"
    created = outgoing["result"]["created"]["id"]
    assert created in {i["id"] for i in issues_of(nodes.api)}
    shown = nodes.frontend.cli_json("issue", "show", "issue-101")
    assert shown["status"] == "blocked"
    assert [b["id"] for b in shown["blocked_by"]] == [f"org/api-service#{created}"]


def test_a_title_with_a_script_is_shown_as_text_on_the_approval_page(nodes):
    evil = "<script>alert(1)</script>"
    request_id = nodes.ask(evil)

    maintainer = staff_session(nodes.api)

    for url in (f"{nodes.api.base}/approvals/", f"{nodes.api.base}/approvals/{request_id}"):
        page = maintainer.get(url, timeout=10)
        assert page.status_code == 200 and request_id in page.text
        assert "<script>alert(1)" not in page.text
        assert html.escape(evil, quote=False) in page.text
