import pytest

from tests.corpus import corpus_files, require_corpus
from tracker.ids import (
    HASH_ID_RE,
    LEGACY_ID_RE,
    IdGenerationError,
    generate_id,
    hash_id_length,
    hash_uuid_to_base36,
    is_valid_id,
    kind_of_id,
)
from tracker.jsonl import read_jsonl

# Two specs of sudocode-ai/sudocode (created 2025-11-24 and 2025-11-26, present since history snapshot
# 967ebd71) carry hash ids that no length of the hash of their uuid gives (checked with and without hyphens
# and upper-cased). Not a collision either: a collision gives a longer id. Their uuid was most likely
# replaced after the id was made (e.g. the spec re-imported from its markdown file, which carries the id
# but not the uuid). They are listed so that any other mismatch fails this test.
IDS_NOT_FROM_THEIR_UUID = {
    ("s-8lkf", "4d9abfb8-512c-424c-842e-1af466119d61"),
    ("s-3v8s", "cc8a8ba0-1d0f-49a7-a993-b333b02713d0"),
}


@pytest.mark.corpus
def test_it_derives_every_corpus_hash_id_from_its_uuid():
    require_corpus()
    checked, mismatches = 0, set()
    for path, kind in corpus_files():
        for record in read_jsonl(path, kind).records:
            entity_id, uuid = record["id"], record["uuid"]
            if not HASH_ID_RE.match(entity_id):
                continue
            length = len(entity_id) - 2
            expected = generate_id(kind, uuid, entity_count=0, taken=()) if length == 4 else None
            if hash_uuid_to_base36(uuid, length) == entity_id[2:] and expected in (entity_id, None):
                checked += 1
            else:
                mismatches.add((entity_id, uuid))
    assert mismatches == IDS_NOT_FROM_THEIR_UUID
    assert checked > 2000


def test_it_hashes_known_uuids_from_the_corpus():
    # alexngai/minimem and sudocode-ai/sudocode (i-1002 looks sequential but is a hash).
    assert generate_id("issue", "d7e8cb3b-73c5-4ac8-b0c3-75d30b3af857", entity_count=0, taken=()) == "i-7edu"
    assert generate_id("issue", "797aa19b-d7c1-45fe-a566-1e5ba6af53a2", entity_count=600, taken=()) == "i-1002"
    assert generate_id("spec", "4d9abfb8-512c-424c-842e-1af466119d61", entity_count=10, taken=()) == "s-4nyv"
    assert hash_uuid_to_base36("4d9abfb8-512c-424c-842e-1af466119d61", 8) == "2wv13uyz"


@pytest.mark.parametrize(
    ("count", "length"),
    [
        (0, 4),
        (979, 4),
        (980, 5),
        (5899, 5),
        (5900, 6),
        (34999, 6),
        (35000, 7),
        (211999, 7),
        (212000, 8),
        (10**9, 8),
    ],
)
def test_hash_id_length_grows_with_the_entity_count(count, length):
    assert hash_id_length(count) == length


def test_it_uses_a_longer_hash_on_collision():
    uuid = "4d9abfb8-512c-424c-842e-1af466119d61"
    assert generate_id("spec", uuid, entity_count=0, taken={"s-4nyv"}) == "s-22nhw"
    assert generate_id("spec", uuid, entity_count=1000, taken=()) == "s-22nhw"
    assert generate_id("issue", uuid, entity_count=300_000, taken=()) == "i-2wv13uyz"


def test_it_gives_up_when_every_length_is_taken():
    uuid = "4d9abfb8-512c-424c-842e-1af466119d61"
    taken = {f"i-{hash_uuid_to_base36(uuid, n)}" for n in range(4, 9)}
    with pytest.raises(IdGenerationError, match="no free hash id"):
        generate_id("issue", uuid, entity_count=0, taken=taken)
    with pytest.raises(ValueError):
        generate_id("epic", uuid, entity_count=0, taken=())


def test_hashes_are_padded_to_the_requested_length():
    for n in range(4, 9):
        for i in range(200):
            assert len(hash_uuid_to_base36(f"00000000-0000-4000-8000-{i:012d}", n)) == n


@pytest.mark.parametrize(
    "value",
    [
        "i-x7k9",
        "s-2kt2",
        "i-1002",
        "i-x7k9p1a4",
        "ISSUE-001",
        "SPEC-018",
        "issue-050",
        "spec-1",
        "SPEC-018.1",
        "i-1002.1",
        "s-2s2l.1",
        "i-abcd-conflict-0a1b2c3d",
    ],
)
def test_valid_ids(value):
    assert is_valid_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "i-abc",
        "i-abcdefghi",
        "i-ABCD",
        "x-abcd",
        "i-????",
        "entity-id",
        "ISS-001",
        "ISSUE-",
        "ISSUE-01a",
        "i-abcd\n",
        "i-serializer-injection",
        "Issue-001",
        42,
    ],
)
def test_invalid_ids(value):
    assert not is_valid_id(value)


def test_the_public_patterns():
    assert HASH_ID_RE.match("i-x7k9") and not HASH_ID_RE.match("i-x7k9.1") and not HASH_ID_RE.match("i-x7k9\n")
    assert LEGACY_ID_RE.match("ISSUE-001") and LEGACY_ID_RE.match("SPEC-018.1") and LEGACY_ID_RE.match("issue-050")
    assert not LEGACY_ID_RE.match("i-x7k9")


def test_kind_of_id():
    assert [kind_of_id(v) for v in ("i-x7k9", "ISSUE-1", "issue-2.1", "s-x7k9", "SPEC-018.1", "nope")] == [
        "issue",
        "issue",
        "issue",
        "spec",
        "spec",
        None,
    ]
