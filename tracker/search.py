"""Full-text search over this repository's issues and specs (issue 13): ranked, titles weighing more than
content. SQLite (the embedded default) uses its FTS5 index (bm25), PostgreSQL its text search (ts_rank over the
weighted tsvector the GIN index of migration 0003 covers); any other database falls back to a substring match.
The federated query's `search` filter and `sudocode-fed search` both read through `search_ranked`."""

from __future__ import annotations

import re

from django.db import connection

from tracker.models import Entity

MAX_MATCHES = 1000  # the most matches a search ranks; more is not a search result anyone reads
_WORD = re.compile(r"\w+", re.UNICODE)


def search_ranked(
    text: str, *, kind: str | None = None, limit: int = MAX_MATCHES, titles_only: bool = False
) -> list[tuple[str, str]]:
    """The entities matching every word of `text` (the last one as a prefix), best first, at most `limit`:
    [(uuid, snippet)], the snippet a short extract of the content with the matches in [brackets] ("" when only
    the title matched). `titles_only`: search titles alone (for a caller who may not see content), no snippet.
    Empty when `text` has no word. Raises nothing for odd input: punctuation is ignored."""
    words = _WORD.findall(text or "")
    if not words:
        return []
    if connection.vendor == "sqlite":
        found = _sqlite(words, kind, limit, titles_only)
    elif connection.vendor == "postgresql":
        found = _postgres(words, kind, limit, titles_only)
    else:
        found = _anywhere(words, kind, limit, titles_only)
    return [(uuid, "" if titles_only else snippet) for uuid, snippet in found]


def _sqlite(words: list[str], kind: str | None, limit: int, titles_only: bool) -> list[tuple[str, str]]:
    query = (" ".join(f'"{w}"' for w in words[:-1]) + f' "{words[-1]}"*').strip()
    if titles_only:
        query = f"title : ({query})"
    sql = (
        "SELECT e.uuid, snippet(tracker_entity_fts, 1, '[', ']', '…', 12) FROM tracker_entity_fts "
        "JOIN tracker_entity e ON e.rowid = tracker_entity_fts.rowid WHERE tracker_entity_fts MATCH %s"
        + (" AND e.kind = %s" if kind else "")
        + " ORDER BY bm25(tracker_entity_fts, 10.0, 1.0), e.created_at LIMIT %s"
    )
    params = [query, *([kind] if kind else []), limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(uuid, snippet or "") for uuid, snippet in cursor.fetchall()]


# The weighted document (title A, content B): the same expression as the GIN index of migration 0003.
DOCUMENT_SQL = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(content, '')), 'B')"
)
TITLE_SQL = "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')"


def _postgres(words: list[str], kind: str | None, limit: int, titles_only: bool) -> list[tuple[str, str]]:
    tsquery = " & ".join([*words[:-1], f"{words[-1]}:*"])
    document = TITLE_SQL if titles_only else DOCUMENT_SQL
    sql = (
        f"SELECT uuid, ts_headline('english', content, q, 'StartSel=[, StopSel=], MaxWords=12, MinWords=4') "
        f"FROM tracker_entity, to_tsquery('english', %s) q WHERE ({document}) @@ q"
        + (" AND kind = %s" if kind else "")
        + f" ORDER BY ts_rank({document}, q) DESC, created_at LIMIT %s"
    )
    params = [tsquery, *([kind] if kind else []), limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(uuid, snippet if snippet and "[" in snippet else "") for uuid, snippet in cursor.fetchall()]


def _anywhere(words: list[str], kind: str | None, limit: int, titles_only: bool) -> list[tuple[str, str]]:
    qs = Entity.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    for word in words:
        qs = (
            qs.filter(title__icontains=word)
            if titles_only
            else (qs.filter(title__icontains=word) | qs.filter(content__icontains=word))
        )
    return [(uuid, "") for uuid in qs.order_by("created_at").values_list("uuid", flat=True)[:limit]]
