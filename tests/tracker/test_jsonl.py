import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.corpus import corpus_dir, corpus_files, require_corpus
from tracker.jsonl import (
    ISSUE_KEY_ORDER,
    SPEC_KEY_ORDER,
    JsonlFormatError,
    dump_record,
    iso_timestamp,
    new_issue_record,
    new_spec_record,
    parse_line,
    parse_timestamp,
    read_jsonl,
    render_lines,
    sort_key,
    sqlite_timestamp,
    with_sudocode_key_order,
    write_atomic,
)

UUID_A = "11111111-1111-4111-8111-111111111111"
UUID_B = "22222222-2222-4222-8222-222222222222"
UUID_C = "33333333-3333-4333-8333-333333333333"


def _issue(uuid: str = UUID_A, **overrides) -> dict:
    fields = dict(
        id="i-" + uuid[:4],
        uuid=uuid,
        title="A title",
        created_at="2025-10-24 09:53:37",
        updated_at="2025-10-24 09:53:37",
    )
    fields.update(overrides)
    return new_issue_record(**fields)


def _write(path: Path, *records_or_lines: dict | str) -> Path:
    text = "".join((r if isinstance(r, str) else dump_record(r)) + "\n" for r in records_or_lines)
    path.write_bytes(text.encode("utf-8"))
    return path


def _lines(content: bytes) -> list[str]:
    assert content.endswith(b"\n") or content == b""
    return content.decode("utf-8").split("\n")[:-1]


# --- the real corpus ---------------------------------------------------------------------------------


@pytest.mark.corpus
def test_it_round_trips_every_corpus_file_byte_for_byte():
    require_corpus()
    files = corpus_files()
    assert len(files) >= 30, files
    for path, kind in files:
        raw = path.read_bytes()
        snapshot = read_jsonl(path, kind)

        assert render_lines(snapshot) == raw, path
        assert snapshot.content_sha256 == hashlib.sha256(raw).hexdigest()
        assert snapshot.size == len(raw) and snapshot.exists
        assert len(snapshot.records) == raw.count(b"\n")
        for line, record in zip(snapshot.lines, snapshot.records, strict=True):
            # FORMAT.md §1: every line is its record re-serialised with JSON.stringify, key order kept.
            assert dump_record(record) == line, (path, record["id"])
            assert list(with_sudocode_key_order(record, kind)) == list(record), (path, record["id"])
        keys = [sort_key(record) for record in snapshot.records]
        assert keys == sorted(keys), path


@pytest.mark.corpus
def test_it_changes_only_the_upserted_line_in_every_corpus_file():
    require_corpus()
    for path, kind in corpus_files():
        snapshot = read_jsonl(path, kind)
        index = len(snapshot.records) // 2
        edited = dict(snapshot.records[index])
        edited["title"] += " (edited)"

        before = list(snapshot.lines)
        after = _lines(render_lines(snapshot, upserts={edited["uuid"]: edited}))

        assert len(after) == len(before), path
        changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
        assert changed == [index], path
        assert after[index] == dump_record(edited)


@pytest.mark.corpus
def test_it_drops_only_the_deleted_line_in_every_corpus_file():
    require_corpus()
    for path, kind in corpus_files():
        snapshot = read_jsonl(path, kind)
        gone = snapshot.records[0]["uuid"]

        after = _lines(render_lines(snapshot, deletes={gone}))

        assert after == list(snapshot.lines[1:]), path


@pytest.mark.corpus
def test_it_replays_sudocode_history_as_line_edits():
    """Each history step of sudocode-ai/sudocode, replayed as upserts and deletes, gives the next file."""
    root = require_corpus() / "sudocode-ai__sudocode"
    steps = sorted(
        (p for p in (root / "history").iterdir() if p.is_dir()),
        key=lambda p: datetime.fromisoformat(json.loads((p / "SOURCE.json").read_text())["commit_date"]),
    )
    assert len(steps) == 4
    for kind, name in (("issue", "issues.jsonl"), ("spec", "specs.jsonl")):
        files = [step / name for step in steps] + [root / name]
        for old_path, new_path in zip(files, files[1:], strict=False):
            old, new = read_jsonl(old_path, kind), read_jsonl(new_path, kind)
            old_lines, new_lines = old.by_uuid(), new.by_uuid()
            upserts = {u: rec for u, (line, rec) in new_lines.items() if old_lines.get(u, ("",))[0] != line}
            deletes = set(old_lines) - set(new_lines)

            assert render_lines(old, upserts=upserts, deletes=deletes) == new_path.read_bytes(), new_path


def test_corpus_helpers_find_the_configured_folder(tmp_path, monkeypatch):
    (tmp_path / "repo" / "history" / "abc").mkdir(parents=True)
    for rel in ("repo/issues.jsonl", "repo/specs.jsonl", "repo/history/abc/issues.jsonl"):
        (tmp_path / rel).write_bytes(b"")
    monkeypatch.setenv("SUDOCODE_CORPUS", str(tmp_path))

    assert corpus_dir() == tmp_path
    assert require_corpus() == tmp_path
    assert sorted((p.relative_to(tmp_path).as_posix(), k) for p, k in corpus_files()) == [
        ("repo/history/abc/issues.jsonl", "issue"),
        ("repo/issues.jsonl", "issue"),
        ("repo/specs.jsonl", "spec"),
    ]


def test_require_corpus_skips_or_fails_when_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("SUDOCODE_CORPUS", str(tmp_path / "nowhere"))
    monkeypatch.delenv("FEDERATION_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_corpus()
    monkeypatch.setenv("FEDERATION_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="corpus missing"):
        require_corpus()


# --- FORMAT.md §10 oddities --------------------------------------------------------------------------


def test_it_orders_lines_by_raw_created_at_not_by_time(tmp_path):
    # kuznechik: "2026-01-21 22:28:29" sorts before "2026-01-21T22:24:44.494Z" (space < "T") though later.
    iso = _issue(UUID_A, id="i-aaaa", created_at="2026-01-21T22:24:44.494Z")
    sqlite = _issue(UUID_B, id="i-bbbb", created_at="2026-01-21 22:28:29")
    path = _write(tmp_path / "issues.jsonl", sqlite, iso)
    snapshot = read_jsonl(path, "issue")

    assert render_lines(snapshot) == path.read_bytes()
    newer = _issue(UUID_C, id="i-cccc", created_at="2026-01-21 23:59:59")
    assert _lines(render_lines(snapshot, upserts={UUID_C: newer})) == [
        dump_record(sqlite),
        dump_record(newer),
        dump_record(iso),
    ]


def test_it_puts_records_without_created_at_last_by_id():
    records = [
        {"id": "i-zzzz", "created_at": "2025-01-01 00:00:00"},
        {"id": "i-bbbb"},
        {"id": "i-aaaa", "created_at": None},
        {"id": "ISSUE-001", "created_at": "2025-01-01 00:00:00"},
    ]
    assert [r["id"] for r in sorted(records, key=sort_key)] == ["ISSUE-001", "i-zzzz", "i-aaaa", "i-bbbb"]


def test_sort_key_compares_like_javascript_strings():
    # UTF-16 code units: an astral character (surrogate 0xD83D) sorts before U+FF01, unlike code points.
    assert sort_key({"id": "i-\U0001f680", "created_at": "x"}) < sort_key({"id": "i-\uff01", "created_at": "x"})


def test_it_keeps_integer_archived_boolean_dismissed_and_explicit_nulls(tmp_path):
    line = (
        '{"id":"i-aaaa","uuid":"' + UUID_A + '","title":"t","content":"","status":"closed","priority":1,'
        '"assignee":null,"archived":1,"archived_at":"2026-01-21T23:06:00.050Z",'
        '"created_at":"2025-10-24 09:53:37","updated_at":"2025-10-24 09:53:37","closed_at":null,'
        '"parent_id":"i-bbbb","relationships":[],"tags":[],'
        '"feedback":[{"id":"f","from_id":"i-aaaa","to_id":"s-cccc","feedback_type":"comment","content":"c",'
        '"agent":"user","anchor":null,"dismissed":false,"created_at":"2025-10-24 09:53:37",'
        '"updated_at":"2025-10-24 09:53:37"}]}'
    )
    path = _write(tmp_path / "issues.jsonl", line)
    record = read_jsonl(path, "issue").records[0]

    assert record["archived"] == 1 and type(record["archived"]) is int
    assert record["feedback"][0]["dismissed"] is False
    assert "parent_uuid" not in record  # oldest history snapshot: key absent, must stay absent
    assert record["assignee"] is None and record["closed_at"] is None
    assert dump_record(record) == line
    edited = dict(record, title="t2")
    assert dump_record(edited) == line.replace('"title":"t"', '"title":"t2"')


def test_it_writes_emoji_korean_and_trailing_whitespace_raw(tmp_path):
    content = "\n한국어 내용 — « guillemets » → 🚀\u200b\nline with trailing spaces   \n\t"
    record = _issue(content=content, title='Quote " and back\\slash </tag>')
    line = dump_record(record)
    assert "한국어" in line and "🚀" in line and "\u200b" in line and "</tag>" in line
    assert '\\"' in line and "\\\\slash" in line and "spaces   \\n\\t" in line

    path = _write(tmp_path / "issues.jsonl", record)
    assert read_jsonl(path, "issue").records[0]["content"] == content
    assert "🚀".encode() in path.read_bytes()


def test_it_keeps_literal_backslash_n_sequences():
    record = _issue(content="code: printf(\\n) and a real newline\n")
    assert "printf(\\\\n) and a real newline\\n" in dump_record(record)


def test_it_keeps_unknown_keys_and_their_order(tmp_path):
    line = (
        '{"zeta":1,"id":"i-aaaa","uuid":"'
        + UUID_A
        + '","title":"t","status":"open","priority":0,"extra":{"b":1,"a":[]}}'
    )
    path = _write(tmp_path / "issues.jsonl", line)
    snapshot = read_jsonl(path, "issue")

    assert list(snapshot.records[0]) == ["zeta", "id", "uuid", "title", "status", "priority", "extra"]
    assert render_lines(snapshot, upserts={UUID_A: snapshot.records[0]}) == path.read_bytes()


def test_dump_record_matches_json_stringify_escaping():
    assert dump_record({"s": "\x00\x01\x1f\b\f\n\r\t\x7f/\u2028\u2029é"}) == (
        '{"s":"\\u0000\\u0001\\u001f\\b\\f\\n\\r\\t\x7f/\u2028\u2029é"}'
    )
    # A lone surrogate (from a "\ud83d" escape) is written back as a lowercase escape, as ES2019 does.
    lone = json.loads('"\\ud83d"')
    assert dump_record({"s": lone}) == '{"s":"\\ud83d"}'
    assert dump_record({"s": json.loads('"\\ud83d\\ude80"')}) == '{"s":"🚀"}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e21, "1e+21"),
        (1.5e17, "150000000000000000"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-10, "-2.5e-10"),
        (2**53 + 1, "9007199254740992"),
        (42, "42"),
        (True, "true"),
        (None, "null"),
    ],
)
def test_dump_record_writes_numbers_like_javascript(value, expected):
    assert dump_record({"n": value}) == '{"n":' + expected + "}"


def test_dump_record_refuses_nan_and_non_json_values():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            dump_record({"n": bad})
    with pytest.raises(TypeError):
        dump_record({"n": {1, 2}})
    with pytest.raises(TypeError):
        dump_record({1: "x"})


def test_dump_record_agrees_with_node_when_available():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    values = {
        "numbers": [0.1, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 123456789.125, -0.0, 2**60],
        "text": '\x00\x1f"\\/\u2028é한🚀' + json.loads('"\\udc00"'),
    }
    source = json.dumps(values)
    result = subprocess.run(
        [
            node,
            "-e",
            "let d='';process.stdin.on('data',c=>d+=c)"
            ".on('end',()=>process.stdout.write(JSON.stringify(JSON.parse(d))))",
        ],
        input=source.encode(),
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert dump_record(json.loads(source)) == result.stdout.decode("utf-8")


# --- refusing what is not sudocode -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id":"ISS-001","title":"x","priority":"high"}', 'missing "uuid"'),
        (
            '{"id":"i-aaaa","uuid":"u","title":"x","status":"open","priority":"high"}',
            '"priority" must be an integer',
        ),
        (
            '{"id":"i-aaaa","uuid":"u","title":"x","status":"open","priority":true}',
            '"priority" must be an integer',
        ),
        (
            '{"id":"i-aaaa","uuid":"u","title":"x","status":"open","priority":9}',
            '"priority" must be an integer 0-4',
        ),
        ('{"id":"i-aaaa","uuid":"u","title":"x","status":"draft","priority":1}', '"status" must be one of'),
        (
            '{"id":"i-aaaa","uuid":"u","title":"x","status":"open","priority":1,"tags":"a,b"}',
            '"tags" must be an array',
        ),
        (
            '{"id":"i-aaaa","uuid":"u","title":"x","status":"open","priority":1,"relationships":{}}',
            '"relationships" must',
        ),
        ('{"id":1,"uuid":"u","title":"x","status":"open","priority":1}', '"id" must be a string'),
        (
            '{"id":"i-aaaa","uuid":"u","title":"x","status":"open","priority":1,"archived":true,"archived":0}',
            "duplicate key",
        ),
        ('{"id":"i-aaaa","uuid":"u","title":"x","status":"open","priority":NaN}', "malformed JSON"),
        ('{"id":"i-aaaa","uuid":"u","title":"x",', "malformed JSON"),
        ("<<<<<<< HEAD", "unresolved git merge conflict at line 2"),
        ('["i-aaaa","u"]', "expected a JSON object per line, got an array"),
        ('"just a string"', "got a string"),
    ],
)
def test_it_refuses_lines_that_are_not_sudocode(tmp_path, line, reason):
    good = dump_record(_issue())
    path = _write(tmp_path / "issues.jsonl", good, line)
    before = path.read_bytes()

    with pytest.raises(JsonlFormatError) as caught:
        read_jsonl(path, "issue")

    assert caught.value.path == str(path)
    assert caught.value.line == 2
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}:2: ")
    assert path.read_bytes() == before


def test_a_spec_needs_a_file_path():
    line = '{"id":"s-aaaa","uuid":"u","title":"x","priority":1}'
    with pytest.raises(JsonlFormatError, match=r'^specs\.jsonl:7: not a sudocode spec record: missing "file_path"$'):
        parse_line(line, path="specs.jsonl", line=7, kind="spec")


def test_it_reports_duplicate_uuids_and_bad_utf8_with_line_numbers(tmp_path):
    record = _issue()
    path = _write(tmp_path / "issues.jsonl", record, dict(record, id="i-other"))
    with pytest.raises(JsonlFormatError, match=r":2: duplicate uuid .* \(first seen on line 1\)"):
        read_jsonl(path, "issue")

    path.write_bytes(dump_record(record).encode() + b"\n" + b'{"title":"\xff"}\n')
    with pytest.raises(JsonlFormatError, match=r":2: not UTF-8"):
        read_jsonl(path, "issue")


def test_error_message_without_a_line():
    error = JsonlFormatError("x/issues.jsonl", None, "broken")
    assert str(error) == "x/issues.jsonl: broken"
    assert isinstance(error, ValueError)


def test_it_skips_blank_lines_and_counts_them_in_line_numbers(tmp_path):
    path = tmp_path / "issues.jsonl"
    path.write_bytes(b"\n  \t\n" + dump_record(_issue()).encode() + b"\n\n" + b"[1]\n")
    with pytest.raises(JsonlFormatError) as caught:
        read_jsonl(path, "issue")
    assert caught.value.line == 5

    path.write_bytes(b"\n  \n" + dump_record(_issue()).encode() + b"\n\n")
    snapshot = read_jsonl(path, "issue")
    assert snapshot.lines == (dump_record(_issue()),)
    assert render_lines(snapshot) == dump_record(_issue()).encode() + b"\n"


def test_a_missing_file_is_an_empty_snapshot(tmp_path):
    snapshot = read_jsonl(tmp_path / "nope.jsonl", "spec")
    assert not snapshot.exists
    assert snapshot.records == () and snapshot.lines == ()
    assert snapshot.content_sha256 == hashlib.sha256(b"").hexdigest()
    assert (snapshot.size, snapshot.mtime_ns) == (0, 0)
    assert render_lines(snapshot) == b""
    spec = new_spec_record(
        id="s-abcd", uuid=UUID_A, title="S", file_path="specs/s-abcd.md", created_at="c", updated_at="u"
    )
    assert render_lines(snapshot, upserts={UUID_A: spec}) == (dump_record(spec) + "\n").encode()


def test_read_records_stat_and_by_uuid(tmp_path):
    a, b = _issue(UUID_A), _issue(UUID_B, created_at="2025-10-25 00:00:00")
    path = _write(tmp_path / "issues.jsonl", a, b)
    snapshot = read_jsonl(path, "issue")
    stat = os.stat(path)

    assert (snapshot.size, snapshot.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert snapshot.by_uuid() == {UUID_A: (dump_record(a), a), UUID_B: (dump_record(b), b)}
    with pytest.raises(ValueError):
        read_jsonl(path, "epic")


# --- render ------------------------------------------------------------------------------------------


def test_render_moves_an_upsert_whose_created_at_changed_and_keeps_the_rest(tmp_path):
    a = _issue(UUID_A, id="i-aaaa", created_at="2025-01-01 00:00:00")
    b = _issue(UUID_B, id="i-bbbb", created_at="2025-01-02 00:00:00")
    c = _issue(UUID_C, id="i-cccc", created_at="2025-01-03 00:00:00")
    snapshot = read_jsonl(_write(tmp_path / "issues.jsonl", a, b, c), "issue")
    moved = dict(a, created_at="2025-01-04 00:00:00")

    assert _lines(render_lines(snapshot, upserts={UUID_A: moved})) == [
        dump_record(b),
        dump_record(c),
        dump_record(moved),
    ]


def test_render_keeps_untouched_raw_lines_even_when_not_canonical(tmp_path):
    odd = ' { "id" : "i-aaaa", "uuid": "' + UUID_A + '", "title": "t", "status": "open", "priority": 1,'
    odd += ' "created_at" : "2025-01-01 00:00:00" } '
    b = _issue(UUID_B, id="i-bbbb")
    path = _write(tmp_path / "issues.jsonl", odd, b)
    snapshot = read_jsonl(path, "issue")
    b2 = dict(b, title="changed")

    assert _lines(render_lines(snapshot, upserts={UUID_B: b2})) == [odd, dump_record(b2)]


def test_render_refuses_bad_upserts(tmp_path):
    snapshot = read_jsonl(_write(tmp_path / "issues.jsonl", _issue()), "issue")
    with pytest.raises(ValueError, match="holds a record with uuid"):
        render_lines(snapshot, upserts={UUID_B: _issue(UUID_A)})
    with pytest.raises(ValueError, match="both upserted and deleted"):
        render_lines(snapshot, upserts={UUID_A: _issue()}, deletes=[UUID_A])
    with pytest.raises(JsonlFormatError, match='"priority" must be an integer'):
        render_lines(snapshot, upserts={UUID_A: dict(_issue(), priority="high")})


def test_with_sudocode_key_order_moves_known_keys_and_keeps_unknown_ones_attached():
    record = _issue()
    record["x-custom"] = 1
    record["external_links"] = [{"provider": "github"}]
    reordered = with_sudocode_key_order(record, "issue")

    keys = list(reordered)
    assert keys.index("external_links") == keys.index("parent_uuid") + 1
    assert keys[-3:] == ["relationships", "tags", "x-custom"]
    assert with_sudocode_key_order(reordered, "issue") == reordered


# --- building records --------------------------------------------------------------------------------


def test_new_records_use_sudocode_key_order_and_defaults():
    issue = _issue(
        relationships=[
            {"from": "i-1111", "from_type": "issue", "to": "s-aaaa", "to_type": "spec", "type": "implements"}
        ],
        tags=("b", "a"),
    )
    assert list(issue) == [k for k in ISSUE_KEY_ORDER if k not in ("external_links", "feedback")]
    assert (issue["status"], issue["priority"], issue["archived"], issue["archived_at"]) == (
        "open",
        2,
        0,
        None,
    )
    assert issue["closed_at"] is None and issue["assignee"] is None and issue["tags"] == ["b", "a"]

    spec = new_spec_record(
        id="s-abcd", uuid=UUID_B, title="S", file_path="specs/s-abcd.md", created_at="c", updated_at="u"
    )
    assert list(spec) == [k for k in SPEC_KEY_ORDER if k != "external_links"]
    assert spec["content"] == "" and spec["relationships"] == [] and spec["tags"] == []

    with pytest.raises(ValueError, match="status"):
        _issue(status="done")


# --- timestamps --------------------------------------------------------------------------------------


def test_timestamps_are_written_in_both_sudocode_formats():
    moment = datetime(2026, 1, 21, 23, 6, 0, 50_999, tzinfo=UTC)
    assert sqlite_timestamp(moment) == "2026-01-21 23:06:00"
    assert iso_timestamp(moment) == "2026-01-21T23:06:00.050Z"
    paris = datetime(2026, 1, 22, 0, 6, 0, tzinfo=timezone(timedelta(hours=1)))
    assert sqlite_timestamp(paris) == "2026-01-21 23:06:00"
    assert sqlite_timestamp(datetime(2026, 1, 21, 23, 6)) == "2026-01-21 23:06:00"  # naive is UTC
    assert parse_timestamp(iso_timestamp()) is not None
    assert parse_timestamp(sqlite_timestamp()).tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-24 09:53:37", datetime(2025, 10, 24, 9, 53, 37, tzinfo=UTC)),
        ("2026-01-21T23:06:00.050Z", datetime(2026, 1, 21, 23, 6, 0, 50_000, tzinfo=UTC)),
        ("2026-04-13T11:53:36.929932Z", datetime(2026, 4, 13, 11, 53, 36, 929_932, tzinfo=UTC)),
        ("2026-02-26", datetime(2026, 2, 26, tzinfo=UTC)),
        ("2026-01-21T23:06:00", datetime(2026, 1, 21, 23, 6, tzinfo=UTC)),
        ("2026-01-22T01:06:00+02:00", datetime(2026, 1, 21, 23, 6, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("yesterday", None),
        ("2026-13-01 00:00:00", None),
        ("2026-01-21 23:06:00\nx", None),
    ],
)
def test_parse_timestamp(text, expected):
    assert parse_timestamp(text) == expected


def test_mixed_timestamp_formats_compare_by_time_after_parsing():
    # Same record in kuznechik: lexicographic and chronological orders disagree.
    assert "2026-01-21 22:28:29" < "2026-01-21T22:24:44.494Z"
    assert parse_timestamp("2026-01-21 22:28:29") > parse_timestamp("2026-01-21T22:24:44.494Z")


# --- atomic writes -----------------------------------------------------------------------------------


def test_write_atomic_replaces_content_and_keeps_the_mode(tmp_path):
    path = tmp_path / "issues.jsonl"
    path.write_bytes(b"old\n")
    path.chmod(0o640)

    write_atomic(path, b"new\n")

    assert path.read_bytes() == b"new\n"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["issues.jsonl"]


def test_write_atomic_creates_a_new_file(tmp_path):
    write_atomic(tmp_path / "specs.jsonl", b"x\n")
    assert (tmp_path / "specs.jsonl").read_bytes() == b"x\n"
    assert [p.name for p in tmp_path.iterdir()] == ["specs.jsonl"]


def test_write_atomic_leaves_no_temp_file_and_the_old_content_on_error(tmp_path, monkeypatch):
    path = tmp_path / "issues.jsonl"
    path.write_bytes(b"old\n")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(path, b"new\n")

    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["issues.jsonl"]


@pytest.mark.corpus
def test_a_corpus_copy_can_be_edited_and_read_back(tmp_path):
    """End to end on a copy: read, upsert one record, write atomically, read again."""
    source = corpus_dir() / "alexngai__minimem" / "issues.jsonl"
    if not source.is_file():
        require_corpus()
        pytest.skip(f"{source} not in this corpus")
    path = tmp_path / "issues.jsonl"
    shutil.copyfile(source, path)
    snapshot = read_jsonl(path, "issue")
    record = dict(snapshot.records[-1], status="closed", updated_at=iso_timestamp())

    write_atomic(path, render_lines(snapshot, upserts={record["uuid"]: record}))

    again = read_jsonl(path, "issue")
    assert again.records[-1] == record
    assert again.lines[:-1] == snapshot.lines[:-1]
