"""The outbox: every change to an issue or spec, however it was made, is one numbered event in the same
transaction as the change."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from events.models import Event
from events.selectors import event_body, event_matches, events_after, head_seq
from events.services import record_changes
from tracker import services
from tracker.sync import jsonl_sync

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_created_then_closed_issue_is_two_events_in_order(node_repo):
    issue = services.issue_create(title="Add user profile endpoint", actor="alice", tags=["api"])
    services.issue_close(issue=issue.sudocode_id, actor="bob")

    created, updated = events_after(0)
    assert (created.type, updated.type) == ("issue_created", "issue_updated")
    assert updated.seq == created.seq + 1 == head_seq()
    assert created.changes["title"] == {"from": None, "to": "Add user profile endpoint"}
    assert updated.changes["status"] == {"from": "open", "to": "closed"}
    assert updated.entity_id == issue.sudocode_id and updated.entity_uuid == issue.uuid
    assert updated.state["before"]["status"] == "open" and updated.state["after"]["status"] == "closed"


def test_an_update_that_changes_nothing_is_no_event(node_repo):
    issue = services.issue_create(title="Same", actor="alice")
    services.issue_update(issue=issue.sudocode_id, actor="alice", title="Same")
    assert [e.type for e in events_after(0)] == ["issue_created"]


def test_an_edit_made_by_another_tool_is_an_event_when_it_is_imported(node_repo):
    issue = services.issue_create(title="Edited elsewhere", actor="alice")
    path = node_repo / ".sudocode" / "issues.jsonl"
    record = json.loads(path.read_text())
    record["status"] = "in_progress"
    record["updated_at"] = "2026-01-01T00:00:00Z"
    path.write_text(json.dumps(record) + "\n")

    jsonl_sync()

    last = events_after(0)[-1]
    assert last.type == "issue_updated" and last.entity_uuid == issue.uuid
    assert last.changes["status"] == {"from": "open", "to": "in_progress"}


def test_a_change_rolled_back_leaves_no_event(node_repo):
    with pytest.raises(RuntimeError), transaction.atomic():
        record_changes("issue", [("u-1", None, {"id": "i-1", "uuid": "u-1", "title": "x"})])
        raise RuntimeError("the change failed")
    assert Event.objects.count() == 0


def test_events_cannot_be_recorded_outside_a_transaction(node_repo):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record_changes("issue", [("u-1", None, {"id": "i-1", "uuid": "u-1", "title": "x"})])


def test_a_watch_matches_an_entity_before_or_after_the_change(node_repo):
    issue = services.issue_create(title="Blocking", actor="alice", tags=["frontend-blocking", "api"])
    services.issue_close(issue=issue.sudocode_id, actor="alice")
    closed = events_after(0)[-1]

    assert event_matches(closed, {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}})
    assert event_matches(closed, {"entity_type": "issue", "filters": {"status": "open"}})  # it left the set
    assert event_matches(closed, {"entity_type": "issue", "filters": {"ids": [issue.sudocode_id]}})
    assert event_matches(closed, {"entity_type": "issue", "filters": {"ids": [issue.uuid]}})
    assert not event_matches(closed, {"entity_type": "spec"})
    assert not event_matches(closed, {"entity_type": "issue", "filters": {"labels": ["frontend-blocking", "ui"]}})
    assert not event_matches(closed, {"entity_type": "issue", "filters": {"ids": ["i-other"], "status": "open"}})
    assert not event_matches(closed, {"entity_type": "issue", "filters": {"priority": [0, 1]}})


def test_the_event_body_has_the_seed_shape_and_only_the_fields_a_reader_may_see(node_repo):
    issue = services.issue_create(title="Shape", actor="alice", content="secret plan")
    services.issue_update(issue=issue.sudocode_id, actor="alice", status="closed", content="done")
    event = events_after(0)[-1]

    full = event_body(event)
    assert set(full) == {"id", "seq", "type", "entity", "changes", "timestamp"}
    assert full["entity"]["id"] == issue.sudocode_id and full["entity"]["status"] == "closed"
    assert full["changes"]["content"] == {"from": "secret plan", "to": "done"}

    public = event_body(event, fields=frozenset({"status", "title"}))
    assert set(public["changes"]) == {"status"}
    assert "priority" not in public["entity"]
