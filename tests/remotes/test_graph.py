"""The dependency graph (remotes.graph): local relationships, cross-repo references and their cached state, remote
nodes expanded with one batched query per remote, cycles found (across repositories too) and never looped over,
root and depth, and every output format. Calls to remotes are replaced by a fake `remote_query`; the real nodes
are in test_graph_nodes.py."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from federation.services import answer_query
from federation_site.config import default_config, write_config
from protocol import messages
from remotes import services as remote_services
from remotes.client import RemoteRejected
from remotes.graph import GraphError, answers_cache, dependency_graph, graph_render, strongly_connected
from remotes.models import CrossRepoReference, RemoteRepo
from remotes.policy import Caller
from tests.conftest import cli_env, git, run_cli
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

HERE = "github.com/org/frontend"
API = "github.com/org/api-service"
DB = "github.com/org/database"


def remote_rel(remote: str, remote_id: str, rel: str = "depends-on") -> dict:
    path = remote.split("/", 1)[1]
    return {"type": rel, "remote_repo": remote, "remote_id": remote_id, "canonical_ref": f"{path}#{remote_id}"}


@pytest.fixture
def node(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.outgoing.references_changed", lambda: None)
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    config = default_config(url=HERE, display_name="Frontend")
    config["remote_repos"] = [
        {"url": API, "display_name": "api-service", "trust_level": "verified", "endpoint": "http://api.test/api/v1"},
        {"url": DB, "display_name": "database", "trust_level": "trusted", "endpoint": "http://db.test/api/v1"},
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    git(node_repo, "add", "-A")
    git(node_repo, "commit", "-qm", "init")
    remote_services.remotes_reconcile(force=True)
    answers_cache.clear()
    yield node_repo
    answers_cache.clear()


class FakeRemotes:
    """What each remote answers to a query for ids, and the queries it was sent."""

    def __init__(self, monkeypatch, entities: dict[str, dict[str, dict]]):
        self.entities = entities  # remote url -> id -> result
        self.queries: list[tuple[str, str, list[str], list[str]]] = []
        self.refuse: dict[str, Exception] = {}
        monkeypatch.setattr("remotes.sync.remote_query", self.query)

    def query(self, *, remote, query, correlation_id=None):
        ids = query["filters"]["ids"]
        self.queries.append((remote.url, query["entity"], ids, query.get("include") or []))
        if remote.url in self.refuse:
            raise self.refuse[remote.url]
        found = self.entities.get(remote.url, {})
        return {"type": "query_response", "results": [found[i] for i in ids if i in found]}


def result(entity_id: str, status: str, title: str, *, rels=(), remote_rels=()) -> dict:
    return {
        "id": entity_id,
        "uuid": f"uuid-{entity_id}",
        "kind": "issue",
        "title": title,
        "status": status,
        "relationships": [
            {"from": entity_id, "from_type": "issue", "to": to, "to_type": "issue", "type": t} for t, to in rels
        ],
        "remote_relationships": list(remote_rels),
    }


def by_ref(graph: dict) -> dict[str, dict]:
    return {n["ref"]: n for n in graph["nodes"]}


def edges(graph: dict) -> set[tuple[str, str, str]]:
    return {(e["from"], e["to"], e["type"]) for e in graph["edges"]}


def test_local_issues_and_specs_with_their_status_symbols_and_relationships(node):
    spec = services.spec_create(title="Platform v2", actor="ana")
    done = services.issue_create(title="Auth", actor="ana", relationships=[("implements", spec.sudocode_id)])
    services.issue_update(issue=done.uuid, actor="ana", status="closed")
    api = services.issue_create(title="API", actor="ana", relationships=[("implements", spec.sudocode_id)])
    services.issue_update(issue=api.uuid, actor="ana", status="in_progress")
    gateway = services.issue_create(title="Gateway", actor="ana", relationships=[("blocks", api.sudocode_id)])
    graph = dependency_graph()
    nodes = by_ref(graph)
    ref = "org/frontend#{}".format
    assert {r: n["symbol"] for r, n in nodes.items()} == {
        ref(spec.sudocode_id): "§",
        ref(done.sudocode_id): "✓",
        ref(api.sudocode_id): "→",
        ref(gateway.sudocode_id): "⧗",
    }
    assert all(n["local"] and n["freshness"] == "local" and n["trust_level"] == "local" for n in nodes.values())
    assert edges(graph) == {
        (ref(done.sudocode_id), ref(spec.sudocode_id), "implements"),
        (ref(api.sudocode_id), ref(spec.sudocode_id), "implements"),
        (ref(gateway.sudocode_id), ref(api.sudocode_id), "blocks"),
    }
    assert graph["cycles"] == [] and graph["remotes"] == []


def test_a_local_cycle_is_found_and_the_ascii_tree_shows_it_once(node):
    a = services.issue_create(title="A", actor="ana")
    b = services.issue_create(title="B", actor="ana", relationships=[("depends-on", a.sudocode_id)])
    c = services.issue_create(title="C", actor="ana", relationships=[("depends-on", b.sudocode_id)])
    services.issue_update(issue=a.uuid, actor="ana", add_relationships=[("depends-on", c.sudocode_id)])
    services.issue_create(title="Unrelated", actor="ana", relationships=[("related", a.sudocode_id)])
    graph = dependency_graph()
    [cycle] = graph["cycles"]
    refs = {f"org/frontend#{x.sudocode_id}" for x in (a, b, c)}
    assert set(cycle["nodes"]) == refs and cycle["path"][0] == cycle["path"][-1] and len(cycle["path"]) == 4
    assert {n["ref"] for n in graph["nodes"] if n["in_cycle"]} == refs
    assert {(e["from"], e["to"]) for e in graph["edges"] if e["in_cycle"]} == {
        (f"org/frontend#{b.sudocode_id}", f"org/frontend#{a.sudocode_id}"),
        (f"org/frontend#{c.sudocode_id}", f"org/frontend#{b.sudocode_id}"),
        (f"org/frontend#{a.sudocode_id}", f"org/frontend#{c.sudocode_id}"),
    }
    text = graph_render(graph, fmt="ascii")
    assert text.count("↻ cycle") == 1, text
    assert "Cycle: " in text and "Legend: ✓=closed, →=in-progress, ✗=blocked, ⧗=open" in text
    for x in (a, b, c):  # each node drawn once with its label, then only named
        assert text.count(f'"{x.title}"') == 1, text


def test_one_wait_written_on_both_records_is_one_edge_and_no_cycle(node):
    a = services.issue_create(title="A", actor="ana")
    b = services.issue_create(title="B", actor="ana", relationships=[("blocks", a.sudocode_id)])
    services.issue_update(issue=a.uuid, actor="ana", add_relationships=[("depends-on", b.sudocode_id)])
    graph = dependency_graph()
    assert len(graph["edges"]) == 1 and graph["cycles"] == []  # "B blocks A" is "A depends-on B"
    assert "↻ cycle" not in graph_render(graph, fmt="ascii")


def test_root_and_depth_keep_the_nodes_within_that_many_edges_both_ways(node):
    a = services.issue_create(title="A", actor="ana")
    b = services.issue_create(title="B", actor="ana", relationships=[("depends-on", a.sudocode_id)])
    c = services.issue_create(title="C", actor="ana", relationships=[("depends-on", b.sudocode_id)])
    services.issue_create(title="D", actor="ana", relationships=[("depends-on", c.sudocode_id)])
    graph = dependency_graph(root=b.sudocode_id, depth=1)
    assert graph["root"] == f"org/frontend#{b.sudocode_id}"
    assert {n["title"]: n["depth"] for n in graph["nodes"]} == {"A": 1, "B": 0, "C": 1}
    assert len(graph["edges"]) == 2
    assert {n["title"] for n in dependency_graph(root=f"org/frontend#{b.sudocode_id}", depth=2)["nodes"]} == {
        "A",
        "B",
        "C",
        "D",
    }
    assert [n["title"] for n in dependency_graph(root=a.uuid, depth=0)["nodes"]] == ["A"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"root": "i-nope"}, "root"),
        ({"root": "org/elsewhere#i-1"}, "root"),
        ({"root": "#"}, "root"),
        ({"depth": -1}, "depth"),
        ({"depth": 51}, "depth"),
        ({"depth": "3"}, "depth"),
    ],
)
def test_bad_input_raises_graph_error_naming_the_field(node, kwargs, field):
    with pytest.raises(GraphError) as raised:
        dependency_graph(**kwargs)
    assert raised.value.field == field and str(raised.value)


def test_remote_nodes_show_their_cached_status_and_freshness_and_nothing_is_called(node, monkeypatch):
    fake = FakeRemotes(monkeypatch, {})
    issue = services.issue_create(
        title="Page",
        actor="ana",
        remote_relationships=[remote_rel(API, "issue-084"), remote_rel(API, "issue-085", "related")],
        content="See [[org/nowhere#i-abcd]]",
    )
    remote_services.references_rebuild()
    CrossRepoReference.objects.filter(remote_id="issue-084").update(
        cached_data={"title": "Add billing schema", "status": "open"},
        last_fetched_at=timezone.now(),
        fetch_status="success",
    )
    CrossRepoReference.objects.filter(remote_id="issue-085").update(
        cached_data={"title": "Old", "status": "closed"},
        last_fetched_at=timezone.now() - timezone.timedelta(hours=1),
        fetch_status="success",
    )
    graph = dependency_graph()
    nodes = by_ref(graph)
    assert fake.queries == []
    fresh, stale = nodes["org/api-service#issue-084"], nodes["org/api-service#issue-085"]
    assert (fresh["symbol"], fresh["freshness"], fresh["title"], fresh["local"]) == (
        "⧗",
        "fresh",
        "Add billing schema",
        False,
    )
    assert (stale["symbol"], stale["freshness"], stale["trust_level"]) == ("✓", "stale", "verified")
    assert fresh["page"] == "http://api.test/issues/issue-084" and not fresh["expanded"]
    unknown = nodes["org/nowhere#i-abcd"]
    assert unknown["remote"] is None and "not a remote of this node" in unknown["note"]
    own = f"org/frontend#{issue.sudocode_id}"
    assert {(e["to"], e["type"], e["cross_repo"]) for e in graph["edges"] if e["from"] == own} == {
        ("org/api-service#issue-084", "depends-on", True),
        ("org/api-service#issue-085", "related", True),
        ("org/nowhere#i-abcd", "references", True),
    }
    text = graph_render(graph, fmt="ascii")
    assert "[remote, fresh]" in text and "[remote, stale, fetched" in text


def test_cross_repo_expands_each_remote_with_one_batched_query_and_finds_the_cycle_through_them(node, monkeypatch):
    mine = services.issue_create(
        title="Checkout page",
        actor="ana",
        remote_relationships=[remote_rel(API, "issue-1"), remote_rel(API, "issue-2")],
    )
    ours = f"org/frontend#{mine.sudocode_id}"
    fake = FakeRemotes(
        monkeypatch,
        {
            API: {
                "issue-1": result("issue-1", "in_progress", "API", remote_rels=[remote_rel(DB, "db-7")]),
                "issue-2": result("issue-2", "blocked", "Rate limits", rels=[("depends-on", "issue-3")]),
                "issue-3": result("issue-3", "open", "Quota table"),
            },
            DB: {
                "db-7": result(
                    "db-7",
                    "open",
                    "Schema v2",
                    remote_rels=[{**remote_rel(HERE, mine.sudocode_id), "canonical_ref": ours}],
                ),
            },
        },
    )
    graph = dependency_graph(cross_repo=True)
    nodes = by_ref(graph)
    # Level 1: api-service once for both ids; level 2: database once, api-service once for issue-3.
    assert sorted((url, ids) for url, _kind, ids, _inc in fake.queries) == [
        (API, ["issue-1", "issue-2"]),
        (API, ["issue-3"]),
        (DB, ["db-7"]),
    ]
    assert all(include == ["relationships", "remote_relationships"] for *_x, include in fake.queries)
    assert (nodes["org/api-service#issue-1"]["symbol"], nodes["org/api-service#issue-1"]["freshness"]) == ("→", "fresh")
    assert nodes["org/api-service#issue-2"]["symbol"] == "✗" and nodes["org/database#db-7"]["trust_level"] == "trusted"
    assert ("org/api-service#issue-2", "org/api-service#issue-3", "depends-on") in edges(graph)
    assert ("org/database#db-7", ours, "depends-on") in edges(graph)
    [cycle] = graph["cycles"]
    assert set(cycle["nodes"]) == {ours, "org/api-service#issue-1", "org/database#db-7"}
    assert cycle["path"] == [ours, "org/api-service#issue-1", "org/database#db-7", ours]  # each waits for the next
    assert cycle["repos"] == ["org/api-service", "org/database", "org/frontend"]
    assert cycle["trust_levels"] == {"org/frontend": "local", "org/api-service": "verified", "org/database": "trusted"}
    assert not nodes["org/api-service#issue-3"]["in_cycle"]
    # The answers are cached: drawing it again asks nobody.
    again = dependency_graph(cross_repo=True)
    assert len(fake.queries) == 3 and again["cycles"] == graph["cycles"]
    assert {r["url"]: r["cached"] for r in again["remotes"]} == {API: 3, DB: 1}
    # At depth 1 from our issue: the remote issues are drawn (expanded, from the cache), what they reach is not.
    near = dependency_graph(root=mine.sudocode_id, depth=1, cross_repo=True)
    assert set(by_ref(near)) == {ours, "org/api-service#issue-1", "org/api-service#issue-2"}
    assert edges(near) == {
        (ours, "org/api-service#issue-1", "depends-on"),
        (ours, "org/api-service#issue-2", "depends-on"),
    }
    assert near["cycles"] == [] and len(fake.queries) == 3


def test_a_remote_that_refuses_stays_a_leaf_with_its_cached_data_and_a_note(node, monkeypatch):
    services.issue_create(title="Page", actor="ana", remote_relationships=[remote_rel(API, "issue-1")])
    remote_services.references_rebuild()
    CrossRepoReference.objects.update(
        cached_data={"title": "API", "status": "open"}, last_fetched_at=timezone.now(), fetch_status="success"
    )
    fake = FakeRemotes(monkeypatch, {})
    fake.refuse[API] = RemoteRejected("403: github.com/org/frontend may not include relationships", url=API)
    graph = dependency_graph(cross_repo=True)
    node_ = by_ref(graph)["org/api-service#issue-1"]
    assert (node_["title"], node_["status"], node_["expanded"]) == ("API", "open", False)
    assert "not expanded: 403" in node_["note"]
    assert graph["remotes"][0]["error"].startswith("403") and graph["remotes"][0]["queries"] == 1
    assert "Not expanded from github.com/org/api-service: 403" in graph_render(graph, fmt="ascii")


def test_a_remote_that_does_not_show_relationships_is_not_expanded(node, monkeypatch):
    services.issue_create(title="Page", actor="ana", remote_relationships=[remote_rel(API, "issue-1")])
    plain = {"id": "issue-1", "uuid": "u", "kind": "issue", "title": "API", "status": "closed"}
    FakeRemotes(monkeypatch, {API: {"issue-1": plain}})
    node_ = by_ref(dependency_graph(cross_repo=True))["org/api-service#issue-1"]
    assert node_["status"] == "closed" and not node_["expanded"] and "does not show us" in node_["note"]


def test_every_format_shows_the_nodes_and_the_cycle(node):
    a = services.issue_create(title='Say "hi"', actor="ana")
    b = services.issue_create(title="B|C", actor="ana", relationships=[("blocks", a.sudocode_id)])
    services.issue_update(issue=a.uuid, actor="ana", add_relationships=[("blocks", b.sudocode_id)])
    graph = dependency_graph()
    assert json.loads(graph_render(graph, fmt="json")) == graph
    dot = graph_render(graph, fmt="dot")
    assert dot.startswith("digraph dependencies {") and dot.rstrip().endswith("}")
    assert f'"org/frontend#{b.sudocode_id}" -> "org/frontend#{a.sudocode_id}" [label="blocks", color="red"]' in dot
    assert 'Say \\"hi\\"' in dot and 'label="org/frontend"' in dot
    mermaid = graph_render(graph, fmt="mermaid")
    assert mermaid.startswith("flowchart LR") and "linkStyle 0,1 stroke:red" in mermaid
    assert "Say #quot;hi#quot;" in mermaid and "B#124;C" in mermaid and '"' not in mermaid.split("Say", 1)[1][:12]
    assert "↻ cycle" in graph_render(graph, fmt="ascii")
    with pytest.raises(GraphError) as raised:
        graph_render(graph, fmt="svg")
    assert raised.value.field == "format"


def test_strongly_connected_components_of_a_long_chain_and_two_loops():
    chain = [f"n{i}" for i in range(5000)]  # deeper than Python's recursion limit
    succ = {a: [b] for a, b in zip(chain, chain[1:], strict=False)}
    assert len(strongly_connected(chain, succ)) == 5000
    succ = {"a": ["b"], "b": ["a", "c"], "c": ["d"], "d": ["c"], "e": ["e"]}
    components = sorted(sorted(c) for c in strongly_connected(list("abcde"), succ))
    assert components == [["a", "b"], ["c", "d"], ["e"]]


def test_a_query_may_include_the_remote_relationships_of_each_result(node):
    issue = services.issue_create(
        title="Page",
        actor="ana",
        remote_relationships=[remote_rel(API, "issue-084")],
        content="[[org/database#i-abcd]]",
    )
    api = RemoteRepo.objects.get(url=API)
    message = messages.parse_query(
        {"type": "query", "from": API, "query": {"entity": "issue", "include": ["remote_relationships"]}}
    )
    [found] = answer_query(caller=Caller(api), message=message)["results"]
    assert found["id"] == issue.sudocode_id
    assert found["remote_relationships"] == [
        {
            "type": "depends-on",
            "remote_repo": API,
            "remote_id": "issue-084",
            "remote_entity_type": "issue",
            "canonical_ref": "org/api-service#issue-084",
        },
        {
            "type": "references",
            "remote_repo": "org/database",
            "remote_id": "i-abcd",
            "remote_entity_type": "issue",
            "canonical_ref": "org/database#i-abcd",
        },
    ]


def test_cli_deps_graph_prints_each_format_and_refuses_bad_input_with_exit_2(node):
    a = services.issue_create(title="A", actor="ana")
    services.issue_create(title="B", actor="ana", relationships=[("depends-on", a.sudocode_id)])
    env = cli_env()
    out = run_cli("--repo", str(node), "deps", "graph", "--format", "json", env=env)
    assert out.code == 0, out.err
    assert {n["title"] for n in json.loads(out.out)["nodes"]} == {"A", "B"}
    ascii_ = run_cli("--repo", str(node), "deps", "graph", "--root", a.sudocode_id, "--depth", "1", env=env)
    assert ascii_.code == 0 and "Legend: ✓=closed" in ascii_.out and '"B"' in ascii_.out
    for fmt, head in (("dot", "digraph"), ("mermaid", "flowchart LR")):
        assert run_cli("--repo", str(node), "deps", "graph", "--format", fmt, env=env).out.startswith(head)
    bad_root = run_cli("--repo", str(node), "deps", "graph", "--root", "i-nope", env=env)
    assert bad_root.code == 2 and "i-nope" in bad_root.err
    bad_depth = run_cli("--repo", str(node), "deps", "graph", "--depth", "x", env=env)
    assert bad_depth.code == 2 and "depth" in bad_depth.err
