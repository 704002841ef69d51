"""Issues blocked by remote entities follow what we know of their blockers (remotes.blocking), and
`issue why-blocked` explains the chain, local and remote."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.utils import timezone

from federation_site.config import default_config, write_config
from remotes import services as remote_services
from remotes.blocking import blocked_status_reconcile, why_blocked
from remotes.models import CrossRepoReference
from remotes.sync import references_refresh
from tests.conftest import git, run_cli
from tests.subscriptions.watching_fakes import FakeRemote, remote_issue, watching_node
from tracker import services
from tracker.models import Entity

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE = "github.com/org/api-service"


def blocker(remote_id: str, rel: str = "blocked-by") -> dict:
    return {"type": rel, "remote_repo": REMOTE, "remote_id": remote_id, "canonical_ref": f"org/api-service#{remote_id}"}


@pytest.fixture
def node(node_repo, monkeypatch):
    # Auto-subscribe and the webhook fan-out have their own tests: here no call leaves the node.
    monkeypatch.setattr("subscriptions.outgoing.references_changed", lambda: None)
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    config["git"]["auto_commit"] = True
    config["remote_repos"] = [{"url": REMOTE, "display_name": "api-service", "trust_level": "verified"}]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    git(node_repo, "add", "-A")
    git(node_repo, "commit", "-qm", "init")
    remote_services.remotes_reconcile(force=True)
    return node_repo


def knows(remote_id: str, status: str | None, *, title: str = "Remote work") -> None:
    """What this node learnt of a remote entity (as an event or a refresh would leave it)."""
    remote_services.references_rebuild()
    data = None if status is None else {"title": title, "status": status, "priority": 1, "updated_at": "2025-11-06"}
    CrossRepoReference.objects.filter(remote_id=remote_id).update(
        cached_data=data, last_fetched_at=timezone.now(), fetch_status="success" if data else "failed"
    )


def status_of(entity) -> str:
    return Entity.objects.get(uuid=entity.uuid).status


def test_a_blocker_we_know_nothing_about_counts_as_open(node):
    issue = services.issue_create(title="Page", actor="ana", remote_relationships=[blocker("issue-084")])
    remote_services.references_rebuild()
    [change] = blocked_status_reconcile()
    assert change["id"] == issue.sudocode_id and (change["from"], change["to"]) == ("open", "blocked")
    assert status_of(issue) == "blocked"
    assert blocked_status_reconcile() == []  # nothing more to do


def test_two_remote_blockers_unblock_only_when_both_are_closed_and_reblock_when_one_reopens(node):
    issue = services.issue_create(
        title="Page", actor="ana", remote_relationships=[blocker("issue-084"), blocker("issue-085", "depends-on")]
    )
    knows("issue-084", "closed")
    knows("issue-085", "in_progress")
    blocked_status_reconcile()
    assert status_of(issue) == "blocked"
    knows("issue-085", "closed")
    [change] = blocked_status_reconcile(local_uuids=[issue.uuid])
    assert change["to"] == "open" and "remote blocker closed: org/api-service#issue-08" in change["reason"]
    assert status_of(issue) == "open"
    record = json.loads((node / ".sudocode" / "issues.jsonl").read_text().splitlines()[0])
    assert record["status"] == "open"  # written through to the JSONL
    assert "remote blocker closed" in git(node, "log", "-1", "--format=%B")  # and committed, saying why
    knows("issue-084", "open")
    blocked_status_reconcile()
    assert status_of(issue) == "blocked"


def test_an_open_local_blocker_keeps_the_issue_blocked(node):
    local = services.issue_create(title="Design the page", actor="ana")
    issue = services.issue_create(
        title="Page",
        actor="ana",
        status="blocked",
        relationships=[("depends-on", local.sudocode_id)],
        remote_relationships=[blocker("issue-084")],
    )
    knows("issue-084", "closed")
    assert blocked_status_reconcile() == []
    assert status_of(issue) == "blocked"
    services.issue_close(issue=local.sudocode_id, actor="ana")
    blocked_status_reconcile()
    assert status_of(issue) == "open"


def test_work_in_progress_review_and_closed_issues_are_never_touched(node):
    issues = [
        services.issue_create(title=s, actor="ana", status=s, remote_relationships=[blocker("issue-084")])
        for s in ("in_progress", "needs_review", "closed")
    ]
    knows("issue-084", "open")
    assert blocked_status_reconcile() == []
    knows("issue-084", "closed")
    assert blocked_status_reconcile() == []
    assert [status_of(i) for i in issues] == ["in_progress", "needs_review", "closed"]


def test_a_mention_is_not_a_blocker(node):
    issue = services.issue_create(title="Page", actor="ana", content="See [[org/api-service#issue-084]]")
    knows("issue-084", "open")
    assert blocked_status_reconcile() == []
    assert status_of(issue) == "open"


def test_inside_a_transaction_the_reconcile_waits_for_the_commit(node):
    issue = services.issue_create(title="Page", actor="ana", remote_relationships=[blocker("issue-084")])
    remote_services.references_rebuild()
    with transaction.atomic():
        assert blocked_status_reconcile() == []
        assert status_of(issue) == "open"
    assert status_of(issue) == "blocked"


def test_a_refresh_that_learns_a_blocker_closed_unblocks_the_issue(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.outgoing.references_changed", lambda: None)
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    fake = FakeRemote().start()
    try:
        watching_node(node_repo, fake)
        fake.entities["issue-084"] = remote_issue("issue-084", status="open")
        issue = services.issue_create(title="Page", actor="ana", remote_relationships=[blocker("issue-084")])
        remote_services.references_rebuild()
        references_refresh(refs=list(CrossRepoReference.objects.select_related("remote_repo")), force=True)
        assert status_of(issue) == "blocked"
        fake.entities["issue-084"] = remote_issue("issue-084", status="closed")
        references_refresh(refs=list(CrossRepoReference.objects.select_related("remote_repo")), force=True)
        assert status_of(issue) == "open"
    finally:
        fake.stop()


def test_why_blocked_explains_the_chain_local_and_remote(node):
    deeper = services.issue_create(title="Pick a design system", actor="ana")
    design = services.issue_create(
        title="Design the page", actor="ana", status="blocked", relationships=[("depends-on", deeper.sudocode_id)]
    )
    issue = services.issue_create(
        title="Add user profile page",
        actor="ana",
        status="blocked",
        relationships=[("depends-on", design.sudocode_id)],
        remote_relationships=[blocker("issue-084"), blocker("issue-085"), blocker("issue-086")],
    )
    knows("issue-084", "open", title="Add user profile endpoint")
    knows("issue-085", "blocked", title="Schema v2")
    knows("issue-086", "closed", title="Old endpoint")
    result = why_blocked(entity=issue.sudocode_id)
    assert result["blocked"] is True and result["open_blockers"] == 3
    [local] = result["local_blockers"]
    assert local["id"] == design.sudocode_id and local["open"]
    assert local["blocked_by"]["local_blockers"][0]["id"] == deeper.sudocode_id  # down the chain
    remote = {b["ref"]: b for b in result["remote_blockers"]}
    assert remote["org/api-service#issue-084"]["open"] and remote["org/api-service#issue-084"]["freshness"] == "fresh"
    assert "itself blocked" in remote["org/api-service#issue-085"]["note"]
    assert not remote["org/api-service#issue-086"]["open"]
    text = result["text"]
    assert text.startswith(f'{issue.sudocode_id} (blocked) - "Add user profile page" is blocked by:')
    assert f'{design.sudocode_id} (blocked) - "Design the page" [local]' in text
    assert f'{deeper.sudocode_id} (open) - "Pick a design system"' in text
    assert 'org/api-service#issue-084 (open) - "Add user profile endpoint" [remote, fresh]' in text
    assert "(closed: org/api-service#issue-086)" in text


def test_why_blocked_on_a_remote_ref_says_what_we_know_of_it(node):
    issue = services.issue_create(title="Page", actor="ana", remote_relationships=[blocker("issue-084")])
    knows("issue-084", "open", title="Add user profile endpoint")
    result = why_blocked(entity="org/api-service#issue-084")
    assert result["remote"] and result["status"] == "open"
    assert result["referenced_by"] == [
        {"id": issue.sudocode_id, "title": "Page", "status": "open", "type": "blocked-by", "blocks_it": True}
    ]
    assert "It blocks here:" in result["text"]
    own = why_blocked(entity=f"org/frontend#{issue.sudocode_id}")  # our own canonical ref is a local issue
    assert own["id"] == issue.sudocode_id
    with pytest.raises(Entity.DoesNotExist):
        why_blocked(entity="org/api-service#issue-999")


def test_an_issue_with_no_blockers_says_so(node):
    issue = services.issue_create(title="Free", actor="ana")
    result = why_blocked(entity=issue)
    assert result["blocked"] is False and result["text"].endswith("has no blockers.")


def test_the_cli_explains_and_refuses_an_unknown_id(node):
    issue = services.issue_create(title="Page", actor="ana", remote_relationships=[blocker("issue-084")])
    text = run_cli("--repo", str(node), "issue", "why-blocked", issue.sudocode_id)
    assert text.code == 0, text.err
    assert "is blocked by:" in text.out and "org/api-service#issue-084 (status unknown)" in text.out
    as_json = run_cli("--repo", str(node), "issue", "why-blocked", issue.sudocode_id, "--format", "json")
    assert json.loads(as_json.out)["remote_blockers"][0]["ref"] == "org/api-service#issue-084"
    unknown = run_cli("--repo", str(node), "issue", "why-blocked", "issue-404")
    assert unknown.code == 2 and "issue-404" in unknown.err
