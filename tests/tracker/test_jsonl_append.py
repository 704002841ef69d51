"""A create appends (tracker.jsonl._merge_tail): the file it writes is byte for byte the one a full render would
write, also when new records sort before the last lines (created in the same second, with a smaller id)."""

from __future__ import annotations

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
