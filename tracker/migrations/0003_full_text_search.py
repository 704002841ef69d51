"""Full-text search over issues and specs (issue 13, tracker.search): on SQLite an FTS5 index kept by triggers
(external content: the entity rows themselves, by rowid), on PostgreSQL a GIN index over the same weighted
tsvector expression tracker.search queries. Other databases search without an index."""

from django.db import migrations

SQLITE_UP = [
    "CREATE VIRTUAL TABLE tracker_entity_fts USING fts5("
    "title, content, content='tracker_entity', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER tracker_entity_fts_ai AFTER INSERT ON tracker_entity BEGIN "
    "INSERT INTO tracker_entity_fts(rowid, title, content) VALUES (new.rowid, new.title, new.content); END",
    "CREATE TRIGGER tracker_entity_fts_ad AFTER DELETE ON tracker_entity BEGIN "
    "INSERT INTO tracker_entity_fts(tracker_entity_fts, rowid, title, content) "
    "VALUES ('delete', old.rowid, old.title, old.content); END",
    "CREATE TRIGGER tracker_entity_fts_au AFTER UPDATE OF title, content ON tracker_entity BEGIN "
    "INSERT INTO tracker_entity_fts(tracker_entity_fts, rowid, title, content) "
    "VALUES ('delete', old.rowid, old.title, old.content); "
    "INSERT INTO tracker_entity_fts(rowid, title, content) VALUES (new.rowid, new.title, new.content); END",
    "INSERT INTO tracker_entity_fts(tracker_entity_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS tracker_entity_fts_ai",
    "DROP TRIGGER IF EXISTS tracker_entity_fts_ad",
    "DROP TRIGGER IF EXISTS tracker_entity_fts_au",
    "DROP TABLE IF EXISTS tracker_entity_fts",
]
# The expression tracker.search.DOCUMENT_SQL builds; the index serves a query only when they are identical.
POSTGRES_UP = [
    "CREATE INDEX tracker_entity_search ON tracker_entity USING GIN (("
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(content, '')), 'B')))"
]
POSTGRES_DOWN = ["DROP INDEX IF EXISTS tracker_entity_search"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("tracker", "0002_pending_commit")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_UP, "postgresql": POSTGRES_UP}),
            _run({"sqlite": SQLITE_DOWN, "postgresql": POSTGRES_DOWN}),
        )
    ]
