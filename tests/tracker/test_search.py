"""Full-text search (tracker.search; issue 13): ranked, titles first, every word, the last as a prefix, kept up
to date as entities change, on SQLite (FTS5) and, in the PostgreSQL pass, on PostgreSQL's text search."""

from __future__ import annotations

import pytest
from django.db import connection

from federation.services import answer_query
from protocol import messages
from remotes.policy import ANONYMOUS
from tracker import services
from tracker.search import search_ranked
from tracker.selectors import entity_search

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def issues(node_repo):
    made = {
        "title": services.issue_create(title="Authentication bug in login", actor="ana", content="Tokens expire."),
        "content": services.issue_create(
            title="Session handling", actor="ana", content="The authentication middleware drops the cookie."
        ),
        "other": services.issue_create(title="Dark mode", actor="ana", content="Colours."),
        "spec": services.spec_create(title="Authentication design", actor="ana", content="OAuth and keys."),
    }
    return {name: entity.uuid for name, entity in made.items()}


def ids(found):
    return [uuid for uuid, _ in found]


def test_titles_rank_above_content_and_every_word_must_match(issues):
    found = search_ranked("authentication", kind="issue")
    assert ids(found) == [issues["title"], issues["content"]]
    assert ids(search_ranked("authentication middleware")) == [issues["content"]]
    assert ids(search_ranked("authent", kind="issue"))[:1] == [issues["title"]]  # the last word is a prefix
    assert set(ids(search_ranked("authentication"))) == {issues["title"], issues["content"], issues["spec"]}
    assert search_ranked("") == [] and search_ranked("!!! ???") == []  # no words: nothing, no error
    assert search_ranked('"; DROP TABLE x; --') == []  # punctuation is not syntax


def test_the_snippet_shows_the_match_and_titles_only_hides_content(issues):
    [(uuid, snippet)] = [hit for hit in search_ranked("middleware") if hit[0] == issues["content"]]
    assert "[middleware]" in snippet.lower()
    assert search_ranked("middleware", titles_only=True) == []
    assert ids(search_ranked("session", titles_only=True)) == [issues["content"]]


def test_the_index_follows_updates_and_deletes(issues):
    services.issue_update(issue=issues["other"], actor="ana", title="Dark mode authentication screen")
    assert issues["other"] in ids(search_ranked("authentication"))
    services.issue_update(issue=issues["title"], actor="ana", title="Login bug", content="Nothing else.")
    assert issues["title"] not in ids(search_ranked("authentication"))


def test_the_federated_query_searches_within_what_the_caller_may_see(issues):
    page, total = entity_search(kind="issue", search="authentication")
    assert [e.uuid for e in page] == [issues["title"], issues["content"]] and total == 2
    query = messages.parse_message(
        {
            "type": "query",
            "from": "github.com/org/x",
            "query": {"entity": "issue", "filters": {"search": "authentication"}},
        }
    )
    answer = answer_query(caller=ANONYMOUS, message=query)  # untrusted: titles only, no snippet of content
    assert [r["title"] for r in answer["results"]] == ["Authentication bug in login"]
    assert answer["results"][0]["snippet"] == "" and answer["metadata"].get("next_cursor") is None
    with pytest.raises(messages.MessageError, match="query.filters.search"):
        messages.parse_message(
            {"type": "query", "from": "github.com/org/x", "query": {"entity": "issue", "filters": {"search": "  "}}}
        )


def test_the_backend_is_the_databases_own():
    assert connection.vendor in ("sqlite", "postgresql")  # each has its index (migration 0003)
