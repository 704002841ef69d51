"""Two real nodes talking HTTP: `alpha` (an empty repository) and `beta` (the sudocode-ai__sudocode corpus, 676
issues), each a temp git repository served by its own `sudocode-fed serve` on 127.0.0.1 and driven through the
CLI. What beta answers is checked against what its JSONL file holds, read in the test. Nothing here needs the
Celery worker, so the nodes run without it."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import requests

from tests.nodes import Node, link

# All but the last test read the corpus (through the shared pair); a missing corpus skips them.
pytestmark = [pytest.mark.slow, pytest.mark.corpus]

DATASET = "sudocode-ai__sudocode"
QUERY = "/api/v1/federation/query"
INFO = "/api/v1/federation/info"


@dataclass
class Pair:
    alpha: Node
    beta: Node
    key: str  # alpha's key at beta

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def query(self, body: dict) -> requests.Response:
        return requests.post(f"{self.beta.api}/federation/query", json=body, headers=self.auth, timeout=10)

    def remote_query(self, *args: str) -> dict:
        return self.alpha.cli_json("remote", "query", self.beta.identity, "issue", *args)


def start_together(*nodes: Node) -> None:
    """Start the nodes at once: their start-ups (migrations, the JSONL import) overlap."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(Node.start, nodes))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-nodes")
    beta = Node(root, "beta", dataset=DATASET, worker=False)
    alpha = Node(root, "alpha", worker=False).make_public()  # the tests read its issue pages anonymously
    try:
        start_together(beta, alpha)
        yield Pair(alpha, beta, link(alpha, beta, trust="verified"))
    finally:
        alpha.stop()
        beta.stop()


def issues_of(node: Node) -> list[dict]:
    """The issues the node's JSONL holds now (tests that add issues to beta add them there too)."""
    path = node.repo / ".sudocode" / "issues.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def listed_issues_of(node: Node) -> list[dict]:
    """What a query without `archived` or `ids` answers from the node's JSONL: its issues that are not archived."""
    return [i for i in issues_of(node) if not i.get("archived")]


def when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ids_of(results: list[dict]) -> list[str]:
    return [r["id"] for r in results]


def cross_repo(node: Node, issue_id: str) -> dict[str, dict]:
    return {ref["ref"]: ref for ref in node.cli_json("issue", "show", issue_id)["cross_repo"]}


def page_row(node: Node, issue_id: str, ref: str) -> str:
    """The row of the issue page's cross-repo table that shows `ref`, tags stripped."""
    page = requests.get(f"{node.base}/issues/{issue_id}", timeout=10)
    assert page.status_code == 200
    rows = [row for row in re.findall(r"<tr>.*?</tr>", page.text, re.S) if f"<code>{ref}</code>" in row]
    assert len(rows) == 1, f"{ref} is not in the cross-repo table of {issue_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", rows[0]).split())


# --- discover ----------------------------------------------------------------------------------------------


def test_after_link_remote_show_has_the_remotes_capabilities_and_the_trust_it_grants_us(pair):
    shown = pair.alpha.cli_json("remote", "show", pair.beta.identity)
    assert shown["sync_status"] == "synced"
    caps = shown["capabilities"]
    assert {"discover", "query_issues", "query_specs"} <= set(caps["operations"])
    assert caps["trust_level"] == "verified"
    assert caps["endpoints"]["rest"] == pair.beta.api

    text = pair.alpha.cli("remote", "show", pair.beta.identity)
    assert "query_issues" in text.out and "It trusts us as: verified" in text.out


def test_info_is_untrusted_without_a_key_and_the_linked_level_with_it(pair):
    anonymous = requests.get(f"{pair.beta.api}/federation/info", timeout=10)
    assert anonymous.status_code == 200
    assert anonymous.json()["capabilities"]["trust_level"] == "untrusted"
    assert "to" not in anonymous.json()

    known = requests.get(f"{pair.beta.api}/federation/info", headers=pair.auth, timeout=10).json()
    assert known["type"] == "discover_response"
    assert known["from"] == pair.beta.identity and known["to"] == pair.alpha.identity
    assert known["capabilities"]["trust_level"] == "verified"
    assert "query_issues" in known["capabilities"]["operations"]

    wrong = requests.get(f"{pair.beta.api}/federation/info", headers={"Authorization": "Bearer sfk_nope"}, timeout=10)
    assert wrong.json()["capabilities"]["trust_level"] == "untrusted"


def test_the_a2a_endpoint_answers_discover_like_info(pair):
    info = requests.get(f"{pair.beta.api}/federation/info", headers=pair.auth, timeout=10).json()
    message = {"type": "discover", "from": pair.alpha.identity, "to": pair.beta.identity}
    a2a = requests.post(f"{pair.beta.api}/federation/a2a", json=message, headers=pair.auth, timeout=10)
    assert a2a.status_code == 200
    answer = a2a.json()
    assert answer["type"] == "discover_response" and answer["to"] == pair.alpha.identity
    assert answer["capabilities"] == info["capabilities"]

    anonymous = requests.post(f"{pair.beta.api}/federation/a2a", json=message, timeout=10).json()
    assert anonymous["capabilities"]["trust_level"] == "untrusted"


# --- query: each filter, through the CLI --------------------------------------------------------------------

SPEC = "s-7p1w"  # the spec most issues of the corpus relate to
SINCE = "2026-01-01T00:00:00Z"


def _has_spec(issue: dict, specs: set[str]) -> bool:
    return any(r["to_type"] == "spec" and r["to"] in specs for r in issue.get("relationships") or [])


FILTER_CASES = {
    "status": (["--status", "open"], lambda i: i["status"] == "open"),
    "statuses": (["--status", "blocked,in_progress"], lambda i: i["status"] in ("blocked", "in_progress")),
    "labels": (["--labels", "frontend,testing"], lambda i: {"frontend", "testing"} <= set(i["tags"])),
    "priority": (["--priority", "0,1"], lambda i: i["priority"] in (0, 1)),
    "spec_refs": (["--filters", json.dumps({"spec_refs": [SPEC]})], lambda i: _has_spec(i, {SPEC})),
    "updated_since": (
        ["--filters", json.dumps({"updated_since": SINCE})],
        lambda i: when(i["updated_at"]) >= when(SINCE),
    ),
    "combined": (
        ["--status", "open", "--labels", "frontend", "--filters", json.dumps({"priority": [0, 1, 2]})],
        lambda i: i["status"] == "open" and "frontend" in i["tags"] and i["priority"] <= 2,
    ),
}


@pytest.mark.parametrize("case", FILTER_CASES)
def test_remote_query_with_a_filter_returns_what_the_remotes_jsonl_holds(pair, case):
    args, wanted = FILTER_CASES[case]
    expected = {i["id"] for i in listed_issues_of(pair.beta) if wanted(i)}
    assert expected, "a filter that matches nothing tests nothing"
    answer = pair.remote_query(*args, "--all-pages", "--limit", "200")
    assert answer["total"] == len(expected)
    assert sorted(ids_of(answer["results"])) == sorted(expected)


def test_remote_query_by_ids_and_uuids(pair):
    issues = issues_of(pair.beta)
    first, middle, last = issues[0], issues[len(issues) // 2], issues[-1]
    answer = pair.remote_query("--ids", f"{first['id']},{middle['uuid']},{last['id']},ISSUE-8999")
    assert sorted(ids_of(answer["results"])) == sorted([first["id"], middle["id"], last["id"]])
    assert answer["total"] == 3
    by_id = {r["id"]: r for r in answer["results"]}
    assert by_id[middle["id"]]["title"] == middle["title"]
    assert by_id[middle["id"]]["status"] == middle["status"]
    assert by_id[middle["id"]]["canonical_ref"] == f"org/beta#{middle['id']}"


def test_remote_query_results_carry_what_a_verified_caller_may_see(pair):
    open_issue = next(i for i in issues_of(pair.beta) if i["status"] == "open")
    [result] = pair.remote_query("--ids", open_issue["id"], "--include", "spec_refs")["results"]
    assert result["content"] == open_issue["content"]
    assert result["tags"] == open_issue["tags"]
    assert result["spec_refs"] == sorted({r["to"] for r in open_issue["relationships"] if r["to_type"] == "spec"})
    assert "feedback" not in result  # trusted callers only


@pytest.mark.parametrize("archived", [False, True])
def test_remote_query_all_pages_of_50_returns_every_issue_once(pair, archived):
    expected = [i["id"] for i in (issues_of if archived else listed_issues_of)(pair.beta)]
    extra = ["--filters", json.dumps({"archived": "any"})] if archived else []
    answer = pair.remote_query("--all-pages", "--limit", "50", *extra)
    got = ids_of(answer["results"])
    assert len(got) == len(set(got)) == len(expected) == answer["total"]
    assert set(got) == set(expected)


def test_remote_query_without_all_pages_returns_one_page_and_the_total(pair):
    answer = pair.remote_query("--status", "closed", "--limit", "50")
    assert len(answer["results"]) == 50
    assert answer["total"] == sum(1 for i in listed_issues_of(pair.beta) if i["status"] == "closed")


# --- pagination over HTTP -----------------------------------------------------------------------------------


def _pages(pair: Pair, body: dict, *, between=None) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        response = pair.query(body | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        data = response.json()
        pages.append(ids_of(data["results"]))
        cursor = data["metadata"].get("next_cursor")
        if not cursor:
            return pages
        if between:
            between(len(pages))


def test_paging_with_the_cursor_has_no_gaps_and_no_duplicates(pair):
    expected = {i["id"] for i in listed_issues_of(pair.beta)}
    assert len(expected) < len(issues_of(pair.beta)), "the corpus has archived issues, which a query leaves out"
    pages = _pages(pair, {"entity": "issue", "limit": 50})
    assert len(pages) == -(-len(expected) // 50)
    assert all(len(page) == 50 for page in pages[:-1]) and pages[-1]
    seen = [issue_id for page in pages for issue_id in page]
    assert len(seen) == len(set(seen))
    assert set(seen) == expected


def test_a_cursor_reused_with_other_filters_is_refused_naming_it(pair):
    first = pair.query({"entity": "issue", "limit": 50, "filters": {"status": "closed"}}).json()
    cursor = first["metadata"]["next_cursor"]
    assert cursor
    refused = pair.query({"entity": "issue", "limit": 50, "filters": {"status": "open"}, "cursor": cursor})
    assert refused.status_code == 400
    assert [e["path"] for e in refused.json()["errors"]] == ["query.cursor"]

    bogus = pair.query({"entity": "issue", "limit": 50, "cursor": "not-a-cursor"})
    assert bogus.status_code == 400
    assert [e["path"] for e in bogus.json()["errors"]] == ["query.cursor"]


def test_issues_created_on_the_remote_between_two_pages_neither_duplicate_nor_skip_existing_ones(pair):
    existing = {i["id"] for i in listed_issues_of(pair.beta)}
    added: list[str] = []

    def create_two(page_number: int) -> None:
        if page_number != 2:
            return
        # One through beta's CLI (created now: it sorts last) and one as sudocode itself or a `git pull` would
        # write it, created before everything else: it sorts into the pages already read, which is where an
        # offset-based page would shift every later item by one.
        made = pair.beta.cli_json("issue", "create", "Created while paging", "--id", "ISSUE-9001")
        added.append(made["id"])
        early = {
            "id": "ISSUE-9002",
            "uuid": str(uuid.uuid4()),
            "title": "Written into the past",
            "content": "",
            "status": "open",
            "priority": 2,
            "assignee": None,
            "archived": 0,
            "archived_at": None,
            "created_at": "2020-01-01 00:00:00",
            "updated_at": "2020-01-01 00:00:00",
            "closed_at": None,
            "parent_id": None,
            "parent_uuid": None,
            "relationships": [],
            "tags": [],
        }
        with (pair.beta.repo / ".sudocode" / "issues.jsonl").open("a") as f:
            f.write(json.dumps(early) + "\n")
        added.append(early["id"])

    pages = _pages(pair, {"entity": "issue", "limit": 50}, between=create_two)
    assert added == ["ISSUE-9001", "ISSUE-9002"]
    seen = [issue_id for page in pages for issue_id in page]
    assert len(seen) == len(set(seen)), "an item came twice"
    assert existing <= set(seen), f"skipped: {sorted(existing - set(seen))}"
    assert "ISSUE-9002" not in seen  # it sorts before the cursor
    # Both are there for the next reader.
    assert set(added) <= set(ids_of(pair.remote_query("--ids", ",".join(added))["results"]))


# --- cross-repo references ----------------------------------------------------------------------------------


def test_a_cross_repo_reference_shows_the_remote_title_and_status(pair):
    target = next(i for i in issues_of(pair.beta) if i["status"] == "open")
    created = pair.alpha.cli_json(
        "issue", "create", "Needs beta's work", "--content", f"Waits on [[org/beta#{target['id']}]]."
    )
    refs = cross_repo(pair.alpha, created["id"])
    ref = refs[f"org/beta#{target['id']}"]
    assert ref["remote"] == pair.beta.identity
    assert ref["title"] == target["title"] and ref["status"] == target["status"]
    assert ref["freshness"] == "fresh" and ref["fetch_status"] == "success"
    assert ref["uuid"] == target["uuid"]

    text = pair.alpha.cli("issue", "show", created["id"]).out
    assert f'org/beta#{target["id"]} (open) - "{target["title"]}" [fresh]' in text

    row = page_row(pair.alpha, created["id"], f"org/beta#{target['id']}")
    assert html.escape(target["title"]) in row
    assert " open " in row and " fresh " in row


def test_a_sync_refreshes_every_reference_to_a_remote_with_one_query(pair):
    corpus = [i for i in issues_of(pair.beta) if not i["id"].startswith("ISSUE-900")]  # not those tests add
    targets = [i["id"] for i in corpus[::60][:10]]
    assert len(targets) == 10
    # Four local issues share the targets (one twice), plus a repository nobody declared and an id beta lacks.
    contents = [
        " ".join(f"[[org/beta#{t}]]" for t in targets[0:4]),
        " ".join(f"[[org/beta#{t}]]" for t in targets[3:7]) + " and [[org/nowhere#ISSUE-001]]",
        " ".join(f"[[org/beta#{t}]]" for t in targets[7:10]),
        "[[org/beta#ISSUE-8999]]",
    ]
    local = [pair.alpha.cli_json("issue", "create", f"Batch {n}", "--content", c)["id"] for n, c in enumerate(contents)]

    queries, infos = pair.beta.requests_to(QUERY), pair.beta.requests_to(INFO)
    synced = pair.alpha.cli("remote", "sync", pair.beta.identity)
    assert synced.code == 0, synced.err
    assert pair.beta.requests_to(QUERY) - queries == 1
    assert pair.beta.requests_to(INFO) - infos == 1  # discovery, on its own

    refreshed, total = map(int, re.search(r"(\d+) of (\d+) references refreshed", synced.out).groups())
    assert refreshed >= 11 and total > refreshed  # ISSUE-8999 is not in beta; org/nowhere is not beta

    by_id = {i["id"]: i for i in issues_of(pair.beta)}
    refs = {}
    for issue_id in local[:3]:
        refs |= cross_repo(pair.alpha, issue_id)
    assert pair.beta.requests_to(QUERY) - queries == 1  # showing them asked nothing more: the answers are fresh
    for t in targets:
        ref = refs[f"org/beta#{t}"]
        assert (ref["title"], ref["status"], ref["freshness"]) == (by_id[t]["title"], by_id[t]["status"], "fresh")
    assert refs["org/nowhere#ISSUE-001"]["remote"] is None
    assert refs["org/nowhere#ISSUE-001"]["error"] == "org/nowhere is not a known remote"
    missing = cross_repo(pair.alpha, local[3])["org/beta#ISSUE-8999"]
    assert missing["freshness"] == "missing" and "not found" in missing["error"]


def test_a_reference_the_remote_does_not_have_is_not_asked_for_again_within_the_ttl(pair):
    local = pair.alpha.cli_json("issue", "create", "Dangling", "--content", "[[org/beta#ISSUE-8998]]")["id"]
    queries = pair.beta.requests_to(QUERY)
    assert cross_repo(pair.alpha, local)["org/beta#ISSUE-8998"]["freshness"] == "missing"
    assert pair.beta.requests_to(QUERY) == queries


# --- a remote that goes away and comes back -----------------------------------------------------------------


@pytest.fixture
def fragile(tmp_path):
    """A pair of small nodes whose remote (`delta`) a test may stop: kept apart from the shared pair."""
    delta = Node(tmp_path, "delta", worker=False)
    gamma = Node(tmp_path, "gamma", worker=False).make_public()
    made = delta.cli("issue", "create", "Remote work", "--id", "issue-7", "--status", "in_progress")
    assert made.code == 0, made.err
    try:
        start_together(delta, gamma)
        yield Pair(gamma, delta, link(gamma, delta, trust="verified"))
    finally:
        gamma.stop()
        delta.stop()


def _set_ttl(node: Node, seconds: int) -> None:
    config = node.config()
    config["cache"]["ttl_seconds"] = seconds
    node.write_config(config)


def _remote_row(node: Node, url: str) -> dict:
    return next(r for r in node.cli_json("remote", "list") if r["url"] == url)


def test_a_stopped_remote_leaves_the_cached_reference_marked_stale_until_it_is_back(fragile):
    gamma, delta = fragile.alpha, fragile.beta
    local = gamma.cli_json("issue", "create", "Uses delta", "--content", "See [[org/delta#issue-7]].")["id"]
    assert cross_repo(gamma, local)["org/delta#issue-7"]["freshness"] == "fresh"

    _set_ttl(gamma, 1)
    delta.stop()
    time.sleep(1.2)
    ref = cross_repo(gamma, local)["org/delta#issue-7"]
    assert (ref["title"], ref["status"], ref["freshness"]) == ("Remote work", "in_progress", "stale")
    assert ref["remote_sync_status"] == "unreachable"
    listed = _remote_row(gamma, delta.identity)
    assert listed["sync_status"] == "unreachable" and listed["last_error"]
    text = gamma.cli("issue", "show", local).out
    assert 'org/delta#issue-7 (in_progress) - "Remote work" [stale, fetched' in text and "unreachable" in text
    row = page_row(gamma, local, "org/delta#issue-7")
    assert "Remote work" in row and " in_progress " in row and " stale " in row and "remote unreachable" in row
    down = gamma.cli("remote", "sync", delta.identity)
    assert down.code == 1 and "unreachable" in down.out and "cached data kept" in down.out
    assert cross_repo(gamma, local)["org/delta#issue-7"]["title"] == "Remote work"

    delta.start()
    _set_ttl(gamma, 300)
    synced = gamma.cli("remote", "sync", delta.identity)
    assert synced.code == 0, synced.err
    assert "1 of 1 references refreshed" in synced.out
    ref = cross_repo(gamma, local)["org/delta#issue-7"]
    assert (ref["title"], ref["status"], ref["freshness"]) == ("Remote work", "in_progress", "fresh")
    listed = _remote_row(gamma, delta.identity)
    assert listed["sync_status"] == "synced" and listed["last_error"] is None
