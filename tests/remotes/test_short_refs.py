"""Identities and short references (issue 13): a reference says `org/x`, a remote's identity is
`github.com/org/x`. A short form resolves when exactly one remote has that path; the full form always works;
a short form two remotes share stays unresolved and is shown as ambiguous (page data, doctor, status), never
resolved to the first match."""

from __future__ import annotations

import pytest

from federation_site.config import default_config, write_config
from remotes import services as remote_services
from remotes.models import CrossRepoReference, RemoteRepo
from remotes.selectors import ambiguous_references, reference_summary, remote_get
from tests.conftest import git, run_cli
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def node(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.outgoing.references_changed", lambda: None)
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    config["remote_repos"] = [
        {"url": "github.com/org/api", "display_name": "api (GitHub)", "trust_level": "verified"},
        {"url": "gitlab.com/org/api", "display_name": "api (GitLab)", "trust_level": "verified"},
        {"url": "github.com/org/billing", "display_name": "billing", "trust_level": "verified"},
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    git(node_repo, "add", "-A")
    git(node_repo, "commit", "-qm", "init")
    remote_services.remotes_reconcile(force=True)
    return node_repo


def test_short_forms_resolve_only_when_one_remote_has_the_path(node):
    services.issue_create(title="Short, unique", actor="ana", content="Needs [[org/billing#i-bil1]]")
    services.issue_create(title="Short, shared", actor="ana", content="Needs [[org/api#i-api2]]")
    services.issue_create(title="Full form", actor="ana", content="Needs [[gitlab.com/org/api#i-api3]]")
    remote_services.references_rebuild()
    by_id = {r.remote_id: r for r in CrossRepoReference.objects.all()}
    assert by_id["i-bil1"].remote_repo_id == "github.com/org/billing"
    assert by_id["i-api3"].remote_repo_id == "gitlab.com/org/api"
    assert by_id["i-api2"].remote_repo_id is None  # not the first match
    error = reference_summary(by_id["i-api2"])["error"]
    assert "org/api is ambiguous" in error and "github.com/org/api or gitlab.com/org/api" in error
    [shared] = ambiguous_references()
    assert shared["repo"] == "org/api" and shared["references"] == 1
    assert remote_get(url="org/billing").url == "github.com/org/billing"
    assert remote_get(url="gitlab.com/org/api").url == "gitlab.com/org/api"
    with pytest.raises(RemoteRepo.DoesNotExist, match="ambiguous"):
        remote_get(url="org/api")


def test_doctor_and_status_name_the_ambiguous_reference(node):
    services.issue_create(title="Short, shared", actor="ana", content="Needs [[org/api#i-api2]]")
    doctor = run_cli("--repo", str(node), "doctor")
    assert doctor.code == 1 and "could mean github.com/org/api or gitlab.com/org/api" in doctor.out + doctor.err
    assert "[[github.com/org/api#i-api2]]" in doctor.out + doctor.err
    status = run_cli("--repo", str(node), "status")
    assert "unresolved: org/api is ambiguous" in status.out
