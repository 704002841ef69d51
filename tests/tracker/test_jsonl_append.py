"""A create appends (tracker.jsonl._merge_tail): the file it writes is byte for byte the one a full render would
write, also when new records sort before the last lines (created in the same second, with a smaller id)."""

from __future__ import annotations

import hashlib
import random

import pytest

from tracker import jsonl


def _issue(n: int, created_at: str, record_id: str) -> dict:
    return jsonl.with_sudocode_key_order(
        {
            "id": record_id,
            "uuid": f"00000000-0000-4000-8000-{n:012d}",
            "title": f"Issue {n}",
            "content": "",
            "status": "open",
            "priority": 2,
            "created_at": created_at,
            "updated_at": created_at,
            "relationships": [],
            "tags": [],
        },
        "issue",
    )


def _full_render(snapshot: jsonl.JsonlSnapshot, upserts: dict) -> bytes:
    jsonl._sorted.clear()  # nothing known to be sorted: the whole file is rendered
    return jsonl.render_lines(snapshot, upserts=upserts)


@pytest.mark.parametrize("seed", range(20))
def test_an_appended_create_writes_what_a_full_render_writes(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "issues.jsonl"
    seconds = ["2025-11-06 12:00:00", "2025-11-06 12:00:01", "2025-11-06 12:00:02"]
    records = {}
    for n in range(30):
        record = _issue(n, seconds[min(n // 12, 2)], f"i-{rng.randrange(36**4):04x}")
        records[record["uuid"]] = record
    path.write_bytes(jsonl.render_lines(jsonl.read_jsonl(path, "issue"), upserts=records))  # sorted, remembered
    for round_ in range(5):
        snapshot = jsonl.read_jsonl(path, "issue")
        new = {}
        for n in range(rng.randint(1, 3)):
            record = _issue(100 + round_ * 10 + n, seconds[2], f"i-{rng.randrange(36**4):04x}")
            new[record["uuid"]] = record
        appended = jsonl.render_lines(snapshot, upserts=new)
        assert jsonl._known[(str(path), "issue")].data == appended, "not appended"
        assert appended == _full_render(snapshot, new)
        path.write_bytes(appended)
        reread = jsonl.read_jsonl(path, "issue")  # what the append remembered
        jsonl._known.clear()
        parsed = jsonl.read_jsonl(path, "issue")  # parsed again from the bytes
        assert reread.records == parsed.records and reread.lines == parsed.lines
        assert reread.content_sha256 == parsed.content_sha256


def test_a_file_changed_by_someone_else_is_read_again(tmp_path):
    path = tmp_path / "issues.jsonl"
    record = _issue(1, "2025-11-06 12:00:00", "i-0001")
    path.write_bytes(jsonl.render_lines(jsonl.read_jsonl(path, "issue"), upserts={record["uuid"]: record}))
    first = jsonl.read_jsonl(path, "issue")
    changed = {**record, "title": "Edited by hand"}
    path.write_bytes((jsonl.dump_record(changed) + "\n").encode())
    assert jsonl.read_jsonl(path, "issue").records[0]["title"] == "Edited by hand"
    assert first.records[0]["title"] == "Issue 1"


@pytest.mark.slow
def test_creates_from_several_processes_at_once_lose_and_duplicate_nothing(git_repo):
    """Each process appends to bytes it read under the file lock; one that finds other bytes parses them again."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import run_cli

    assert run_cli("--repo", str(git_repo), "init").code == 0
    assert run_cli("--repo", str(git_repo), "issue", "create", "First").code == 0
    titles = [f"Parallel {n}" for n in range(8)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda t: run_cli("--repo", str(git_repo), "issue", "create", t), titles))
    assert [r.code for r in results] == [0] * 8, [r.err for r in results]
    lines = (git_repo / ".sudocode" / "issues.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(r["title"] for r in records) == sorted(["First", *titles])
    assert len({r["uuid"] for r in records}) == len(records) == 9
    assert [jsonl.sort_key(r) for r in records] == sorted(jsonl.sort_key(r) for r in records)
    listed = json.loads(run_cli("--repo", str(git_repo), "issue", "list", "--format", "json").out)
    assert sorted(i["title"] for i in listed) == sorted(["First", *titles])


def test_a_file_another_process_appended_to_is_read_as_a_fresh_parse_would_read_it(tmp_path):
    path = tmp_path / "issues.jsonl"
    records = {r["uuid"]: r for r in (_issue(n, "2025-11-06 12:00:00", f"i-{n:04d}") for n in range(5))}
    path.write_bytes(jsonl.render_lines(jsonl.read_jsonl(path, "issue"), upserts=records))
    jsonl.read_jsonl(path, "issue")  # known to this process
    added = [_issue(n, "2025-11-06 12:00:01", f"i-{n:04d}") for n in range(5, 8)]
    with path.open("ab") as fh:  # what another process's create leaves: the same bytes plus whole lines
        fh.write("".join(jsonl.dump_record(r) + "\n" for r in added).encode())
    appended = jsonl.read_jsonl(path, "issue")
    assert jsonl._known[(str(path), "issue")].data == path.read_bytes(), "not read as an append"
    jsonl._known.clear()
    fresh = jsonl.read_jsonl(path, "issue")
    assert appended.records == fresh.records and appended.lines == fresh.lines
    assert appended.content_sha256 == fresh.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert appended.line_numbers == fresh.line_numbers == tuple(range(1, 9))
    # A create after it appends again, with the right hash.
    new = _issue(9, "2025-11-06 12:00:02", "i-0009")
    content, sha256 = jsonl.render(appended, upserts={new["uuid"]: new})
    assert sha256 == hashlib.sha256(content).hexdigest() and content.startswith(path.read_bytes())


@pytest.mark.parametrize(
    ("tail", "problem"),
    [
        ('{"id": "i-0009", "uuid": broken\n', "malformed JSON"),
        (None, 'duplicate uuid "00000000-0000-4000-8000-000000000001"'),
    ],
)
def test_an_appended_line_that_is_wrong_is_named_with_its_line_number(tmp_path, tail, problem):
    path = tmp_path / "issues.jsonl"
    records = {r["uuid"]: r for r in (_issue(n, "2025-11-06 12:00:00", f"i-{n:04d}") for n in range(3))}
    path.write_bytes(jsonl.render_lines(jsonl.read_jsonl(path, "issue"), upserts=records))
    jsonl.read_jsonl(path, "issue")
    with path.open("ab") as fh:
        fh.write((tail or jsonl.dump_record(_issue(1, "2025-11-06 12:00:01", "i-0042")) + "\n").encode())
    with pytest.raises(jsonl.JsonlFormatError) as caught:
        jsonl.read_jsonl(path, "issue")
    assert caught.value.line == 4 and problem in caught.value.reason


def test_a_create_another_process_merged_into_the_last_second_is_read_from_that_second_on(tmp_path, monkeypatch):
    path = tmp_path / "issues.jsonl"
    old = [_issue(n, "2025-11-06 12:00:00", f"i-{n:04d}") for n in range(4)]
    last_second = [_issue(n, "2025-11-06 12:00:01", f"i-{n:04d}") for n in (10, 30)]
    records = {r["uuid"]: r for r in old + last_second}
    path.write_bytes(jsonl.render_lines(jsonl.read_jsonl(path, "issue"), upserts=records))
    jsonl.read_jsonl(path, "issue")
    # Another process created i-0020 in that second: it sorts between i-0010 and i-0030.
    merged = old + [last_second[0], _issue(20, "2025-11-06 12:00:01", "i-0020"), last_second[1]]
    path.write_bytes("".join(jsonl.dump_record(r) + "\n" for r in merged).encode())

    def whole_file_read(*_args):
        raise AssertionError("read the whole file again")

    monkeypatch.setattr(jsonl, "_refuse_conflict_markers", whole_file_read)  # only a whole-file read calls it
    read = jsonl.read_jsonl(path, "issue")
    monkeypatch.undo()
    jsonl._known.clear()
    fresh = jsonl.read_jsonl(path, "issue")
    assert read.records == fresh.records and read.lines == fresh.lines
    assert read.content_sha256 == fresh.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [r["id"] for r in read.records][-3:] == ["i-0010", "i-0020", "i-0030"]


def test_once_this_process_wrote_a_file_sorted_its_next_creates_append(tmp_path):
    # A file from elsewhere is not known to be sorted: the first create renders it whole (and sorted); the ones
    # after it must append, although the file is read back as the old bytes plus new lines.
    path = tmp_path / "issues.jsonl"
    path.write_bytes(
        "".join(jsonl.dump_record(_issue(n, "2025-11-06 12:00:00", f"i-{n:04d}")) + "\n" for n in range(5)).encode()
    )
    for n in range(5, 8):
        snapshot = jsonl.read_jsonl(path, "issue")
        record = _issue(n, f"2025-11-06 12:00:0{n}", f"i-{n:04d}")
        if n > 5:
            assert jsonl._merge_tail(snapshot, {record["uuid"]: record}, (), "") is not None, "rendered whole"
        path.write_bytes(jsonl.render_lines(snapshot, upserts={record["uuid"]: record}))
