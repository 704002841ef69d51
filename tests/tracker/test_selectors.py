"""Reads through tracker.selectors on real sudocode data."""

from __future__ import annotations

import pytest

from tests.conftest import copy_corpus
from tracker.selectors import entity_list, entity_summaries, entity_summary
from tracker.sync import jsonl_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("kind", "filters"),
    [
        ("issue", {"archived": None}),
        ("issue", {"status": ["closed"], "tags": ["mcp"]}),
        ("spec", {}),
    ],
)
def test_summaries_of_a_list_are_the_summary_of_each_entity(node_repo, kind, filters):
    # `issue list` summarises hundreds of rows without model instances (issue 16): same shape, order and tags.
    copy_corpus("sudocode-ai__sudocode", node_repo)
    jsonl_sync()
    expected = [entity_summary(e) for e in entity_list(kind=kind, **filters)]
    assert len(expected) > 5 and any(row["tags"] for row in expected)
    assert entity_summaries(entity_list(kind=kind, **filters)) == expected
    assert [list(row) for row in entity_summaries(entity_list(kind=kind, **filters)[:3])] == [
        list(row) for row in expected[:3]
    ]
    assert entity_summaries(entity_list(kind=kind, **filters)[2:5]) == expected[2:5]
