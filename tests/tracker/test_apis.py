"""The read API over the repository's issues and specs (/api/v1/...), its OpenAPI schema and its docs page."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.conftest import copy_corpus
from tracker import jsonl, services
from tracker.sync import jsonl_sync

pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY_KEYS = {"id", "uuid", "kind", "title", "priority", "tags", "archived", "created_at", "updated_at"}
DETAIL_KEYS = {"record", "content", "relationships", "incoming_relationships", "blocked_by", "references"}


@pytest.fixture
def api() -> APIClient:
    # A 500 must show up as a response the test can assert on, not as the exception behind it. A maintainer:
    # the API over issues and specs is staff only unless web.public_read (tests/dashboard/test_access.py).
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(User.objects.create_user("reader", password="pw", is_staff=True))
    return client


@pytest.fixture
def issues(node_repo):
    """Four issues and a spec with tags, priorities, statuses, a blocker and a content reference."""
    spec = services.spec_create(title="Auth design", actor="t", sudocode_id="SPEC-001", tags=["auth"])
    login = services.issue_create(
        title="Login form", actor="t", sudocode_id="ISSUE-001", priority=0, tags=["api", "auth", "ui"]
    )
    token = services.issue_create(
        title="Token refresh",
        actor="t",
        sudocode_id="ISSUE-002",
        priority=1,
        status="blocked",
        tags=["api", "auth"],
        content="Needs [[ISSUE-001]] first; see [[acme/backend#i-ab12]].",
        relationships=[("depends-on", "ISSUE-001"), ("implements", "SPEC-001")],
    )
    docs = services.issue_create(title="Write docs", actor="t", sudocode_id="ISSUE-003", priority=3, tags=["api"])
    old = services.issue_create(title="Old idea", actor="t", sudocode_id="ISSUE-004", status="closed", tags=["auth"])
    services.issue_update(issue="ISSUE-004", actor="t", archived=True)
    return {"spec": spec, "login": login, "token": token, "docs": docs, "old": old}


def ids(response) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


# --- lists ------------------------------------------------------------------------------------------------


def test_it_lists_issues_in_the_summary_shape(api, issues):
    response = api.get("/api/v1/issues")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4 and body["next"] is None
    assert ids(response) == ["ISSUE-001", "ISSUE-002", "ISSUE-003", "ISSUE-004"]
    first = body["results"][0]
    assert set(first) == SUMMARY_KEYS | {"status"}
    assert first == {
        "id": "ISSUE-001",
        "uuid": issues["login"].uuid,
        "kind": "issue",
        "title": "Login form",
        "status": "open",
        "priority": 0,
        "tags": ["api", "auth", "ui"],
        "archived": False,
        "created_at": issues["login"].created_at,
        "updated_at": issues["login"].updated_at,
    }


def test_it_paginates_with_limit_and_offset(api, issues):
    first = api.get("/api/v1/issues?limit=2").json()
    assert first["count"] == 4
    assert [r["id"] for r in first["results"]] == ["ISSUE-001", "ISSUE-002"]
    assert first["next"].endswith("/api/v1/issues?limit=2&offset=2")

    second = api.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == ["ISSUE-003", "ISSUE-004"]
    assert second["next"] is None and second["previous"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=open,blocked", ["ISSUE-001", "ISSUE-002", "ISSUE-003"]),
        ("status=blocked", ["ISSUE-002"]),
        ("priority=0,1", ["ISSUE-001", "ISSUE-002"]),
        ("priority=3", ["ISSUE-003"]),
        ("tags=api", ["ISSUE-001", "ISSUE-002", "ISSUE-003"]),
        ("tags=api,auth", ["ISSUE-001", "ISSUE-002"]),
        ("tags=api,auth,ui", ["ISSUE-001"]),
        ("tags=auth,nope", []),
        ("archived=false", ["ISSUE-001", "ISSUE-002", "ISSUE-003"]),
        ("archived=true", ["ISSUE-004"]),
        ("status=open,closed&tags=auth&archived=false", ["ISSUE-001"]),
    ],
)
def test_it_filters_issues(api, issues, query, expected):
    response = api.get(f"/api/v1/issues?{query}")

    assert response.status_code == 200
    assert ids(response) == expected
    assert response.json()["count"] == len(expected)


def test_a_tag_written_twice_by_another_tool_gives_one_row(api, node_repo):
    now = jsonl.sqlite_timestamp()
    record = jsonl.new_issue_record(
        id="ISSUE-001", uuid="u-1", title="Twice", tags=["api", "api", "auth"], created_at=now, updated_at=now
    )
    (node_repo / ".sudocode" / "issues.jsonl").write_text(jsonl.dump_record(record) + "\n")
    jsonl_sync()

    response = api.get("/api/v1/issues?tags=api,auth")

    assert ids(response) == ["ISSUE-001"] and response.json()["count"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("priority=x", "priority"),
        ("priority=0,x", "priority"),
        ("priority=1.5", "priority"),
        ("priority=7", "priority"),
        ("priority=-1", "priority"),
        ("priority=99999999999999999999", "priority"),
        ("status=done", "status"),
        ("status=open,done", "status"),
        ("archived=maybe", "archived"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(api, issues, query, field):
    for url in ("/api/v1/issues", "/api/v1/specs"):
        response = api.get(f"{url}?{query}")

        assert response.status_code == 400, (url, query, response.content[:200])
        assert response["Content-Type"].startswith("application/json")
        assert list(response.json()) == [field]


def test_it_lists_specs_in_the_summary_shape(api, issues):
    response = api.get("/api/v1/specs?tags=auth")

    assert response.status_code == 200
    [spec] = response.json()["results"]
    assert set(spec) == SUMMARY_KEYS | {"file_path"}
    assert spec["id"] == "SPEC-001" and spec["kind"] == "spec" and spec["file_path"].startswith("specs/SPEC-001")


@pytest.mark.corpus
def test_it_serves_the_real_sudocode_repository(api, node_repo):
    copy_corpus("sudocode-ai__sudocode", node_repo)
    jsonl_sync()

    everything = api.get("/api/v1/issues?limit=1000").json()
    assert everything["count"] == 676 and len(everything["results"]) == 676
    records = [json.loads(line) for line in (node_repo / ".sudocode" / "issues.jsonl").read_text().splitlines()]
    expected = [
        r["id"]
        for r in records
        if r["status"] in ("open", "blocked") and r["priority"] in (0, 1) and "frontend" in r["tags"]
    ]
    got, url = [], "/api/v1/issues?status=open,blocked&priority=0,1&tags=frontend&limit=5"
    while url:
        page = api.get(url).json()
        got += [row["id"] for row in page["results"]]
        url = page["next"]
    assert sorted(got) == sorted(expected) and len(expected) > 5 and page["count"] == len(expected)
    assert api.get("/api/v1/specs").json()["count"] == 75

    detail = api.get("/api/v1/issues/ISSUE-025").json()
    assert {"type": "depends-on", "id": "ISSUE-021"}.items() <= detail["blocked_by"][0].items()
    assert detail["record"]["id"] == "ISSUE-025"


# --- details ----------------------------------------------------------------------------------------------


def test_it_shows_an_issue_in_the_detail_shape(api, issues):
    response = api.get("/api/v1/issues/ISSUE-002")

    assert response.status_code == 200
    body = response.json()
    assert SUMMARY_KEYS | DETAIL_KEYS | {"status"} <= set(body)
    assert body["record"]["uuid"] == issues["token"].uuid and body["record"]["status"] == "blocked"
    assert [(r["type"], r["id"], r["exists"]) for r in body["relationships"]] == [
        ("depends-on", "ISSUE-001", True),
        ("implements", "SPEC-001", True),
    ]
    assert [(b["id"], b["status"]) for b in body["blocked_by"]] == [("ISSUE-001", "open")]
    assert [(r["ref"], r["repo"]) for r in body["references"]] == [
        ("ISSUE-001", None),
        ("acme/backend#i-ab12", "acme/backend"),
    ]
    assert body["references"][0]["title"] == "Login form"


def test_it_shows_who_points_at_an_entity(api, issues):
    login = api.get("/api/v1/issues/ISSUE-001").json()
    spec = api.get("/api/v1/specs/SPEC-001").json()

    assert [(r["type"], r["id"]) for r in login["incoming_relationships"]] == [("depends-on", "ISSUE-002")]
    assert login["relationships"] == [] and login["blocked_by"] == []
    assert [(r["type"], r["id"]) for r in spec["incoming_relationships"]] == [("implements", "ISSUE-002")]
    assert "file_path" in spec and "status" not in spec


def test_it_finds_an_entity_by_uuid_or_any_case_of_its_id(api, issues):
    assert api.get(f"/api/v1/issues/{issues['login'].uuid}").json()["id"] == "ISSUE-001"
    assert api.get("/api/v1/issues/issue-001").json()["id"] == "ISSUE-001"


@pytest.mark.parametrize("url", ["/api/v1/issues/ISSUE-999", "/api/v1/specs/ISSUE-001", "/api/v1/issues/SPEC-001"])
def test_an_unknown_id_is_a_404_in_json(api, issues, url):
    response = api.get(url)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "in this repository" in response.json()["detail"]


# --- schema and docs --------------------------------------------------------------------------------------


def test_the_schema_documents_the_api_and_its_filters(api, node_repo):
    response = api.get("/api/schema/?format=json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/issues", "/api/v1/issues/{ref}", "/api/v1/specs", "/api/v1/specs/{ref}"} <= set(paths)
    params = {p["name"]: p for p in paths["/api/v1/issues"]["get"]["parameters"]}
    assert {"status", "priority", "tags", "archived", "limit", "offset"} <= set(params)
    assert "blocked" in params["status"]["schema"]["items"]["enum"]


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files(api, node_repo):
    response = api.get("/api/docs/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    external = [u for u in re.findall(r"""(?:src|href)=["']([^"']+)""", html) if "//" in u]
    assert external == [], external
    assert "cdn" not in html.lower()
    asset = api.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
