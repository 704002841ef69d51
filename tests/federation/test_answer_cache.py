"""The encoded-answer cache of federated queries (federation.services): reused while the data has not moved,
dropped when it has, whichever process changed it; and no count query when the first page holds every match."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from federation.services import answer_query
from federation_site.config import default_config, write_config
from protocol import messages
from remotes import services as remote_services
from remotes.models import RemoteRepo
from remotes.policy import Caller
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def node(node_repo):
    write_config(
        node_repo / ".sudocode" / "federation.config.json",
        default_config(url="github.com/org/api-service", display_name="API"),
    )
    services.issue_create(title="OAuth token endpoint", actor="t", sudocode_id="issue-042", tags=["api"])
    services.issue_create(title="Rate limits", actor="t", sudocode_id="issue-043", status="closed")
    for level in ("untrusted", "verified"):
        remote_services.remote_add(url=f"github.com/org/{level}", actor="t", trust_level=level, discover=False)
    return node_repo


def ask(body: dict, trust: str = "verified") -> dict:
    caller = Caller(RemoteRepo.objects.get(url=f"github.com/org/{trust}"))
    return answer_query(caller=caller, message=messages.parse_query(body))


def test_an_unchanged_query_is_answered_from_the_cache(node):
    first = ask({"entity": "issue"})
    with CaptureQueriesContext(connection) as queries:
        again = ask({"entity": "issue"})
    assert again["results"] == first["results"]
    assert again["metadata"]["cached_at"] == first["metadata"]["cached_at"]  # built once
    assert not [q for q in queries.captured_queries if "tracker_entity" in q["sql"]]


def test_a_change_of_the_data_drops_the_cached_answer(node):
    ask({"entity": "issue"})
    services.issue_update(issue="issue-042", actor="t", title="OAuth token endpoint, v2")
    titles = [r["title"] for r in ask({"entity": "issue"})["results"]]
    assert "OAuth token endpoint, v2" in titles
    services.issue_update(issue="issue-042", actor="t", title="OAuth token endpoint")  # back as it was
    assert "OAuth token endpoint" in [r["title"] for r in ask({"entity": "issue"})["results"]]


def test_another_grant_or_another_query_is_another_answer(node):
    verified = ask({"entity": "issue", "include": ["relationships"]}, trust="verified")
    assert "relationships" in verified["results"][0]
    untrusted = ask({"entity": "issue"}, trust="untrusted")
    assert "content" not in untrusted["results"][0]
    open_only = ask({"entity": "issue", "filters": {"status": "open"}})
    assert [r["id"] for r in open_only["results"]] == ["issue-042"]


def test_no_count_query_when_the_first_page_holds_every_match(node):
    with CaptureQueriesContext(connection) as queries:
        answer = ask({"entity": "issue", "limit": 10})
    assert answer["metadata"]["total"] == 2
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    page = ask({"entity": "issue", "limit": 1})
    assert page["metadata"]["total"] == 2 and page["metadata"]["next_cursor"]
