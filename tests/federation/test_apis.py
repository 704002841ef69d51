"""The federation endpoints of one node, called in-process: who may see what, and bad input is a 400."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from audit.models import AuditLog
from federation_site.config import default_config, write_config
from remotes import services as remote_services
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = "/api/v1/federation/query"
A2A = "/api/v1/federation/a2a"
INFO = "/api/v1/federation/info"


@pytest.fixture
def node(node_repo):
    """A configured node with two issues and a spec, and one remote per trust level (keys in `node.keys`)."""
    config = default_config(url="github.com/org/api-service", display_name="API")
    config["remote_repos"] = [
        {
            "url": "github.com/org/narrow",
            "trust_level": "trusted",
            "permissions": {
                "query": {"entities": ["issue"], "exclude_fields": ["content", "assignee"], "filters": ["status"]}
            },
        },
        {"url": "github.com/org/blocked", "trust_level": "verified", "permissions": {"query": {"allowed": False}}},
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    spec = services.spec_create(title="Users API", actor="t", sudocode_id="spec-015", content="The spec body")
    services.issue_create(
        title="OAuth token endpoint",
        actor="t",
        sudocode_id="issue-042",
        priority=1,
        tags=["api", "auth"],
        content="Internal notes",
        assignee="ana",
        relationships=[("implements", spec.sudocode_id)],
    )
    services.issue_create(title="Rate limits", actor="t", sudocode_id="issue-043", status="closed", tags=["api"])
    keys = {}
    for url in ("github.com/org/narrow", "github.com/org/blocked"):
        keys[url] = remote_services.remote_rotate_key(remote=_remote(url))
    for level in ("untrusted", "verified", "trusted"):
        _, keys[level] = remote_services.remote_add(
            url=f"github.com/org/{level}", actor="t", trust_level=level, discover=False
        )
    return SimpleNamespace(repo=node_repo, keys=keys)


def _remote(url):
    remote_services.remotes_reconcile()
    from remotes.models import RemoteRepo

    return RemoteRepo.objects.get(url=url)


def post(path, body, key=None, **extra):
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.generic("POST", path, raw, content_type="application/json", **extra)


# Everything a caller can be shown, by trust level: public fields for untrusted (and anonymous) callers,
# internal ones (content, assignee, relationships) for verified, the whole record for trusted.
PUBLIC = {
    "id",
    "uuid",
    "kind",
    "title",
    "status",
    "priority",
    "tags",
    "archived",
    "created_at",
    "updated_at",
    "closed_at",
    "canonical_ref",
}
INTERNAL = PUBLIC | {"content", "assignee", "parent_id", "parent_uuid", "relationships", "spec_refs"}
SPEC_PUBLIC = PUBLIC - {"status", "closed_at"}
SPEC_INTERNAL = SPEC_PUBLIC | {"content", "parent_id", "parent_uuid", "file_path", "relationships", "spec_refs"}

MATRIX = [
    # caller,        entity,  expected: set of fields, or an HTTP status when refused
    ("anonymous", "issue", PUBLIC),
    ("anonymous", "spec", SPEC_PUBLIC),
    ("untrusted", "issue", PUBLIC),
    ("untrusted", "spec", SPEC_PUBLIC),
    ("verified", "issue", INTERNAL),
    ("verified", "spec", SPEC_INTERNAL),
    ("trusted", "issue", INTERNAL | {"archived_at"}),
    ("trusted", "spec", SPEC_INTERNAL | {"archived_at"}),
    ("github.com/org/narrow", "issue", (INTERNAL | {"archived_at"}) - {"content", "assignee"}),
    ("github.com/org/narrow", "spec", 403),
    ("github.com/org/blocked", "issue", 403),
    ("github.com/org/blocked", "spec", 403),
]


def test_the_permission_matrix_trust_level_by_entity_by_field(node):
    """One table: for each caller and entity, exactly which fields come back (or that it is refused), on
    both transports (the REST endpoint and the A2A endpoint)."""
    for caller, entity, expected in MATRIX:
        key = node.keys.get(caller)
        include = [] if expected in (403,) or expected <= SPEC_PUBLIC | PUBLIC else ["relationships", "spec_refs"]
        body = {"entity": entity, "include": include}
        message = {"type": "query", "from": "github.com/org/caller", "query": body}
        for path, payload in ((QUERY, body), (A2A, message)):
            response = post(path, payload, key)
            where = f"{caller} {entity} via {path}"
            if expected == 403:
                assert response.status_code == 403, where
                assert response.json()["error"] == "forbidden", where
                continue
            assert response.status_code == 200, (where, response.content)
            results = response.json()["results"]
            assert results, where
            for result in results:
                assert set(result) == expected, (where, set(result) ^ expected)


def test_an_untrusted_caller_may_not_include_internal_data(node):
    response = post(QUERY, {"entity": "issue", "include": ["relationships"]})
    assert response.status_code == 403
    assert "relationships" in response.json()["detail"]


def test_a_narrowed_remote_may_only_use_its_filters(node):
    key = node.keys["github.com/org/narrow"]
    assert post(QUERY, {"entity": "issue", "filters": {"status": "open"}}, key).status_code == 200
    refused = post(QUERY, {"entity": "issue", "filters": {"labels": ["api"]}}, key)
    assert refused.status_code == 403
    assert "labels" in refused.json()["detail"]


def test_a_wrong_key_is_the_anonymous_caller(node):
    info = APIClient()
    info.credentials(HTTP_AUTHORIZATION="Bearer sfk_not-a-key")
    assert info.get(INFO).json()["capabilities"]["trust_level"] == "untrusted"
    verified = APIClient()
    verified.credentials(HTTP_AUTHORIZATION=f"Bearer {node.keys['verified']}")
    assert verified.get(INFO).json()["capabilities"]["trust_level"] == "verified"


def test_query_results_carry_canonical_refs_and_metadata(node):
    body = post(QUERY, {"entity": "issue", "filters": {"labels": ["api"], "status": ["open", "closed"]}}).json()
    assert body["type"] == "query_response"
    assert sorted(r["canonical_ref"] for r in body["results"]) == [
        "org/api-service#issue-042",
        "org/api-service#issue-043",
    ]
    assert body["metadata"]["total"] == 2 and "next_cursor" not in body["metadata"]
    assert body["metadata"]["cached_at"].endswith("Z")


def test_archived_entities_are_left_out_unless_the_query_asks_or_names_them(node):
    services.issue_update(issue="issue-043", actor="t", status="open", archived=True)

    def ids(filters: dict) -> list[str]:
        body = post(QUERY, {"entity": "issue", "filters": filters})
        assert body.status_code == 200, body.content
        return sorted(r["id"] for r in body.json()["results"])

    assert ids({"status": "open"}) == ["issue-042"]
    assert ids({"status": "open", "archived": True}) == ["issue-043"]
    assert ids({"status": "open", "archived": "any"}) == ["issue-042", "issue-043"]
    assert ids({"ids": ["issue-043"]}) == ["issue-043"]  # a remote refreshing its reference to it
    assert post(QUERY, {"entity": "issue", "filters": {"archived": "yes"}}).status_code == 400


def test_spec_refs_filter_and_include(node):
    key = node.keys["verified"]
    body = post(QUERY, {"entity": "issue", "filters": {"spec_refs": ["spec-015"]}, "include": ["spec_refs"]}, key)
    assert [(r["id"], r["spec_refs"]) for r in body.json()["results"]] == [("issue-042", ["spec-015"])]


def test_status_on_specs_is_a_400_naming_the_field(node):
    response = post(QUERY, {"entity": "spec", "filters": {"status": "open"}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "query.filters.status"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"type": "delegate", "from": "github.com/a/b"}, "task"),
        ({"type": "handoff", "from": "github.com/a/b"}, "type"),
        ({"type": "query", "from": "github.com/a/b"}, "query"),
        ({"type": "query", "from": "github.com/a/b", "query": {"entity": "issue", "limit": 501}}, "query.limit"),
        ({"type": "query", "from": "github.com/a/b", "query": {"entity": "epic"}}, "query.entity"),
        ({"type": "query", "from": 7, "query": {"entity": "issue"}}, "from"),
        ([1, 2, 3], ""),
        ("not json at all", ""),
    ],
)
def test_malformed_messages_are_400s_naming_the_path(node, body, path):
    response = post(A2A, body if not isinstance(body, str) else body.encode())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid message"
    assert response.json()["errors"][0]["path"] == path


def test_an_oversize_message_is_refused_before_it_is_read(node):
    huge = json.dumps({"entity": "issue", "filters": {"ids": ["x" * 400] * 700}})
    response = post(QUERY, huge)
    assert response.status_code == 400
    assert "limit" in response.json()["errors"][0]["message"]


def test_every_query_leaves_one_small_audit_row(node):
    post(
        QUERY,
        {"entity": "issue", "filters": {"status": "open"}},
        node.keys["verified"],
        HTTP_X_CORRELATION_ID="corr-123",
    )
    post(QUERY, {"entity": "spec"}, node.keys["github.com/org/blocked"])
    ok, refused = AuditLog.objects.order_by("timestamp")
    assert (ok.direction, ok.operation_type, ok.remote_repo, ok.status) == (
        "incoming",
        "query",
        "github.com/org/verified",
        "success",
    )
    assert ok.correlation_id == "corr-123"
    assert ok.result == {"total": 1, "returned": 1}
    assert len(json.dumps(ok.payload)) < 200
    assert (refused.remote_repo, refused.status) == ("github.com/org/blocked", "failed")
    assert "allowed is false" in refused.error_message


def test_the_message_schema_is_published_and_in_openapi(node):
    schema = APIClient().get("/api/v1/federation/schema").json()
    assert "QueryMessage" in json.dumps(schema)
    openapi = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/federation/query" in openapi["paths"]
    assert "/api/v1/federation/a2a" in openapi["paths"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "from",
                    "to",
                    "query",
                    "entity",
                    "filters",
                    "status",
                    "labels",
                    "priority",
                    "ids",
                    "limit",
                    "cursor",
                    "include",
                    "timestamp",
                    "updated_since",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON, path=st.sampled_from([QUERY, A2A]), raw=st.binary(max_size=40), use_raw=st.booleans())
def test_no_input_makes_a_federation_endpoint_fail_with_a_5xx(node, body, path, raw, use_raw):
    response = post(path, raw if use_raw else body, node.keys["trusted"])
    assert response.status_code < 500, response.content
    assert response["Content-Type"].startswith("application/json")


def test_a_message_refused_as_invalid_is_audited_as_a_failed_call_naming_the_field(node):
    # Refused before any service saw it (400), on the fast door's endpoint and on Django's: still in the log.
    post(QUERY, {"entity": "issue", "filters": {"colour": "red"}}, node.keys["verified"], HTTP_X_CORRELATION_ID="c-1")
    post("/api/v1/federation/mutate", {"type": "mutate", "from": "github.com/org/verified"}, node.keys["verified"])
    rows = {row.operation_type: row for row in AuditLog.objects.filter(status="failed")}
    assert set(rows) == {"query", "mutate"}
    assert rows["query"].remote_repo == "github.com/org/verified" and rows["query"].correlation_id == "c-1"
    assert "filters.colour" in rows["query"].error_message
    assert "operation" in rows["mutate"].error_message or "data" in rows["mutate"].error_message
