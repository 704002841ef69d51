"""Writes through tracker.services: the JSONL file and the database agree, and nothing another tool wrote is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from tracker import jsonl, services
from tracker.models import Entity
from tracker.selectors import entity_detail, entity_get
from tracker.sync import Edit, jsonl_sync, write_through

pytestmark = pytest.mark.django_db(transaction=True)


def lines(repo: Path, name: str = "issues.jsonl") -> list[dict]:
    return [json.loads(line) for line in (repo / ".sudocode" / name).read_text().splitlines()]


def test_it_writes_a_new_issue_to_the_file_and_the_database(node_repo):
    issue = services.issue_create(title="Add user profile page", actor="alice", priority=1, tags=["ui"])

    [record] = lines(node_repo)
    assert record["id"] == issue.sudocode_id
    assert record["id"].startswith("i-") and len(record["id"]) == 6
    assert list(record) == [
        "id",
        "uuid",
        "title",
        "content",
        "status",
        "priority",
        "assignee",
        "archived",
        "archived_at",
        "created_at",
        "updated_at",
        "closed_at",
        "parent_id",
        "parent_uuid",
        "relationships",
        "tags",
    ]
    assert record["tags"] == ["ui"] and record["archived"] == 0 and record["assignee"] is None
    assert Entity.objects.get(uuid=record["uuid"]).title == "Add user profile page"


def test_it_accepts_an_explicit_legacy_style_id_once(node_repo):
    services.issue_create(title="Frontend page", actor="a", sudocode_id="issue-100")
    with pytest.raises(ValidationError) as err:
        services.issue_create(title="Again", actor="a", sudocode_id="issue-100")
    assert "id" in err.value.error_dict
    assert len(lines(node_repo)) == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x", "priority": 7}, "priority"),
        ({"title": "x", "status": "done"}, "status"),
        ({"title": "x", "tags": "a,b"}, "tags"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(node_repo, fields, field):
    with pytest.raises(ValidationError) as err:
        services.issue_create(actor="a", **fields)
    assert field in err.value.error_dict
    assert not (node_repo / ".sudocode" / "issues.jsonl").exists()


def test_update_changes_only_that_line_and_keeps_unknown_keys(node_repo):
    first = services.issue_create(title="First", actor="a")
    second = services.issue_create(title="Second", actor="a")
    path = node_repo / ".sudocode" / "issues.jsonl"
    # Another tool adds a key we don't know; it must survive our update.
    raw = path.read_text().replace('"tags":[]}', '"tags":[],"x_custom":{"k":1}}', 1)
    path.write_text(raw)
    before = path.read_text().splitlines()

    services.issue_update(issue=first.sudocode_id, actor="a", status="in_progress")

    after = path.read_text().splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(changed) == 1
    record = json.loads(after[changed[0]])
    assert record["uuid"] == first.uuid and record["status"] == "in_progress"
    untouched = json.loads(after[1 - changed[0]])
    assert untouched["uuid"] == second.uuid
    assert "x_custom" in json.loads(after[0]) or "x_custom" in json.loads(after[1])


def test_close_sets_closed_at_and_a_blocker_stops_blocking(node_repo):
    api = services.issue_create(title="API endpoint", actor="a")
    page = services.issue_create(title="Profile page", actor="a", relationships=[("depends-on", api.sudocode_id)])
    detail = entity_detail(page)
    assert [b["id"] for b in detail["blocked_by"]] == [api.sudocode_id]
    assert detail["blocked_by"][0]["status"] == "open"

    services.issue_close(issue=api.sudocode_id, actor="a")

    record = next(r for r in lines(node_repo) if r["uuid"] == api.uuid)
    assert record["status"] == "closed" and record["closed_at"].endswith("Z")
    assert entity_detail(entity_get(kind="issue", ref=page.sudocode_id))["blocked_by"][0]["status"] == "closed"


def test_an_update_that_changes_nothing_writes_nothing(node_repo):
    issue = services.issue_create(title="Same", actor="a")
    path = node_repo / ".sudocode" / "issues.jsonl"
    stamp = path.stat().st_mtime_ns
    services.issue_update(issue=issue.sudocode_id, actor="a", title="Same")
    assert path.stat().st_mtime_ns == stamp


def test_a_file_edited_by_another_tool_is_picked_up_and_only_changes_are_imported(node_repo):
    a = services.issue_create(title="A", actor="x")
    services.issue_create(title="B", actor="x")
    path = node_repo / ".sudocode" / "issues.jsonl"
    records = lines(node_repo)
    for r in records:
        if r["uuid"] == a.uuid:
            r["title"] = "A, renamed by hand"
    extra = jsonl.new_issue_record(
        id="i-zzzz",
        uuid="5b1c7c2e-3f1e-4b7a-9d7e-1d2c3b4a5f60",
        title="Added by git pull",
        created_at="2099-01-01 00:00:00",
        updated_at="2099-01-01 00:00:00",
    )
    path.write_text("".join(jsonl.dump_record(r) + "\n" for r in [*records, extra]))

    result = jsonl_sync()

    assert sorted(c.uuid for c in result.updated) == [a.uuid]
    assert [c.after["id"] for c in result.created] == ["i-zzzz"]
    assert result.updated[0].before["title"] == "A"
    assert entity_get(kind="issue", ref=a.sudocode_id).title == "A, renamed by hand"
    assert jsonl_sync().changes == []  # nothing changed since


def test_a_deleted_line_removes_the_entity(node_repo):
    a = services.issue_create(title="A", actor="x")
    b = services.issue_create(title="B", actor="x")
    path = node_repo / ".sudocode" / "issues.jsonl"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if b.uuid not in line))
    result = jsonl_sync()
    assert [c.uuid for c in result.deleted] == [b.uuid]
    assert list(Entity.objects.values_list("uuid", flat=True)) == [a.uuid]


def test_a_change_made_while_we_write_is_kept_and_ours_is_retried(node_repo):
    services.issue_create(title="Existing", actor="x")
    path = node_repo / ".sudocode" / "issues.jsonl"
    calls = []
    foreign = jsonl.new_issue_record(
        id="i-ffff",
        uuid="0f0f0f0f-0000-4000-8000-000000000001",
        title="From sudocode",
        created_at="2098-01-01 00:00:00",
        updated_at="2098-01-01 00:00:00",
    )

    def compute(snapshot):
        calls.append(1)
        if len(calls) == 1:  # another tool appends while we compute our change
            with path.open("a") as fh:
                fh.write(jsonl.dump_record(foreign) + "\n")
        mine = jsonl.new_issue_record(
            id="i-mine",
            uuid="0f0f0f0f-0000-4000-8000-000000000002",
            title="Ours",
            created_at="2097-01-01 00:00:00",
            updated_at="2097-01-01 00:00:00",
        )
        return Edit(upserts={mine["uuid"]: mine})

    write_through("issue", compute)

    assert len(calls) == 2
    titles = [r["title"] for r in lines(node_repo)]
    assert titles == ["Existing", "Ours", "From sudocode"]
    assert set(Entity.objects.values_list("title", flat=True)) == set(titles)


def test_a_non_sudocode_file_is_refused_and_left_alone(node_repo):
    path = node_repo / ".sudocode" / "issues.jsonl"
    original = '{"id":"ISS-001","title":"Hand made","priority":"high","status":"open"}\n'
    path.write_text(original)
    with pytest.raises(jsonl.JsonlFormatError) as err:
        services.issue_create(title="New", actor="x")
    assert "issues.jsonl:1" in str(err.value)
    assert path.read_text() == original


def test_a_spec_gets_a_hash_id_and_a_file_path(node_repo):
    spec = services.spec_create(title="Plugin system: v2", actor="x", tags=["architecture"])
    [record] = lines(node_repo, "specs.jsonl")
    assert record["id"].startswith("s-")
    assert record["file_path"] == f"specs/{spec.sudocode_id}_plugin_system_v2.md"
    assert "status" not in record


def test_a_crlf_file_keeps_crlf_on_every_line_it_rewrites_and_adds(node_repo):
    first = services.issue_create(title="First", actor="x")
    services.issue_create(title="Second", actor="x")
    path = node_repo / ".sudocode" / "issues.jsonl"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # as an editor on Windows saves it
    jsonl_sync()
    entities_before = Entity.objects.count()

    services.issue_update(issue=first.sudocode_id, actor="x", title="First, renamed")
    services.issue_create(title="Third", actor="x")

    raw = path.read_bytes()
    assert raw.count(b"\r\n") == raw.count(b"\n") == 3
    assert sorted(r["title"] for r in lines(node_repo)) == ["First, renamed", "Second", "Third"]
    # The database keeps each line as the file has it: reading the file again finds nothing changed.
    assert jsonl_sync(force=True).changes == [] and Entity.objects.count() == entities_before + 1


def test_writes_in_one_batch_commit_together_and_a_batch_that_fails_leaves_the_file_to_be_imported(node_repo):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tracker.sync import write_batch

    with CaptureQueriesContext(connection) as queries, write_batch("issue"):
        first = services.issue_create(title="First of the batch", actor="alice")
        second = services.issue_create(title="Second of the batch", actor="alice")
    assert [q["sql"] for q in queries].count("COMMIT") == 1
    # Both in the file (in sudocode's line order: two creates in one second sort by their random ids).
    assert sorted(r["title"] for r in lines(node_repo)) == ["First of the batch", "Second of the batch"]
    assert {e.uuid for e in Entity.objects.all()} == {first.uuid, second.uuid}

    # The file is written (and fsynced) inside the batch; a batch that fails after it rolls back the database,
    # and the entity the file holds is imported by the next look at the file, not lost or left out.
    with pytest.raises(RuntimeError), write_batch("issue"):
        third = services.issue_create(title="Third, its batch failed", actor="alice")
        raise RuntimeError("the request's outcome could not be recorded")
    assert not Entity.objects.filter(uuid=third.uuid).exists()
    jsonl_sync()
    assert Entity.objects.get(uuid=third.uuid).title == "Third, its batch failed"
