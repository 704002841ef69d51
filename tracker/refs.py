"""References to issues and specs inside markdown content.

Recognised forms (all inside `[[ ]]`):

* local: `[[i-x7k9]]`, `[[s-x7k9|Display text]]`, `[[@issue-001]]` (mention), legacy `[[issue-050]]`,
  `[[ISSUE-028]]`, collision-renamed `[[SPEC-018.1]]`;
* cross-repo: `[[org/repo#issue-123]]`, `[[github.com/org/repo#i-abcd]]`, `[[org/repo#s-abcd|text]]`;
* a section anchor after the id, `[[s-443y#Design Evolution: Review Blocks]]`, is accepted: the ref points
  at the entity and `anchor` keeps the section text;
* a relationship type right after the brackets, `{ implements }` or `{ type: implements }`;
* the seed design's lines that start with a relationship word, `Blocks: [[org/frontend#issue-100]]
  (external)`, `Related: [[issue-050]] (local)`, `Depends on:`, `Blocked by:`, `Implements:` — the word
  types every ref on that line that has no `{ }` suffix.

Types are normalised to `RELATIONSHIP_TYPES`. A `{ }` suffix that is not a known type is not part of the
ref (the span ends at `]]`). Ids must have a real id shape (`i-`/`s-` + 4-8 of `[0-9a-z]`, or
`issue-`/`spec-` + digits, optional `.N`), so bracket text such as `[[server/server_plan.md]]`,
`[[entity-id]]`, `[[{{id}}]]`, `[[ $FILE == shared/* ]]`, `[[temporal.common/retry-options]]` or
`[[i-????]]` is not a ref. Like sudocode, refs inside code blocks are not skipped: resolve ids before
trusting them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracker.ids import ID_PATTERN, is_valid_id

__all__ = [
    "RELATIONSHIP_TYPES",
    "Ref",
    "normalize_rel_type",
    "parse_refs",
    "repo_path",
    "split_canonical_ref",
]

# sudocode's six plus the two the federation design adds (blocked-by, parent-child).
RELATIONSHIP_TYPES: tuple[str, ...] = (
    "blocks",
    "blocked-by",
    "related",
    "implements",
    "depends-on",
    "references",
    "discovered-from",
    "parent-child",
)

_REL_ALIASES = {
    **{rel: rel for rel in RELATIONSHIP_TYPES},
    "block": "blocks",
    "blocked": "blocked-by",
    "relates-to": "related",
    "related-to": "related",
    "relates": "related",
    "implement": "implements",
    "depends": "depends-on",
    "depend-on": "depends-on",
    "reference": "references",
    "refs": "references",
    "discovered": "discovered-from",
    "parent": "parent-child",
    "child": "parent-child",
    "parent-of": "parent-child",
    "child-of": "parent-child",
}

# owner/name, optionally behind a host (`github.com/`, `git.example.org:8443/`) and a scheme.
_REPO = r"(?:https?://)?[A-Za-z0-9_.-]+(?::[0-9]+)?(?:/[A-Za-z0-9_.-]+)+"
_REF_RE = re.compile(
    r"\[\[(?P<at>@)?"
    rf"(?:(?P<repo>{_REPO})#)?"
    rf"(?P<id>{ID_PATTERN})"
    r"(?:#(?P<anchor>[^\]|\n]+))?"
    r"(?:\|(?P<display>[^\]\n]+))?"
    r"\]\]"
    r"(?P<suffix>\{[ \t]*(?:type[ \t]*:[ \t]*)?(?P<type>[A-Za-z][A-Za-z_ -]*?)[ \t]*\})?"
)
# "Blocks:", "- **Depends on:**", "> Related to:" … at the start of a line.
_LINE_PREFIX_RE = re.compile(
    r"[ \t]*(?:>[ \t]*)*(?:[-*+][ \t]+|[0-9]+[.)][ \t]+)?(?:\*\*|__)?"
    r"(?P<word>[A-Za-z][A-Za-z_ -]{0,30}?)"
    r"(?:\*\*|__)?[ \t]*:"
)


@dataclass(frozen=True)
class Ref:
    target_id: str
    repo: str | None  # None for local; "org/repo" or "github.com/org/repo" as written
    display: str | None
    rel_type: str | None  # normalised, from the { } suffix or the line's leading word
    mention: bool  # [[@...]]
    start: int
    end: int
    anchor: str | None = None  # section after "#" in [[s-443y#Section]]

    @property
    def is_remote(self) -> bool:
        return self.repo is not None

    @property
    def canonical_ref(self) -> str:
        if self.repo is None:
            return self.target_id
        return f"{repo_path(self.repo)}#{self.target_id}"


def normalize_rel_type(word: str | None) -> str | None:
    """'Depends on' -> 'depends-on', 'Blocked by' -> 'blocked-by'; None when it is not a relationship."""
    if not word:
        return None
    key = re.sub(r"[\s_-]+", "-", word.strip().lower())
    return _REL_ALIASES.get(key)


def repo_path(repo: str) -> str:
    """`https://github.com/org/repo` or `github.com/org/repo` -> `org/repo`; `org/repo` unchanged.

    The first path segment is a host when it has a dot or a port and more segments follow (GitHub
    owners cannot contain dots, repository names can).
    """
    path = re.sub(r"^https?://", "", repo).strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    head, sep, rest = path.partition("/")
    if sep and "/" in rest and ("." in head or ":" in head or head == "localhost"):
        return rest
    return path


def parse_refs(text: str) -> list[Ref]:
    refs: list[Ref] = []
    line_types: dict[int, str | None] = {}
    for match in _REF_RE.finditer(text):
        rel_type = normalize_rel_type(match["type"])
        end = match.end() if rel_type else match.end() - len(match["suffix"] or "")
        if rel_type is None:
            line_start = text.rfind("\n", 0, match.start()) + 1
            if line_start not in line_types:
                line_types[line_start] = _line_rel_type(text, line_start)
            rel_type = line_types[line_start]
        display = (match["display"] or "").strip() or None
        anchor = (match["anchor"] or "").strip() or None
        refs.append(
            Ref(
                target_id=match["id"],
                repo=match["repo"],
                display=display,
                rel_type=rel_type,
                mention=match["at"] is not None,
                start=match.start(),
                end=end,
                anchor=anchor,
            )
        )
    return refs


def _line_rel_type(text: str, line_start: int) -> str | None:
    match = _LINE_PREFIX_RE.match(text, line_start)
    if match is None:
        return None
    return normalize_rel_type(match["word"])


def split_canonical_ref(ref: str) -> tuple[str | None, str]:
    """`org/repo#issue-1` -> ("org/repo", "issue-1"); `i-abcd` -> (None, "i-abcd").

    A host prefix (`github.com/org/repo#…`) is dropped, as in `Ref.canonical_ref`.
    """
    repo, sep, entity_id = ref.strip().rpartition("#")
    if not sep:
        repo, entity_id = None, ref.strip()
    elif not repo:
        raise ValueError(f"no repository before '#' in {ref!r}")
    if not is_valid_id(entity_id):
        raise ValueError(f"{entity_id!r} is not an issue or spec id (in {ref!r})")
    if repo is not None:
        repo = repo_path(repo)
        if "/" not in repo:
            raise ValueError(f"repository must look like org/repo, got {repo!r} (in {ref!r})")
    return repo, entity_id
