"""Delegation between real nodes (issue 11, the seed's Use Case 2): `framework` hands `auth-plugin` a spec, the
plugin accepts it (CLI or REST), files issues under it, and the framework sees them; reject with a reason;
auto-accept by policy; and a chain framework -> auth-plugin -> storage whose way back is refused as a cycle, and
one that passes its hop limit."""

from __future__ import annotations

import json

import pytest
import requests

from tests.nodes import Node, eventually, link
from tests.requests_app.test_use_case_1 import PASSWORD, STAFF, decide, staff_session, start_together, stop_together

pytestmark = pytest.mark.slow


class Nodes:
    def __init__(self, framework: Node, plugin: Node, storage: Node, keys: dict[str, str]):
        self.framework, self.plugin, self.storage, self.keys = framework, plugin, storage, keys


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("use-case-2")
    framework = Node(root, "framework").make_public()  # the tests read their spec pages anonymously
    plugin = Node(root, "auth-plugin", org="community").make_public()
    storage = Node(root, "storage-plugin", org="community", worker=False)
    config = storage.config()
    config["a2a_policies"]["delegate"]["auto_accept"] = "from_verified_repo"  # the storage plugin takes any task
    storage.write_config(config)
    try:
        start_together(framework, plugin, storage)
        plugin.create_staff(STAFF, PASSWORD)
        keys = {
            "framework@plugin": link(framework, plugin, trust="verified"),
            "plugin@storage": link(plugin, storage, trust="verified"),
            "storage@framework": link(storage, framework, trust="verified"),
        }
        yield Nodes(framework, plugin, storage, keys)
    finally:
        stop_together(framework, plugin, storage)


def created_id(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("Created "))


def delegation_id(out: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("→ ID:"))


def records(node: Node, kind: str) -> dict[str, dict]:
    path = node.repo / ".sudocode" / f"{kind}s.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())} if path.exists() else {}


def delegations(node: Node, direction: str) -> dict[str, dict]:
    return {d["request_id"]: d for d in node.cli_json("delegates", "list", "--direction", direction)}


def accepted(node: Node, request_id: str) -> dict:
    def done():
        found = delegations(node, "outgoing")[request_id]
        return found if found["status"] in ("completed", "rejected", "failed") else None

    return eventually(done, timeout=20, what=f"{node.name} learning the outcome of {request_id}", every=0.3)


def test_use_case_2_delegate_accept_file_issues_and_the_framework_sees_them(nodes):
    fw, plugin = nodes.framework, nodes.plugin
    made = fw.cli("spec", "create", "Plugin system", "--id", "spec-025")
    assert made.code == 0, made.err

    sent = fw.cli(
        "remote", "delegate", plugin.identity, "--type", "spec", "--title", "Auth plugin for v2.0",
        "--description", "Implement new auth API...", "--context", '{"api_version": "2.0", "breaking_changes": false}',
        "--requirements", '{"interfaces": ["AuthProvider"]}', "--from", "spec-025",
    )  # fmt: skip
    assert sent.code == 0, sent.err
    assert "→ Delegation sent to community/auth-plugin" in sent.out
    assert "→ Status: Pending acceptance" in sent.out
    del_id = delegation_id(sent.out)
    assert del_id.startswith("del-")

    pending = plugin.cli("delegates", "pending")
    assert pending.code == 0, pending.err
    assert f'→ [{del_id}] Framework requests: "Auth plugin for v2.0"' in pending.out
    assert "From: github.com/org/framework" in pending.out and "Type: spec" in pending.out
    assert 'Context: {"api_version": "2.0", "breaking_changes": false' in pending.out
    assert "Policy: a2a_policies.delegate.auto_accept is false: a maintainer accepts" in pending.out
    assert "Chain: org/framework#spec-025" in pending.out

    done = plugin.cli("delegate", "accept", del_id, "--assignee", "claude-auth-agent",
                      "--estimated-completion", "2025-11-08T12:00:00Z")  # fmt: skip
    assert done.code == 0, done.err
    new_spec = done.out.split("→ Created: ", 1)[1].split()[0]
    assert "→ Bidirectional link established with org/framework#spec-025" in done.out

    # The new spec records where it came from; the framework's spec links to it once the answer arrives.
    spec = records(plugin, "spec")[new_spec]
    provenance = spec["delegated_from"]
    assert provenance["repo"] == fw.identity and provenance["canonical_ref"] == "org/framework#spec-025"
    assert provenance["chain"] == ["org/framework#spec-025"] and provenance["request_id"] == del_id
    assert provenance["requirements"] == {"interfaces": ["AuthProvider"]}
    assert provenance["context"] == {"api_version": "2.0", "breaking_changes": False}
    assert {"type": "delegated-from", "canonical_ref": "org/framework#spec-025"}.items() <= spec[
        "remote_relationships"
    ][0].items()
    outcome = accepted(fw, del_id)
    assert outcome["status"] == "completed"
    assert outcome["result"]["created"]["canonical_ref"] == f"community/auth-plugin#{new_spec}"
    assert outcome["result"]["assignee"] == "claude-auth-agent"
    assert outcome["result"]["estimated_completion"] == "2025-11-08T12:00:00Z"

    def linked():
        rels = records(fw, "spec")["spec-025"].get("remote_relationships") or []
        return [r for r in rels if r["type"] == "delegated-to"]

    [link_back] = eventually(linked, what="the framework's spec linking to the delegate's")
    assert link_back["canonical_ref"] == f"community/auth-plugin#{new_spec}"
    assert link_back["remote_repo"] == plugin.identity

    # The plugin files issues under the spec; the framework lists them (the seed's last step).
    for title in ("Implement auth interface", "Add tests for auth flow"):
        filed = plugin.cli("issue", "create", title, "--implements", new_spec)
        assert filed.code == 0, filed.err
    listed = fw.cli("remote", "query", plugin.identity, "issue", "--filters", json.dumps({"spec_refs": [new_spec]}))
    assert listed.code == 0, listed.err
    assert "Implement auth interface" in listed.out and "Add tests for auth flow" in listed.out

    # Both pages show the link, the plugin's with the provenance and chain.
    page = requests.get(f"{plugin.base}/specs/{new_spec}", timeout=10).text
    assert "Delegated by" in page and "org/framework#spec-025" in page and "Delegation chain" in page
    page = requests.get(f"{fw.base}/specs/spec-025", timeout=10).text
    assert "delegated-to" in page and f"community/auth-plugin#{new_spec}" in page


def test_a_rejected_delegation_tells_the_delegator_why(nodes):
    fw, plugin = nodes.framework, nodes.plugin
    sent = fw.cli("remote", "delegate", plugin.identity, "--type", "issue", "--title", "Port to COBOL")
    assert sent.code == 0, sent.err
    del_id = delegation_id(sent.out)
    shown = plugin.cli("delegate", "show", del_id)
    assert "Entity type:      issue" in shown.out and "Decision:" in shown.out
    no_reason = plugin.cli("delegate", "reject", del_id)
    assert no_reason.code == 2 and "--reason" in no_reason.err
    rejected = plugin.cli("delegate", "reject", del_id, "--reason", "out of scope for this plugin")
    assert rejected.code == 0, rejected.err
    outcome = accepted(fw, del_id)
    assert outcome["status"] == "rejected" and outcome["rejection_reason"] == "out of scope for this plugin"
    assert "Port to COBOL" not in {r["title"] for r in records(plugin, "issue").values()}


def test_a_delegation_accepted_in_the_dashboard_over_http(nodes):
    fw, plugin = nodes.framework, nodes.plugin
    sent = fw.cli("remote", "delegate", plugin.identity, "--type", "issue", "--title", "Support OAuth device flow")
    del_id = delegation_id(sent.out)
    maintainer = staff_session(plugin)
    queue = maintainer.get(f"{plugin.base}/approvals/", timeout=10).text
    assert del_id in queue and "delegation of an issue" in queue and "Accept" in queue
    answer = decide(maintainer, plugin, del_id, "approve", assignee="dana", estimated_completion="2030-01-02T03:04")
    assert answer.status_code == 302
    outcome = accepted(fw, del_id)
    assert outcome["status"] == "completed" and outcome["result"]["assignee"] == "dana"
    created = outcome["result"]["created"]["id"]
    assert records(plugin, "issue")[created]["assignee"] == "dana"
    assert outcome["result"]["estimated_completion"] == "2030-01-02T03:04:00Z"


def test_auto_accept_a_chain_and_its_way_back_refused_as_a_cycle(nodes):
    fw, plugin, storage = nodes.framework, nodes.plugin, nodes.storage
    made = fw.cli("spec", "create", "Storage layer", "--id", "spec-040")
    assert made.code == 0, made.err
    first = fw.cli("remote", "delegate", plugin.identity, "--type", "spec", "--title", "Storage adapters",
                   "--from", "spec-040")  # fmt: skip
    del_id = delegation_id(first.out)
    plugin_spec = plugin.cli("delegate", "accept", del_id).out.split("→ Created: ", 1)[1].split()[0]

    # The plugin hands part of it on: the storage plugin accepts at once (its auto_accept rule).
    second = plugin.cli("remote", "delegate", storage.identity, "--type", "issue", "--title", "S3 adapter",
                        "--from", plugin_spec)  # fmt: skip
    assert second.code == 0, second.err
    assert "→ Status: Accepted" in second.out
    storage_issue = second.out.split("→ Created: community/storage-plugin#", 1)[1].split()[0]
    provenance = records(storage, "issue")[storage_issue]["delegated_from"]
    assert provenance["chain"] == ["org/framework#spec-040", f"community/auth-plugin#{plugin_spec}"]
    shown = storage.cli("issue", "show", storage_issue).out
    assert f"Delegation chain: org/framework#spec-040 -> community/auth-plugin#{plugin_spec} -> here" in shown
    decision = delegations(storage, "incoming")[delegation_id(second.out)]["decision"]
    assert decision["outcome"] == "approve" and decision["rule"] == "a2a_policies.delegate.auto_accept"

    # The storage plugin tries to hand it back to the framework: the chain already passes through it.
    back = storage.cli("remote", "delegate", fw.identity, "--type", "issue", "--title", "Review S3 adapter",
                       "--from", storage_issue)  # fmt: skip
    assert back.code == 2  # refused before it leaves: the storage plugin sees framework in the chain
    assert "came through github.com/org/framework already (org/framework#spec-040)" in back.err
    # ...and the framework refuses it by itself, whatever a sender does.
    message = {
        "type": "delegate",
        "from": storage.identity,
        "task": {
            "type": "issue",
            "title": "Review S3 adapter",
            "context": {"chain": ["org/framework#spec-040", f"community/auth-plugin#{plugin_spec}"]},
        },
        "metadata": {"request_id": "del-cycle"},
    }
    answer = requests.post(
        f"{fw.api}/federation/delegate",
        json=message,
        headers={"Authorization": f"Bearer {nodes.keys['storage@framework']}"},
        timeout=10,
    )
    assert answer.status_code == 403
    detail = answer.json()["detail"]
    assert "already passes through this repository (org/framework#spec-040): a cycle" in detail
    assert "org/framework#spec-040 -> community/auth-plugin#" in detail
    assert "Review S3 adapter" not in {r["title"] for r in records(fw, "issue").values()}


def test_a_chain_longer_than_its_hop_limit_is_refused(nodes):
    fw, plugin = nodes.framework, nodes.plugin
    # Refused by the node that would send it, before it leaves...
    made = fw.cli("spec", "create", "Tiny", "--id", "spec-041")
    assert made.code == 0, made.err
    first = fw.cli("remote", "delegate", plugin.identity, "--type", "spec", "--title", "Tiny part",
                   "--from", "spec-041", "--hop-limit", "1")  # fmt: skip
    part = plugin.cli("delegate", "accept", delegation_id(first.out)).out.split("→ Created: ", 1)[1].split()[0]
    again = plugin.cli("remote", "delegate", nodes.storage.identity, "--type", "issue", "--title", "Tinier",
                       "--from", part)  # fmt: skip
    assert again.code == 2 and "hop_limit is 1" in again.err
    # ...and by the node that receives it, whatever the sender says.
    message = {
        "type": "delegate",
        "from": plugin.identity,
        "task": {
            "type": "issue",
            "title": "Too far",
            "context": {"chain": ["org/a#spec-1", "org/b#spec-2", "org/c#spec-3"], "hop_limit": 2},
        },
        "metadata": {"request_id": "del-too-far"},
    }
    answer = requests.post(
        f"{nodes.storage.api}/federation/delegate",
        json=message,
        headers={"Authorization": f"Bearer {nodes.keys['plugin@storage']}"},
        timeout=10,
    )
    assert answer.status_code == 403, answer.text
    assert (
        "org/a#spec-1 -> org/b#spec-2 -> org/c#spec-3 has 3 hops, more than its hop_limit 2" in answer.json()["detail"]
    )


def test_a_delegate_message_over_rest_and_a2a_is_answered_with_a_delegate_response(nodes):
    storage = nodes.storage
    message = {
        "type": "delegate",
        "from": nodes.plugin.identity,
        "to": storage.identity,
        "task": {"type": "spec", "title": "Deploy auth-service", "requirements": {"replicas": 3}},
        "metadata": {"request_id": "del-rest-1", "requester": "claude-infra-agent"},
    }
    headers = {"Authorization": f"Bearer {nodes.keys['plugin@storage']}"}
    first = requests.post(f"{storage.api}/federation/delegate", json=message, headers=headers, timeout=10)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["type"] == "delegate_response" and body["status"] == "accepted"
    assert body["created"]["type"] == "spec" and body["created"]["canonical_ref"].startswith(
        "community/storage-plugin#"
    )
    assert body["decision"]["rule"] == "a2a_policies.delegate.auto_accept"
    again = requests.post(f"{storage.api}/federation/a2a", json=message, headers=headers, timeout=10)
    assert again.json()["created"] == body["created"]  # the same request_id: the same answer, nothing more
    anonymous = requests.post(f"{storage.api}/federation/delegate", json={**message, "metadata": {"request_id": "x"}},
                              timeout=10)  # fmt: skip
    assert anonymous.status_code == 403 and "anonymous" in anonymous.json()["detail"]
