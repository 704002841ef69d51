"""Use Case 3 (issue 13) on real nodes: a platform hub and three services. `remote discover` from the hub's
directory with --auto-add; `remote query-all` (one query to every remote at once, counted by status; a remote
that is down is named and the others still count); why-blocked on a remote issue, explained by its node."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.nodes import Node, link
from tests.requests_app.test_use_case_1 import start_together, stop_together

pytestmark = pytest.mark.slow


def fill(service: Node, unrelated: bool) -> None:
    for title, status in (("Migrate to platform v2 API", "open"), ("Drop v1 client", "in_progress")):
        assert service.cli("issue", "create", title, "--tags", "platform-migration", "--status", status).code == 0
    if unrelated:
        assert service.cli("issue", "create", "Unrelated", "--tags", "other").code == 0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("query-all")
    hub = Node(root, "platform", worker=False).make_public()  # its home page is read anonymously
    services = [Node(root, name, worker=False) for name in ("auth-service", "billing-service", "api-gateway")]
    with ThreadPoolExecutor(len(services)) as pool:  # before they serve: the CLI needs no server
        list(pool.map(fill, services, [True, False, False]))
    try:
        start_together(hub, *services)
        for service in services:  # one at a time: each writes the hub's config file
            link(hub, service, trust="verified")
        yield hub, services
    finally:
        stop_together(hub, *services)


def test_a_newcomer_discovers_the_services_in_the_hubs_directory_and_adds_them(fleet, tmp_path):
    hub, services = fleet
    config = hub.config()
    config["discovery"] = {"listed": True, "list_to": "untrusted"}
    for remote in config["remote_repos"]:
        remote["listed"] = remote["url"] != services[2].identity  # api-gateway did not agree to be listed
    hub.write_config(config)
    directory = hub.cli_json("remote", "list", "--format", "json")  # the hub still has its three remotes
    assert len(directory) == 3
    newcomer = Node(tmp_path, "newcomer", worker=False)  # reads the directory anonymously: no server needed
    found = newcomer.cli("remote", "discover", "github.com/org/*-service", "--source", hub.api, "--auto-add",
                         "--trust", "verified")  # fmt: skip
    assert found.code == 0, found
    assert "→ Found 2 repositories matching github.com/org/*-service (2 answered)" in found.out
    assert "→ Added: auth-service, billing-service" in found.out
    added = {r["url"]: r for r in newcomer.cli_json("remote", "list", "--format", "json")}
    assert set(added) == {services[0].identity, services[1].identity}
    assert all(r["trust_level"] == "verified" for r in added.values())
    again = newcomer.cli_json("remote", "discover", "github.com/org/*", "--source", hub.api, "--format", "json")
    assert {f["url"]: f["known"] for f in again["found"]} == {
        hub.identity: False,
        services[0].identity: True,
        services[1].identity: True,
    }
    config["discovery"]["list_to"] = "verified"  # now only for those the hub trusts
    hub.write_config(config)
    refused = newcomer.cli("remote", "discover", "github.com/org/*", "--source", hub.api)
    assert refused.code == 1 and "shows its directory from verified up" in refused.err
    assert newcomer.cli("remote", "discover", "github.com/org/*").code == 2  # no directory named anywhere


def test_the_same_issue_is_filed_in_every_service(fleet):
    hub, services = fleet
    urls = hub.cli("remote", "list", "--format", "url").out.split()
    assert urls == sorted(s.identity for s in services)
    for url in urls:  # the seed's loop over `remote list --format=url`
        sent = hub.cli_json("remote", "create-issue", url, "--title", "Adopt the v2 logging", "--priority", "3",
                            "--labels", "platform-migration,q4", "--auto-approve", "--format", "json")  # fmt: skip
        assert sent["status"] == "pending" and sent["to"] == url  # verified: their maintainers decide
    for service in services:
        [pending] = [r for r in service.cli_json("requests", "list", "--direction", "incoming")
                     if r["title"] == "Adopt the v2 logging"]  # fmt: skip
        assert pending["from"] == hub.identity and pending["labels"] == ["platform-migration", "q4"]


def test_every_remote_is_asked_and_counted(fleet):
    hub, services = fleet
    answer = hub.cli_json("remote", "query-all", "issue", "--labels", "platform-migration", "--format", "json")
    assert answer["total"] == 6 and answer["by_status"] == {"open": 3, "in_progress": 3}
    assert [r["url"] for r in answer["remotes"]] == sorted(s.identity for s in services)
    assert all(r["ok"] and r["total"] == 2 for r in answer["remotes"])
    assert {row["repo"] for row in answer["results"]} == {s.identity for s in services}
    table = hub.cli("remote", "query-all", "issue", "--labels", "platform-migration")
    assert table.code == 0
    assert "Total: 6 issues in 3 of 3 remotes" in table.out and "  Open: 3" in table.out
    assert "  In progress: 3" in table.out and "  Closed: 0" in table.out


def test_why_blocked_on_a_remote_issue_asks_its_node(fleet):
    hub, services = fleet
    auth = services[0]
    asked = hub.cli_json("remote", "create-issue", auth.identity, "--title", "Add auth schema v2", "--format", "json")
    approved = auth.cli("request", "approve", asked["request_id"], "--estimated-completion", "2026-12-10")
    assert approved.code == 0, approved
    schema = approved.out.split("Created: ")[1].split()[0]
    blocked = auth.cli_json(
        "issue", "create", "Auth v2", "--status", "blocked", "--depends-on", schema, "--format", "json"
    )
    ref = f"org/auth-service#{blocked['id']}"  # never referenced by the hub: only auth-service can explain it
    why = hub.cli("issue", "why-blocked", ref)
    assert why.code == 0, why
    assert f'{ref} (blocked) - "Auth v2"' in why.out and "is blocked by:" in why.out
    assert f'- org/auth-service#{schema} (open) - "Add auth schema v2"' in why.out
    assert "Estimated completion: 2026-12-10" in why.out
    unknown = hub.cli("issue", "why-blocked", "org/auth-service#i-nope")
    assert unknown.code != 0 and "does not show it to us" in unknown.err


def test_search_across_repositories_is_ranked_and_labelled(fleet):
    hub, services = fleet
    assert hub.cli("issue", "create", "Plan the platform migration", "-d", "Which services first.").code == 0
    here = hub.cli_json("search", "platform migrat", "--format", "json")
    assert [r["title"] for r in here["results"]] == ["Plan the platform migration"] and not here["remotes"]
    everywhere = hub.cli_json("search", "platform migrat", "--all-repos", "--entity", "issue", "--format", "json")
    repos = [r["repo"] for r in everywhere["results"]]
    assert repos[0] == "org/platform"  # ours first, then each repository's best, interleaved
    assert set(repos) == {"org/platform", *(s.identity for s in services)}
    assert everywhere["total"] == 4 and all(r["ok"] for r in everywhere["remotes"])
    table = hub.cli("search", "platform migrat", "--all-repos")
    assert table.code == 0 and "org/auth-service#" in table.out
    assert hub.cli("search", "  ").code == 2
    page = requests.get(f"{hub.base}/", params={"q": "platform migrat", "all": "1"}, timeout=30)
    assert page.status_code == 200 and 'In other repositories <span class="muted">(3)</span>' in page.text
    assert f'href="{services[0].base}/issues/' in page.text  # each row opens on its own node


def test_a_remote_that_is_down_is_named_and_the_rest_still_count(fleet):
    hub, services = fleet
    down = services[1]
    down.stop()
    try:
        result = hub.cli("remote", "query-all", "issue", "--labels", "platform-migration", "--timeout", "3")
        assert result.code == 0, result
        assert "Total: 4 issues in 2 of 3 remotes" in result.out
        assert f"{down.identity} did not answer" in result.err
        answer = hub.cli_json("remote", "query-all", "issue", "--filters", '{"labels": ["platform-migration"]}',
                              "--format", "json", "--timeout", "3")  # fmt: skip
        failed = [r for r in answer["remotes"] if not r["ok"]]
        assert [r["url"] for r in failed] == [down.identity] and answer["total"] == 4
    finally:
        down.start()


def test_bad_input_is_refused_with_exit_code_2(fleet):
    hub, _ = fleet
    assert hub.cli("remote", "query-all", "issue", "--filters", "[1]").code == 2
    assert hub.cli("remote", "query-all", "issue", "--timeout", "0").code == 2
    assert hub.cli("remote", "query-all", "bug").code == 2
