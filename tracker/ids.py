"""Entity ids the way current sudocode writes them.

New ids are hash ids (`i-x7k9`, `s-x7k9`) derived from the entity's uuid. This is a reimplementation of
`getAdaptiveHashLength`, `hashUUIDToBase36` and `generateHashIDFromUUID` in sudocode's
`cli/src/id-generator.ts` (sudocode-ai/sudocode): SHA-256 of the uuid without hyphens (hex digest), the
first ceil(length * 1.29) hex digits read as one integer, written in base 36, left-padded with "0" and cut
to `length` characters. The length grows with the number of entities of that kind; on a collision the
next longer hash is tried, up to 8 characters.

Legacy sequential ids (`ISSUE-001`, `SPEC-018`) stay valid forever, and sudocode's merge resolver renames
colliding ids to `<id>.1`, `<id>.2` … (or `<id>-conflict-<8 hex of uuid>`), so all of those are valid ids too.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Container

__all__ = [
    "HASH_ID_RE",
    "ID_PATTERN",
    "LEGACY_ID_RE",
    "IdGenerationError",
    "generate_id",
    "hash_id_length",
    "hash_uuid_to_base36",
    "is_valid_id",
    "kind_of_id",
]

HASH_ID_RE: re.Pattern[str] = re.compile(r"^[is]-[0-9a-z]{4,8}\Z")
LEGACY_ID_RE: re.Pattern[str] = re.compile(r"^(?:ISSUE|SPEC|issue|spec)-[0-9]+(?:\.[0-9]+)?\Z")
# Any valid id, for embedding in other patterns (no anchors): hash or legacy, optionally renamed by the
# merge resolver.
ID_PATTERN = r"(?:[is]-[0-9a-z]{4,8}|(?:ISSUE|SPEC|issue|spec)-[0-9]+)(?:\.[0-9]+|-conflict-[0-9a-f]{8})?"
_ANY_ID_RE = re.compile(rf"^{ID_PATTERN}\Z")

MAX_HASH_LENGTH = 8
_PREFIX = {"issue": "i", "spec": "s"}
# Birthday-paradox bounds from id-generator.ts: below each count the collision probability stays < 25 %.
_LENGTH_BOUNDS = ((980, 4), (5900, 5), (35000, 6), (212000, 7))
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class IdGenerationError(ValueError):
    """Every hash length up to 8 is taken (sudocode throws in the same case)."""


def hash_id_length(entity_count: int) -> int:
    for bound, length in _LENGTH_BOUNDS:
        if entity_count < bound:
            return length
    return MAX_HASH_LENGTH


def hash_uuid_to_base36(uuid: str, length: int) -> str:
    digest = hashlib.sha256(uuid.replace("-", "").encode("utf-8")).hexdigest()
    # Same float arithmetic as JavaScript's Math.ceil(length * 1.29): 7 * 1.29 is 9.030000000000001 -> 10.
    value = int(digest[: math.ceil(length * 1.29)], 16)
    text = _to_base36(value)
    return text.rjust(length, "0")[:length]


def _to_base36(value: int) -> str:
    if value == 0:
        return "0"
    chars: list[str] = []
    while value:
        value, digit = divmod(value, 36)
        chars.append(_BASE36[digit])
    return "".join(reversed(chars))


def generate_id(kind: str, uuid: str, *, entity_count: int, taken: Container[str]) -> str:
    """The id sudocode would give a new entity of `kind` with `uuid`, when `entity_count` exist already.

    `taken` holds the ids already used in the repository for that kind (sudocode checks its own table).
    """
    if kind not in _PREFIX:
        raise ValueError(f"kind must be 'issue' or 'spec', not {kind!r}")
    base_length = hash_id_length(entity_count)
    for length in range(base_length, MAX_HASH_LENGTH + 1):
        candidate = f"{_PREFIX[kind]}-{hash_uuid_to_base36(uuid, length)}"
        if candidate not in taken:
            return candidate
    raise IdGenerationError(f"no free hash id for {kind} {uuid} with lengths {base_length}-{MAX_HASH_LENGTH}")


def is_valid_id(value: str) -> bool:
    return isinstance(value, str) and _ANY_ID_RE.match(value) is not None


def kind_of_id(value: str) -> str | None:
    """'issue' or 'spec' from an id's prefix, None when the prefix does not tell (see FORMAT.md §5)."""
    if not is_valid_id(value):
        return None
    if value.startswith("i-") or value[:6].lower() == "issue-":
        return "issue"
    return "spec"
