"""The management API (/api/v1/federation/remotes): staff declare, change and forget remotes through the same
services as the CLI and the admin, so federation.config.json stays the truth."""

from __future__ import annotations

import base64
import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from federation_site.config import default_config, write_config
from remotes import services
from remotes.auth import caller_for_token
from remotes.models import RemoteRepo

pytestmark = pytest.mark.django_db(transaction=True)

REMOTES = "/api/v1/federation/remotes"
API = "github.com/org/api-service"


@pytest.fixture
def configured(node_repo):
    write_config(
        node_repo / ".sudocode" / "federation.config.json",
        default_config(url="github.com/org/frontend", display_name="Frontend"),
    )
    return node_repo


def declared(repo) -> list[dict]:
    return json.loads((repo / ".sudocode" / "federation.config.json").read_text())["remote_repos"]


@pytest.fixture
def staff(configured):
    """A maintainer logged in to the admin: a session, and the CSRF token every write must carry."""
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    token = client.get("/admin/login/").cookies[settings.CSRF_COOKIE_NAME].value
    client.post("/admin/login/", {"username": "maintainer", "password": "pw", "csrfmiddlewaretoken": token})
    return client


def send(client: Client, method: str, path: str, body: object = None, **headers):
    """A JSON call with the session's CSRF token."""
    token = client.cookies[settings.CSRF_COOKIE_NAME].value if settings.CSRF_COOKIE_NAME in client.cookies else ""
    call = getattr(client, method)
    if body is None:
        return call(path, HTTP_X_CSRFTOKEN=token, **headers)
    return call(path, json.dumps(body), content_type="application/json", HTTP_X_CSRFTOKEN=token, **headers)


def fields_named(response) -> list[str]:
    return [error["path"] for error in response.json()["errors"]]


def test_staff_add_a_remote_with_the_seeds_defaults_and_get_its_key_once(staff, configured):
    response = send(staff, "post", REMOTES, {"url": API, "discover": False})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["api_key"].startswith("sfk_")
    assert caller_for_token(body["api_key"]).remote.url == API
    # The seed's remote_repos defaults: untrusted (our choice where the table has none), unknown sync status,
    # no auto-sync every 60 minutes; added by whoever was logged in.
    assert {k: body[k] for k in ("url", "display_name", "trust_level", "sync_status", "auto_sync")} == {
        "url": API,
        "display_name": "api-service",
        "trust_level": "untrusted",
        "sync_status": "unknown",
        "auto_sync": False,
    }
    assert (body["sync_interval_minutes"], body["added_by"], body["rest_endpoint"]) == (60, "maintainer", None)
    assert declared(configured) == [{"url": API, "display_name": "api-service", "trust_level": "untrusted"}]

    listed = send(staff, "get", REMOTES).json()
    assert listed["count"] == 1 and "api_key" not in listed["results"][0]
    assert send(staff, "get", f"{REMOTES}/{API}").json()["url"] == API


def test_every_field_of_a_new_remote_reaches_the_config(staff, configured):
    response = send(
        staff,
        "post",
        REMOTES,
        {
            "url": API,
            "display_name": "API Service",
            "trust_level": "verified",
            "rest_endpoint": "http://127.0.0.1:9/api/v1",
            "auto_sync": True,
            "sync_interval_minutes": 15,
            "permissions": {"mutate": {"allowed": True}},
            "discover": False,
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["permissions"] == {"mutate": {"allowed": True}}
    assert declared(configured) == [
        {
            "url": API,
            "display_name": "API Service",
            "trust_level": "verified",
            "endpoint": "http://127.0.0.1:9/api/v1",
            "sync": {"auto_sync": True, "interval_minutes": 15},
            "permissions": {"mutate": {"allowed": True}},
        }
    ]
    row = RemoteRepo.objects.get(url=API)
    assert (row.auto_sync, row.sync_interval_minutes, row.rest_endpoint) == (True, 15, "http://127.0.0.1:9/api/v1")


# Each bad input: the method, the body, and the field the 400 must name. Nothing is written.
BAD = [
    ("post", {}, "url"),
    ("post", {"url": ""}, "url"),
    ("post", {"url": "https://github.com/org/x"}, "url"),
    ("post", {"url": "github.com/org/x", "trust_level": "trustd"}, "trust_level"),
    ("post", {"url": "github.com/org/x", "trust_level": 3}, "trust_level"),
    ("post", {"url": "github.com/org/x", "rest_endpoint": "ftp://x"}, "rest_endpoint"),
    ("post", {"url": "github.com/org/x", "transport": "smtp"}, "transport"),
    ("post", {"url": "github.com/org/x", "transport": "a2a"}, "rest_endpoint"),
    ("post", {"url": "github.com/org/x", "sync_interval_minutes": 0}, "sync_interval_minutes"),
    ("post", {"url": "github.com/org/x", "sync_interval_minutes": "often"}, "sync_interval_minutes"),
    ("post", {"url": "github.com/org/x", "auto_sync": "sometimes"}, "auto_sync"),
    ("post", {"url": "github.com/org/x", "permissions": []}, "permissions"),
    ("post", {"url": "github.com/org/x", "permissions": {"mutate": {"allowed": "yes"}}}, "permissions.mutate.allowed"),
    ("post", {"url": "github.com/org/x", "trust": "trusted"}, "trust"),
    ("post", ["github.com/org/x"], ""),
    ("put", {"trust_level": "root"}, "trust_level"),
    ("put", {"rest_endpoint": "not a url"}, "rest_endpoint"),
    ("put", {"display_name": ""}, "display_name"),
    ("put", {"sync_interval_minutes": -5}, "sync_interval_minutes"),
    ("put", {"permissions": {"query": {"entities": ["epic"]}}}, "permissions.query.entities[0]"),
    ("put", {"url": "github.com/org/other"}, "url"),
    ("put", {"discover": False}, "discover"),
]


@pytest.mark.parametrize(("method", "body", "field"), BAD, ids=[f"{m}-{f or 'body'}" for m, _, f in BAD])
def test_the_management_apis_validation_table(staff, configured, method, body, field):
    services.remote_add(url=API, actor="t", trust_level="verified", discover=False)
    before = (configured / ".sudocode" / "federation.config.json").read_text()
    path = REMOTES if method == "post" else f"{REMOTES}/{API}"
    response = send(staff, method, path, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid"
    assert field in fields_named(response), response.json()
    assert (configured / ".sudocode" / "federation.config.json").read_text() == before


def test_a_duplicate_remote_is_a_409_naming_the_url(staff, configured):
    services.remote_add(url=API, actor="t", discover=False)
    response = send(staff, "post", REMOTES, {"url": API.upper(), "discover": False})
    assert response.status_code == 409
    assert response.json()["error"] == "conflict" and fields_named(response) == ["url"]
    assert "already a remote" in response.json()["detail"]
    assert len(declared(configured)) == 1


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_an_unknown_remote_is_a_404(staff, method):
    body = {"trust_level": "trusted"} if method == "put" else None
    response = send(staff, method, f"{REMOTES}/github.com/org/nobody", body)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found" and "github.com/org/nobody" in response.json()["detail"]


def test_put_changes_the_trust_level_in_the_config_and_the_next_call_is_judged_at_it(staff, configured):
    _, key = services.remote_add(url=API, actor="t", trust_level="verified", discover=False)
    assert caller_for_token(key).trust_level == "verified"
    response = send(staff, "put", f"{REMOTES}/{API}", {"trust_level": "trusted", "display_name": "API"})
    assert response.status_code == 200, response.content
    assert (response.json()["trust_level"], response.json()["display_name"]) == ("trusted", "API")
    assert declared(configured) == [{"url": API, "display_name": "API", "trust_level": "trusted"}]
    assert caller_for_token(key).trust_level == "trusted"
    # The short form a reference uses names the same remote.
    assert send(staff, "get", f"{REMOTES}/org/api-service").json()["trust_level"] == "trusted"


def test_delete_removes_the_remote_from_the_config_and_revokes_its_key(staff, configured):
    _, key = services.remote_add(url=API, actor="t", discover=False)
    response = send(staff, "delete", f"{REMOTES}/{API}")
    assert response.status_code == 204
    assert declared(configured) == [] and not RemoteRepo.objects.filter(url=API).exists()
    assert caller_for_token(key).remote is None
    assert send(staff, "delete", f"{REMOTES}/{API}").status_code == 404


def test_only_staff_may_manage_remotes(configured, staff):
    _, key = services.remote_add(url=API, actor="t", trust_level="trusted", discover=False)
    User.objects.create_user("dev", "d@example.com", "pw", is_staff=False)
    anonymous, remote = Client(), Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    developer = Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"dev:pw").decode())
    for client in (anonymous, remote, developer):
        assert client.get(REMOTES).status_code == 403
        assert send(client, "delete", f"{REMOTES}/{API}").status_code == 403
    # A session must send its CSRF token with a write.
    no_csrf = staff.put(f"{REMOTES}/{API}", json.dumps({"trust_level": "untrusted"}), content_type="application/json")
    assert no_csrf.status_code == 403
    assert declared(configured)[0]["trust_level"] == "trusted"


def test_a_script_uses_a_staff_users_name_and_password(configured, staff):
    basic = Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"maintainer:pw").decode())
    added = basic.post(REMOTES, {"url": API, "discover": False}, content_type="application/json")
    assert added.status_code == 201, added.content
    wrong = Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"maintainer:nope").decode())
    assert wrong.get(REMOTES).status_code == 403


def test_the_cli_updates_a_remote_through_the_same_service(git_repo):
    from tests.conftest import run_cli

    def fed(*args: str):
        return run_cli("--repo", str(git_repo), *args)

    assert fed("init").code == 0
    assert fed("remote", "add", API, "--trust", "verified", "--no-discover").code == 0
    changed = fed("remote", "update", API, "--trust", "trusted", "--endpoint", "http://127.0.0.1:9/api/v1")
    assert changed.code == 0, changed.err
    assert "Trust level: verified -> trusted" in changed.out
    assert declared(git_repo) == [
        {"url": API, "display_name": "api-service", "trust_level": "trusted", "endpoint": "http://127.0.0.1:9/api/v1"}
    ]
    assert fed("remote", "update", API, "--name", "API").code == 0
    assert declared(git_repo)[0]["display_name"] == "API"

    nothing = fed("remote", "update", API)
    assert (nothing.code, nothing.err) == (2, "error: nothing to change: give --trust, --endpoint or --name\n")
    bad = fed("remote", "update", API, "--endpoint", "ftp://x")
    assert bad.code == 2 and bad.err.startswith("error: endpoint: "), bad.err
    unknown = fed("remote", "update", "github.com/org/nobody", "--trust", "trusted")
    assert unknown.code == 1 and "no remote 'github.com/org/nobody'" in unknown.err
    assert declared(git_repo)[0]["endpoint"] == "http://127.0.0.1:9/api/v1"


def test_the_management_api_is_in_the_openapi_schema(configured):
    paths = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert set(paths[REMOTES]) >= {"get", "post"}
    assert set(paths[REMOTES + "/{identity}"]) >= {"get", "put", "delete"}
