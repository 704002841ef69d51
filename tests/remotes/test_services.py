"""Remotes as a node keeps them: declared in federation.config.json, runtime state in the database."""

from __future__ import annotations

import json
import os
import time

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.test import Client

from federation_site.config import default_config, write_config
from remotes import services
from remotes.auth import caller_for_token
from remotes.models import CrossRepoReference, RemoteRepo
from remotes.sync import client_for
from tracker import jsonl
from tracker import services as tracker_services
from tracker.sync import jsonl_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def configured(node_repo):
    write_config(
        node_repo / ".sudocode" / "federation.config.json",
        default_config(url="github.com/org/frontend", display_name="Frontend"),
    )
    return node_repo


def declared(repo) -> list[dict]:
    return json.loads((repo / ".sudocode" / "federation.config.json").read_text())["remote_repos"]


def test_adding_a_remote_writes_the_config_and_issues_a_key(configured):
    remote, key = services.remote_add(
        url="github.com/org/api-service",
        actor="ana",
        trust_level="verified",
        endpoint="http://127.0.0.1:9/api/v1",
        discover=False,
    )
    assert declared(configured) == [
        {
            "url": "github.com/org/api-service",
            "display_name": "api-service",
            "trust_level": "verified",
            "endpoint": "http://127.0.0.1:9/api/v1",
        }
    ]
    assert remote.rest_endpoint == "http://127.0.0.1:9/api/v1" and remote.added_by == "ana"
    assert key.startswith("sfk_") and key not in remote.api_key_hash
    assert caller_for_token(key).remote == remote
    assert caller_for_token(key + "x").remote is None


@pytest.mark.parametrize(("kwargs", "field"), [({"trust_level": "trustd"}, "trust_level"), ({}, "url")])
def test_bad_remotes_are_refused_naming_the_field(configured, kwargs, field):
    services.remote_add(url="github.com/org/api-service", actor="a", discover=False)
    with pytest.raises(ValidationError) as err:
        services.remote_add(
            url="github.com/org/api-service" if field == "url" else "github.com/org/x",
            actor="a",
            discover=False,
            **kwargs,
        )
    assert field in err.value.message_dict
    assert len(declared(configured)) == 1


def test_removing_a_remote_revokes_its_key(configured):
    remote, key = services.remote_add(url="github.com/org/api-service", actor="a", discover=False)
    services.remote_remove(remote=remote)
    assert declared(configured) == []
    assert caller_for_token(key).remote is None


def test_a_trust_level_edited_in_the_file_reaches_the_database(configured):
    services.remote_add(url="github.com/org/api-service", actor="a", discover=False)
    path = configured / ".sudocode" / "federation.config.json"
    data = json.loads(path.read_text())
    data["remote_repos"][0]["trust_level"] = "trusted"
    path.write_text(json.dumps(data))
    services.remotes_reconcile()
    assert RemoteRepo.objects.get().trust_level == "trusted"


def test_only_a_config_that_validated_is_recorded_as_reconciled(configured):
    # The CLI skips validating a file the database records as reconciled (issue 16): a file a running node
    # refused (it keeps its last good config) must never be recorded so.
    from federation_site import node

    services.remote_add(url="github.com/org/api-service", actor="a", discover=False)
    services.remotes_reconcile()
    assert services.config_reconciled()
    node.config()  # this process now holds a good config, as a running node does
    path = configured / ".sudocode" / "federation.config.json"
    data = json.loads(path.read_text())
    data["remote_repos"][0]["trust_level"] = "trustd"
    path.write_text(json.dumps(data))
    services.remotes_reconcile()
    assert node.config_problem() is not None
    assert not services.config_reconciled()
    assert RemoteRepo.objects.get().trust_level == "untrusted"  # the last good config's
    data["remote_repos"][0]["trust_level"] = "trusted"
    path.write_text(json.dumps(data))
    services.remotes_reconcile()
    assert services.config_reconciled()
    assert RemoteRepo.objects.get().trust_level == "trusted"


def test_the_admin_writes_trust_decisions_back_to_the_config(configured):
    services.remote_add(url="github.com/org/api-service", actor="a", discover=False)
    User.objects.create_superuser("admin", "a@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    response = client.post(
        "/admin/remotes/remoterepo/github.com/org/api-service/change/",
        {
            "display_name": "API",
            "trust_level": "trusted",
            "rest_endpoint": "http://127.0.0.1:9/api/v1",
            "permissions": '{"query": {"exclude_fields": ["assignee"]}}',
        },
    )
    assert response.status_code == 302, response.content[:2000]
    [entry] = declared(configured)
    assert entry["trust_level"] == "trusted" and entry["display_name"] == "API"
    assert entry["permissions"] == {"query": {"exclude_fields": ["assignee"]}}


def test_a_changed_token_is_used_without_a_restart(configured):
    remote, _ = services.remote_add(
        url="github.com/org/api-gateway", actor="a", token="first", discover=False, endpoint="http://127.0.0.1:9/api/v1"
    )
    secrets_text = (configured / ".sudocode" / "secrets.env").read_text()
    assert "REMOTE_REPO_TOKEN_API_GATEWAY=first" in secrets_text
    assert client_for(remote).token == "first"
    time.sleep(0.01)
    services.remote_set_token(remote=remote, token="second")
    os.utime(configured / ".sudocode" / "secrets.env")
    assert client_for(remote).token == "second"


def test_references_follow_the_content_and_remote_relationships(configured):
    services.remote_add(url="github.com/org/api-service", actor="a", discover=False)
    issue = tracker_services.issue_create(
        title="Profile page", actor="a", content="Blocked by: [[org/api-service#issue-084]]\nSee [[acme/other#i-abcd]]."
    )
    # A record written by another node carries the seed's remote_relationships.
    path = configured / ".sudocode" / "issues.jsonl"
    record = json.loads(path.read_text())
    record["remote_relationships"] = [
        {
            "type": "discovered-from",
            "remote_repo": "github.com/org/api-service",
            "remote_entity_type": "issue",
            "remote_id": "issue-090",
            "remote_uuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "canonical_ref": "org/api-service#issue-090",
        }
    ]
    path.write_text(jsonl.dump_record(record) + "\n")
    jsonl_sync()

    services.references_rebuild()

    refs = {(r.canonical_ref, r.relationship_type, r.remote_repo_id) for r in CrossRepoReference.objects.all()}
    assert refs == {
        ("org/api-service#issue-084", "blocked-by", "github.com/org/api-service"),
        ("acme/other#i-abcd", "references", None),
        ("org/api-service#issue-090", "discovered-from", "github.com/org/api-service"),
    }
    tracker_services.issue_update(issue=issue.sudocode_id, actor="a", content="No refs any more")
    services.references_rebuild()
    assert [r.canonical_ref for r in CrossRepoReference.objects.all()] == ["org/api-service#issue-090"]


def test_each_operation_can_have_its_own_timeout(configured):
    path = configured / ".sudocode" / "federation.config.json"
    data = json.loads(path.read_text())
    data["http"]["operation_timeouts"] = {"discover": 1.5}
    path.write_text(json.dumps(data))
    remote, _ = services.remote_add(
        url="github.com/org/api", actor="a", endpoint="http://127.0.0.1:9/api/v1", discover=False
    )
    assert client_for(remote, "discover").policy.read_timeout == 1.5
    assert client_for(remote, "query").policy.read_timeout == data["http"]["timeout_seconds"]
