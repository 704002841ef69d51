"""The dependency graph across three real nodes with a cross-repo cycle: frontend's issue depends on one of
api-service, which depends on one of database, which depends on frontend's issue. `deps graph --cross-repo` on
frontend expands each remote with one batched query, finds the cycle through the three repositories (and two
trust levels), draws it once, and the /graph/ page's endpoint serves the same graph, cached."""

from __future__ import annotations

import json

import pytest
import requests

from tests.nodes import Node, link
from tests.requests_app.test_use_case_1 import PASSWORD, STAFF, staff_session, start_together, stop_together

pytestmark = pytest.mark.slow

QUERY = "/api/v1/federation/query"


def created_id(node: Node, title: str, *extra: str) -> str:
    return node.cli_json("issue", "create", title, *extra)["id"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("graph")
    frontend, api, database = (Node(root, name, worker=False) for name in ("frontend", "api-service", "database"))
    try:
        start_together(frontend, api, database)
        frontend.create_staff(STAFF, PASSWORD)  # /api/v1/graph is staff only (it shows the remotes)
        link(frontend, api, trust="verified")  # api-service and database show frontend their relationships
        link(frontend, database, trust="verified")
        assert frontend.cli("remote", "trust", database.identity, "trusted").code == 0  # another trust domain
        checkout = created_id(frontend, "Checkout page")
        schema = created_id(database, "Billing schema v2", "-d", f"Depends on: [[org/frontend#{checkout}]]")
        billing = created_id(api, "Billing API", "-d", f"Depends on: [[org/database#{schema}]]")
        plain = created_id(api, "Rate limits")  # not referenced by anyone: not in frontend's graph
        updated = frontend.cli("issue", "update", checkout, "-d", f"Depends on: [[org/api-service#{billing}]]")
        assert updated.code == 0, updated.err
        yield {
            "frontend": frontend,
            "api": api,
            "database": database,
            "refs": {
                "checkout": f"org/frontend#{checkout}",
                "billing": f"org/api-service#{billing}",
                "schema": f"org/database#{schema}",
                "plain": f"org/api-service#{plain}",
            },
        }
    finally:
        stop_together(frontend, api, database)


def test_the_cross_repo_graph_finds_the_cycle_through_three_repositories_with_one_query_per_remote(nodes):
    frontend, api, database, refs = nodes["frontend"], nodes["api"], nodes["database"], nodes["refs"]
    before = (api.requests_to(QUERY), database.requests_to(QUERY))
    graph = frontend.cli_json("deps", "graph", "--cross-repo")
    assert (api.requests_to(QUERY) - before[0], database.requests_to(QUERY) - before[1]) == (1, 1)
    nodes_ = {n["ref"]: n for n in graph["nodes"]}
    assert set(nodes_) == {refs["checkout"], refs["billing"], refs["schema"]}
    assert nodes_[refs["billing"]]["title"] == "Billing API" and nodes_[refs["billing"]]["symbol"] == "⧗"
    assert nodes_[refs["schema"]]["freshness"] == "fresh" and nodes_[refs["schema"]]["expanded"]
    assert {(e["from"], e["to"]) for e in graph["edges"]} == {
        (refs["checkout"], refs["billing"]),
        (refs["billing"], refs["schema"]),
        (refs["schema"], refs["checkout"]),
    }
    assert all(e["type"] == "depends-on" and e["in_cycle"] and e["cross_repo"] for e in graph["edges"])
    [cycle] = graph["cycles"]
    assert cycle["path"] == [refs["checkout"], refs["billing"], refs["schema"], refs["checkout"]]
    assert cycle["trust_levels"] == {"org/frontend": "local", "org/api-service": "verified", "org/database": "trusted"}
    assert nodes_[refs["billing"]]["page"] == f"{api.base}/issues/{refs['billing'].split('#')[1]}"

    text = frontend.cli("deps", "graph", "--cross-repo", "--format", "ascii")
    assert text.code == 0, text.err
    assert text.out.count("↻ cycle") == 1 and "Cycle: " + " → ".join(cycle["path"]) in text.out


def test_without_cross_repo_the_remote_nodes_are_leaves_and_no_call_leaves_the_node(nodes):
    frontend, api, database, refs = nodes["frontend"], nodes["api"], nodes["database"], nodes["refs"]
    before = (api.requests_to(QUERY), database.requests_to(QUERY))
    graph = frontend.cli_json("deps", "graph")
    assert (api.requests_to(QUERY), database.requests_to(QUERY)) == before
    assert {n["ref"] for n in graph["nodes"]} == {refs["checkout"], refs["billing"]}
    assert graph["cycles"] == []


def test_the_page_endpoint_serves_the_same_graph_and_caches_the_remote_answers(nodes):
    frontend, api, database, refs = nodes["frontend"], nodes["api"], nodes["database"], nodes["refs"]
    url = f"{frontend.api}/graph"
    first = requests.get(
        url, params={"cross_repo": "1", "root": refs["schema"], "depth": 2}, auth=(STAFF, PASSWORD), timeout=30
    )
    assert first.status_code == 200, first.text
    asked = (api.requests_to(QUERY), database.requests_to(QUERY))
    again = requests.get(
        url, params={"cross_repo": "1", "root": refs["schema"], "depth": 2}, auth=(STAFF, PASSWORD), timeout=30
    ).json()
    assert (api.requests_to(QUERY), database.requests_to(QUERY)) == asked  # served from the cache
    assert again["root"] == refs["schema"] and len(again["cycles"]) == 1
    assert {n["ref"] for n in again["nodes"]} == {refs["checkout"], refs["billing"], refs["schema"]}
    assert sum(r["cached"] for r in again["remotes"]) >= 2
    page = staff_session(frontend).get(f"{frontend.base}/graph/", params={"root": refs["checkout"]}, timeout=30)
    assert page.status_code == 200 and "vendor/cytoscape/cytoscape.min.js" in page.text
    library = requests.get(f"{frontend.base}/static/vendor/cytoscape/cytoscape.min.js", timeout=30)
    assert library.status_code == 200 and len(library.content) > 100_000
    assert requests.get(url, params={"depth": "1"}, timeout=30).status_code == 403  # anonymous
    bad = requests.get(url, params={"depth": "99"}, auth=(STAFF, PASSWORD), timeout=30)
    assert bad.status_code == 400 and list(bad.json()) == ["depth"]
    assert json.loads(frontend.cli("deps", "graph", "--format", "json").out)["repo"] == "org/frontend"
