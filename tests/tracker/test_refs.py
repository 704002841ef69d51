import re

import pytest

from tests.corpus import corpus_files, require_corpus
from tracker.jsonl import read_jsonl
from tracker.refs import RELATIONSHIP_TYPES, Ref, normalize_rel_type, parse_refs, split_canonical_ref


def _one(text: str) -> Ref:
    refs = parse_refs(text)
    assert len(refs) == 1, refs
    return refs[0]


@pytest.mark.parametrize(
    ("text", "target", "display", "rel_type", "mention"),
    [
        ("[[i-x7k9]]", "i-x7k9", None, None, False),
        ("[[s-x7k9|Display text]]", "s-x7k9", "Display text", None, False),
        ("[[@issue-001]]", "issue-001", None, None, True),
        ("[[issue-050]]", "issue-050", None, None, False),
        ("[[ISSUE-028]]", "ISSUE-028", None, None, False),
        ("[[SPEC-018.1]]", "SPEC-018.1", None, None, False),
        ("[[i-x7k9p1a4]]", "i-x7k9p1a4", None, None, False),
        ("[[s-9gls]]{ implements }", "s-9gls", None, "implements", False),
        ("[[s-9gls]]{implements}", "s-9gls", None, "implements", False),
        ("[[ISSUE-121]]{ depends-on }", "ISSUE-121", None, "depends-on", False),
        ("[[i-abcd]]{ type: blocks }", "i-abcd", None, "blocks", False),
        ("[[s-abcd|Auth flow]]{ implements }", "s-abcd", "Auth flow", "implements", False),
        ("[[@i-abcd| spaced ]]{ discovered-from }", "i-abcd", "spaced", "discovered-from", True),
    ],
)
def test_it_parses_local_refs(text, target, display, rel_type, mention):
    ref = _one(f"see {text} here")
    assert (ref.target_id, ref.repo, ref.display, ref.rel_type, ref.mention) == (
        target,
        None,
        display,
        rel_type,
        mention,
    )
    assert (ref.start, ref.end) == (4, 4 + len(text))
    assert not ref.is_remote
    assert ref.canonical_ref == target


@pytest.mark.parametrize(
    ("text", "repo", "target", "canonical", "display", "rel_type"),
    [
        ("[[org/repo#issue-123]]", "org/repo", "issue-123", "org/repo#issue-123", None, None),
        ("[[github.com/org/repo#i-abcd]]", "github.com/org/repo", "i-abcd", "org/repo#i-abcd", None, None),
        ("[[org/repo#s-abcd|text]]{ blocks }", "org/repo", "s-abcd", "org/repo#s-abcd", "text", "blocks"),
        (
            "[[https://github.com/org/my.repo#ISSUE-7]]",
            "https://github.com/org/my.repo",
            "ISSUE-7",
            "org/my.repo#ISSUE-7",
            None,
            None,
        ),
        (
            "[[@sudocode-ai/sudocode#i-1002.1]]",
            "sudocode-ai/sudocode",
            "i-1002.1",
            "sudocode-ai/sudocode#i-1002.1",
            None,
            None,
        ),
    ],
)
def test_it_parses_cross_repo_refs(text, repo, target, canonical, display, rel_type):
    ref = _one(text)
    assert (ref.repo, ref.target_id, ref.canonical_ref, ref.display, ref.rel_type) == (
        repo,
        target,
        canonical,
        display,
        rel_type,
    )
    assert ref.is_remote
    assert (ref.start, ref.end) == (0, len(text))


def test_the_line_word_gives_the_relationship_type():
    text = "\n".join(
        [
            "Blocks: [[org/frontend#issue-100]] (external)",
            "Related: [[issue-050]] (local)",
            "Depends on: [[i-4pgj]], [[i-2r30]]",
            "- **Blocked by**: [[i-aaaa]]",
            "* Implements: [[s-7cua]]{ references }",
            "**References:** [[s-15l0]]",
            "Parent: [[i-9yw3]]",
            "Note: see [[i-bbbb]]",
            "Text first, Blocks: [[i-cccc]]",
            "[[i-dddd]]: leading ref",
        ]
    )
    assert [(r.canonical_ref, r.rel_type) for r in parse_refs(text)] == [
        ("org/frontend#issue-100", "blocks"),
        ("issue-050", "related"),
        ("i-4pgj", "depends-on"),
        ("i-2r30", "depends-on"),
        ("i-aaaa", "blocked-by"),
        ("s-7cua", "references"),  # the { } suffix wins over the line word
        ("s-15l0", "references"),
        ("i-9yw3", "parent-child"),
        ("i-bbbb", None),
        ("i-cccc", None),
        ("i-dddd", None),
    ]


def test_an_unknown_suffix_is_not_part_of_the_ref():
    ref = _one("Blocks: [[i-abcd]]{ frobnicates } and more")
    assert ref.rel_type == "blocks"
    assert "Blocks: [[i-abcd]]{ frobnicates } and more"[ref.start : ref.end] == "[[i-abcd]]"


def test_a_section_anchor_makes_a_local_ref_with_anchor():
    ref = _one("[[s-443y#Design Evolution: Review Blocks]]")
    assert (ref.target_id, ref.repo, ref.anchor, ref.canonical_ref) == (
        "s-443y",
        None,
        "Design Evolution: Review Blocks",
        "s-443y",
    )


@pytest.mark.parametrize(
    "text",
    [
        "[[server/server_plan.md]]",
        "[[entity-id]]",
        "[[ENTITY-ID]]",
        "[[{{id}}]]",
        'if [[ $FILE == shared/* ]]; then echo "[[ -n $X ]]"; fi',
        "(require [[temporal.common/retry-options]])",
        "[[i-????]]",
        "[[i-XXXX]]",
        "[[i-TBD-1]]",
        "[[i-serializer-injection]]",
        "[[s-id]]",
        "[[i-xyz]]",
        "[[ref]]",
        "[i-abcd]",
        "[[i-abcd]",
        "[[org/repo#not-an-id]]",
        "[[#i-abcd]]",
        "[[i-abcd\n]]",
        "",
    ],
)
def test_it_ignores_bracket_text_that_is_not_a_ref(text):
    assert parse_refs(text) == []


def test_spans_point_at_the_refs():
    text = "A [[i-aaaa]] then [[org/r#s-bbbb|B]]{ implements }."
    spans = [text[r.start : r.end] for r in parse_refs(text)]
    assert spans == ["[[i-aaaa]]", "[[org/r#s-bbbb|B]]{ implements }"]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Blocks", "blocks"),
        ("blocked by", "blocked-by"),
        ("Blocked-By", "blocked-by"),
        ("Depends on", "depends-on"),
        ("depends_on", "depends-on"),
        ("Related to", "related"),
        ("implements", "implements"),
        ("discovered from", "discovered-from"),
        ("parent-child", "parent-child"),
        ("Note", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_rel_type(word, expected):
    assert normalize_rel_type(word) == expected
    assert expected is None or expected in RELATIONSHIP_TYPES


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("org/repo#issue-1", ("org/repo", "issue-1")),
        ("github.com/org/repo#i-abcd", ("org/repo", "i-abcd")),
        ("i-abcd", (None, "i-abcd")),
        ("SPEC-018.1", (None, "SPEC-018.1")),
    ],
)
def test_split_canonical_ref(ref, expected):
    assert split_canonical_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "#i-abcd", "org/repo#", "org/repo#nope", "repo#i-abcd", "not an id"])
def test_split_canonical_ref_refuses_junk(ref):
    with pytest.raises(ValueError):
        split_canonical_ref(ref)


def test_canonical_ref_round_trips_through_split():
    for text in ("[[org/repo#issue-123]]", "[[github.com/org/repo#i-abcd]]", "[[i-abcd]]"):
        ref = _one(text)
        assert split_canonical_ref(ref.canonical_ref) == (
            None if ref.repo is None else ref.canonical_ref.split("#")[0],
            ref.target_id,
        )


@pytest.mark.corpus
def test_it_finds_every_well_formed_hash_link_in_the_corpus():
    require_corpus()
    hash_link = re.compile(r"\[\[@?([is]-[0-9a-z]{4,8})(?:\|[^\]\n]+)?\]\]")
    found = 0
    for path, kind in corpus_files():
        for record in read_jsonl(path, kind).records:
            texts = [record.get("content", "")] + [item["content"] for item in record.get("feedback", [])]
            for text in texts:
                refs = parse_refs(text)
                assert all(not r.is_remote for r in refs), (path, record["id"])
                expected = [m.group(1) for m in hash_link.finditer(text)]
                assert [r.target_id for r in refs if r.target_id[1] == "-"] == expected, (path, record["id"])
                found += len(expected)
    assert found > 1000
