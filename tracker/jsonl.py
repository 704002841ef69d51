"""Lossless reader and writer for sudocode's `.sudocode/issues.jsonl` and `specs.jsonl`.

The format is described in shared/corpus/FORMAT.md. The rules this module keeps:

* one JSON object per line, written exactly like JavaScript `JSON.stringify(obj)` (compact, raw UTF-8,
  only `"`, `\\` and control characters escaped, lone surrogates as lowercase `\\udxxx`);
* lines ordered by the raw `created_at` string, then the raw `id` (UTF-16 code-unit order, as JavaScript
  compares strings); records without `created_at` go last, by id;
* a rewrite keeps every untouched line byte for byte, so a change touches only the lines of the entities
  that changed (sudocode itself re-serialises everything, which gives the same bytes for its own files);
* a file that is not in sudocode's shape is refused with the file and line, and never rewritten.

No Django here: the services, the importer and the CLI all build on these functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from json.encoder import encode_basestring
from pathlib import Path
from types import MappingProxyType
from typing import Any

from federation_site.files import write_atomic

__all__ = [
    "ISSUE_KEY_ORDER",
    "ISSUE_STATUSES",
    "SPEC_KEY_ORDER",
    "JsonlFormatError",
    "JsonlSnapshot",
    "dump_record",
    "iso_timestamp",
    "new_issue_record",
    "new_spec_record",
    "parse_line",
    "parse_timestamp",
    "read_jsonl",
    "render",
    "render_lines",
    "snapshot_uuids",
    "sort_key",
    "sqlite_timestamp",
    "with_sudocode_key_order",
    "write_atomic",
]

# The writer spreads the SQLite row, then appends the array fields. `external_links` and `feedback` are only
# present when the entity has some; `parent_uuid` is missing in files written before ~2025-10-30.
ISSUE_KEY_ORDER: tuple[str, ...] = (
    "id",
    "uuid",
    "title",
    "content",
    "status",
    "priority",
    "assignee",
    "archived",
    "archived_at",
    "created_at",
    "updated_at",
    "closed_at",
    "parent_id",
    "parent_uuid",
    "external_links",
    "relationships",
    "tags",
    "feedback",
)
SPEC_KEY_ORDER: tuple[str, ...] = (
    "id",
    "uuid",
    "title",
    "file_path",
    "content",
    "priority",
    "archived",
    "archived_at",
    "created_at",
    "updated_at",
    "parent_id",
    "parent_uuid",
    "external_links",
    "relationships",
    "tags",
)
ISSUE_STATUSES: tuple[str, ...] = ("open", "in_progress", "blocked", "needs_review", "closed")
KINDS: tuple[str, ...] = ("issue", "spec")

_KEY_ORDER = {"issue": ISSUE_KEY_ORDER, "spec": SPEC_KEY_ORDER}
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# What JavaScript's String.prototype.trim() removes (sudocode trims every line before parsing it).
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_SAFE_INTEGER = 2**53 - 1
_NO_UPSERTS: Mapping[str, dict] = MappingProxyType({})
# A line git writes into a file it could not merge: `<<<<<<< ours`, `||||||| base` (diff3), `=======`,
# `>>>>>>> theirs`. No sudocode line can start with one (each is a JSON object).
CONFLICT_MARKER = re.compile(r"^(?:<{7}|\|{7}|={7}|>{7})(?: |\r?$)", re.M)
_MARKER_STARTS = ("<" * 7, "|" * 7, "=" * 7, ">" * 7)


class JsonlFormatError(ValueError):
    """A line (or a whole file) that is not in sudocode's JSONL format."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.line, self.reason))

    @property
    def short(self) -> str:
        """The message with the file's name instead of its whole path: `issues.jsonl:7: ...`."""
        name = Path(self.path).name
        return f"{name}: {self.reason}" if self.line is None else f"{name}:{self.line}: {self.reason}"


# --- serialisation -------------------------------------------------------------------------------------


def dump_record(data: dict) -> str:
    """Serialise like JavaScript `JSON.stringify(data)`: compact, raw UTF-8, key order kept."""
    parts: list[str] = []
    _dump(data, parts)
    text = "".join(parts)
    if _LONE_SURROGATE.search(text):
        # Python's decoder joins valid surrogate pairs, so any surrogate left is a lone one; JavaScript
        # (ES2019 well-formed stringify) writes those as escapes.
        text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def _dump(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(encode_basestring(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(str(value) if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER else _js_number(value))
    elif isinstance(value, float):
        parts.append(_js_number(value))
    elif isinstance(value, dict):
        parts.append("{")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            if not first:
                parts.append(",")
            first = False
            parts.append(encode_basestring(key))
            parts.append(":")
            _dump(item, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _dump(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def _js_number(value: float | int) -> str:
    """ECMAScript Number::toString for a finite number (Python's repr differs on exponents and `1.0`)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not valid JSON (JSON.stringify would write null)")
    if number == 0:
        return "0"  # also -0, which JavaScript prints as "0"
    sign = "-" if number < 0 else ""
    # repr() gives the shortest digits that round-trip, the same digits JavaScript picks.
    _, digit_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = int(exponent) + k  # position of the decimal point relative to the digits
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


# --- parsing and validation ----------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    pass


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(f"duplicate key {key!r} in a JSON object")
            seen.add(key)
    return obj


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text} is out of range")
    return number


def parse_line(text: str, *, path: str, line: int, kind: str) -> dict:
    """Parse one line of an issues/specs file and check it has sudocode's shape; keeps key order."""
    _check_kind(kind)
    stripped = text.strip(_JS_WHITESPACE)
    try:
        record = json.loads(
            stripped,
            object_pairs_hook=_object_pairs,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as exc:
        raise JsonlFormatError(path, line, f"malformed JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise JsonlFormatError(path, line, f"malformed JSON: {exc}") from None
    if not isinstance(record, dict):
        raise JsonlFormatError(
            path, line, f"expected a JSON object per line, got {_json_type(record)} (not a sudocode file)"
        )
    problem = _shape_problem(record, kind)
    if problem:
        raise JsonlFormatError(path, line, problem)
    return record


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'issue' or 'spec', not {kind!r}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: Any) -> str:
    try:
        shown = dump_record(value)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _shape_problem(record: dict, kind: str) -> str | None:
    """What makes `record` not a sudocode issue/spec, or None when it is one."""
    entity = f"sudocode {kind}"
    for key in ("id", "uuid", "title"):
        if key not in record:
            return f'not a {entity} record: missing "{key}"'
        if not isinstance(record[key], str):
            return f'"{key}" must be a string, got {_show(record[key])}'
    if not record["id"]:
        return '"id" must not be empty'
    if not record["uuid"]:
        return '"uuid" must not be empty'

    if "priority" not in record:
        return f'not a {entity} record: missing "priority"'
    priority = record["priority"]
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
        return f'"priority" must be an integer 0-4, got {_show(priority)}'

    if kind == "issue":
        if "status" not in record:
            return f'not a {entity} record: missing "status"'
        if record["status"] not in ISSUE_STATUSES:
            return f'"status" must be one of {", ".join(ISSUE_STATUSES)}; got {_show(record["status"])}'
    else:
        if "file_path" not in record:
            return f'not a {entity} record: missing "file_path"'
        if not isinstance(record["file_path"], str):
            return f'"file_path" must be a string, got {_show(record["file_path"])}'

    if "content" in record and not isinstance(record["content"], str):
        return f'"content" must be a string, got {_show(record["content"])}'
    for key in (
        "created_at",
        "updated_at",
        "closed_at",
        "archived_at",
        "assignee",
        "parent_id",
        "parent_uuid",
    ):
        if key in record and record[key] is not None and not isinstance(record[key], str):
            return f'"{key}" must be a string or null, got {_show(record[key])}'
    if "archived" in record and record["archived"] not in (0, 1):
        return f'"archived" must be 0 or 1, got {_show(record["archived"])}'

    for key in ("relationships", "tags", "feedback", "external_links"):
        if key in record and not isinstance(record[key], list):
            return f'"{key}" must be an array, got {_show(record[key])}'
    for rel in record.get("relationships", ()):
        if not isinstance(rel, dict):
            return f'"relationships" items must be objects, got {_show(rel)}'
        for key in ("to", "type"):
            if not isinstance(rel.get(key), str):
                return f'relationship "{key}" must be a string, got {_show(rel.get(key))}'
    for tag in record.get("tags", ()):
        if not isinstance(tag, str):
            return f'"tags" items must be strings, got {_show(tag)}'
    for key in ("feedback", "external_links"):
        for item in record.get(key, ()):
            if not isinstance(item, dict):
                return f'"{key}" items must be objects, got {_show(item)}'
    return None


# --- snapshots -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonlSnapshot:
    """One issues.jsonl/specs.jsonl as read: the raw lines, their records and what the file looked like."""

    path: Path
    kind: str
    lines: tuple[str, ...]
    records: tuple[dict, ...]
    content_sha256: str
    size: int
    mtime_ns: int
    exists: bool
    # The line of the file each record is on (1-based; blank lines count), for messages that point at a record.
    line_numbers: tuple[int, ...] = ()
    data: bytes = field(default=b"", repr=False, compare=False)  # the file's bytes, as read

    def by_uuid(self) -> dict[str, tuple[str, dict]]:
        return {record["uuid"]: (line, record) for line, record in zip(self.lines, self.records, strict=True)}


# Lines already parsed and validated in this process, by their exact text: a file read again after a write
# (or a sync) parses only the lines that changed. Snapshots share these records: treat them as read-only.
_parsed: dict[tuple[str, str], dict] = {}
_PARSED_MAX = 200_000


def read_jsonl(path: Path, kind: str) -> JsonlSnapshot:
    """Read and validate a whole file; a missing file is an empty snapshot with `exists=False`.

    Lines are split on LF only and kept as read (a CRLF file keeps its "\r" on untouched lines); blank
    lines are dropped. Duplicate uuids are refused, since the writer matches entities by uuid; duplicate
    ids are the caller's business (sudocode's merge resolver renames them `<id>.1`).
    """
    _check_kind(kind)
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            stat = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        return JsonlSnapshot(path, kind, (), (), _EMPTY_SHA256, 0, 0, False)

    known = _known.get((str(path), kind))
    if known is not None and known.whole:
        if known.data == data:
            return known.snapshot(path, kind, stat)
        if len(data) > known.group_offset and data.startswith(known.data[: known.group_offset]):
            # Another process created something: it kept the file up to the last second's lines and rewrote
            # those with its new lines merged in. Parse only that tail.
            appended = _read_appended(path, kind, known, data)
            if appended is not None:
                return appended.snapshot(path, kind, stat)

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise JsonlFormatError(path, line, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    _refuse_conflict_markers(path, text)
    lines: list[str] = []
    records: list[dict] = []
    numbers: list[int] = []
    first_line_of_uuid: dict[str, int] = {}
    # Split on LF only: str.splitlines() would also split inside a line on U+2028, \x1c and friends.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip(_JS_WHITESPACE):
            continue
        record = _parsed.get((kind, raw))
        if record is None:
            record = parse_line(raw, path=str(path), line=number, kind=kind)
            if len(_parsed) >= _PARSED_MAX:
                _parsed.clear()
            _parsed[(kind, raw)] = record
        uuid = record["uuid"]
        if uuid in first_line_of_uuid:
            raise JsonlFormatError(
                path, number, f'duplicate uuid "{uuid}" (first seen on line {first_line_of_uuid[uuid]})'
            )
        first_line_of_uuid[uuid] = number
        lines.append(raw)
        records.append(record)
        numbers.append(number)
    known = _remember(
        path,
        kind,
        _new_known(
            data=data,
            lines=tuple(lines),
            records=tuple(records),
            whole=data.endswith(b"\n") and data.count(b"\n") == len(lines),
            uuids=frozenset(first_line_of_uuid),
            cr_lines=sum(raw.endswith("\r") for raw in lines),
            ordered=None,
        ),
    )
    sha256 = known.sha256
    return JsonlSnapshot(
        path=path,
        kind=kind,
        lines=tuple(lines),
        records=tuple(records),
        content_sha256=sha256,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        exists=True,
        line_numbers=tuple(numbers),
        data=data,
    )


def _read_appended(path: Path, kind: str, known: _Known, data: bytes) -> _Known | None:
    """What `data` holds when it keeps `known.data` up to the last second's lines (`group_offset`) and whole
    lines follow: the known lines and records up to there, the rest parsed, the sha256 continued from the state
    kept at that offset (so the cost is the tail's, not the file's). None when the tail is anything else (a blank
    line, a bad line, a uuid seen before, a conflict marker): the caller reads the whole file, which names the
    problem and its line."""
    tail = data[known.group_offset :]
    try:
        text = tail.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\n") or any(marker in text for marker in _MARKER_STARTS):
        return None
    base = known.group_start
    rewritten = {record["uuid"] for record in known.records[base:]}
    lines: list[str] = []
    records: list[dict] = []
    uuids: set[str] = set()
    for offset, raw in enumerate(text[:-1].split("\n")):
        if not raw.strip(_JS_WHITESPACE):
            return None
        record = _parsed.get((kind, raw))
        if record is None:
            try:
                record = parse_line(raw, path=str(path), line=base + offset + 1, kind=kind)
            except JsonlFormatError:
                return None
            if len(_parsed) >= _PARSED_MAX:
                _parsed.clear()
            _parsed[(kind, raw)] = record
        uuid = record["uuid"]
        if uuid in uuids or (uuid in known.uuids and uuid not in rewritten):
            return None
        uuids.add(uuid)
        lines.append(raw)
        records.append(record)
    keys = [sort_key(record) for record in records]
    in_order = all(a <= b for a, b in zip(keys, keys[1:], strict=False))
    after_prefix = not base or sort_key(known.records[base - 1]) <= keys[0]
    return _remember(
        path,
        kind,
        _new_known(
            data=data,
            lines=known.lines[:base] + tuple(lines),
            records=known.records[:base] + tuple(records),
            whole=True,
            uuids=(known.uuids - rewritten) | uuids,
            cr_lines=known.cr_lines
            - sum(raw.endswith("\r") for raw in known.lines[base:])
            + sum(raw.endswith("\r") for raw in lines),
            # In order as far as this read can tell; else as _sorted says (this process rendered it sorted).
            ordered=True if known.ordered and after_prefix and in_order else None,
            base=base,
            base_offset=known.group_offset,
            base_hasher=known.group_hasher,
        ),
    )


def _refuse_conflict_markers(path: Path, text: str) -> None:
    """A file git left mid-merge names the lines to resolve (every marker from the first to the last)."""
    # A plain search first (the regex costs 30x more): a marker starts a line, and JSON escapes the newlines
    # inside a record's strings, so a marker can only follow a real line break.
    if not any(text.startswith(marker) or "\n" + marker in text for marker in _MARKER_STARTS):
        return
    first = CONFLICT_MARKER.search(text)
    if first is None:
        return
    *_, last = CONFLICT_MARKER.finditer(text, first.start())
    start = text.count("\n", 0, first.start()) + 1
    end = text.count("\n", 0, last.start()) + 1
    where = f"line {start}" if start == end else f"lines {start}-{end}"
    raise JsonlFormatError(
        path,
        start,
        f"unresolved git merge conflict at {where}: resolve it by hand (keep one version of each record and "
        "delete the <<<<<<<, ======= and >>>>>>> lines), then save the file",
    )


def _js_string_key(value: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like JavaScript strings (by UTF-16 code unit).
    return value.encode("utf-16-be", "surrogatepass")


def sort_key(record: dict) -> tuple:
    """sudocode's file order: raw `created_at`, then raw `id`; records without created_at last, by id."""
    created_at = record.get("created_at")
    record_id = record.get("id") or ""
    if not created_at:
        return (1, b"", _js_string_key(str(record_id)))
    return (0, _js_string_key(str(created_at)), _js_string_key(str(record_id)))


def carriage_return(snapshot: JsonlSnapshot) -> str:
    """What a line we write ends with before its LF: a CR when most lines of the file end with CRLF (an editor's
    choice, git's autocrlf on Windows), so a CRLF file stays CRLF on every line; else nothing."""
    lines = snapshot.lines
    known = _known_for(snapshot)
    cr_lines = known.cr_lines if known is not None else sum(raw.endswith("\r") for raw in lines)
    return "\r" if lines and cr_lines * 2 > len(lines) else ""


def render_lines(
    snapshot: JsonlSnapshot,
    *,
    upserts: Mapping[str, dict] = _NO_UPSERTS,
    deletes: Collection[str] = (),
) -> bytes:
    """New file content: untouched lines byte for byte, upserts (by uuid) re-dumped with the file's line ending
    (CRLF when most of its lines have one), deletes dropped.

    The result is a stable sort by `sort_key`, so an already sorted file changes only where it must.
    """
    return render(snapshot, upserts=upserts, deletes=deletes)[0]


def render(
    snapshot: JsonlSnapshot,
    *,
    upserts: Mapping[str, dict] = _NO_UPSERTS,
    deletes: Collection[str] = (),
) -> tuple[bytes, str]:
    """`render_lines`' content and its sha256 (hex). A create's sha256 continues the file's (the cost of the
    new lines, not of the file)."""
    both = set(upserts).intersection(deletes)
    if both:
        raise ValueError(f"uuid both upserted and deleted: {', '.join(sorted(both))}")
    for uuid, record in upserts.items():
        if record.get("uuid") != uuid:
            raise ValueError(f"upsert keyed {uuid!r} holds a record with uuid {record.get('uuid')!r}")
        problem = _shape_problem(record, snapshot.kind)
        if problem:
            raise JsonlFormatError(snapshot.path, None, f"refusing to write {snapshot.kind} {uuid}: {problem}")

    crlf = carriage_return(snapshot)
    appended = _merge_tail(snapshot, upserts, deletes, crlf)
    if appended is not None:
        return appended
    entries: list[tuple[tuple, str]] = []
    replaced: set[str] = set()
    for raw, record in zip(snapshot.lines, snapshot.records, strict=True):
        uuid = record["uuid"]
        if uuid in deletes:
            continue
        if uuid in upserts:
            new = upserts[uuid]
            entries.append((sort_key(new), dump_record(new) + crlf))
            replaced.add(uuid)
        else:
            entries.append((sort_key(record), raw))
    for uuid, new in upserts.items():
        if uuid not in replaced:
            entries.append((sort_key(new), dump_record(new) + crlf))

    entries.sort(key=lambda entry: entry[0])
    content = "".join(f"{line}\n" for _, line in entries).encode("utf-8")
    sha256 = hashlib.sha256(content).hexdigest()
    _sorted[sha256] = True
    return content, sha256


@dataclass(frozen=True)
class _Known:
    """One file's contents as this process last read or wrote them, and what they hold."""

    data: bytes
    lines: tuple[str, ...]
    records: tuple[dict, ...]
    sha256: str
    hasher: Any  # a sha256 object fed exactly `data`: copied and fed an appended tail, it hashes the new file
    whole: bool  # every line holds a record and the file ends with LF: record i is on line i + 1
    uuids: frozenset[str]
    cr_lines: int  # lines ending with CR (carriage_return)
    ordered: bool  # in sudocode's order (this process wrote it so, or saw it appended in order)
    # The last second's lines: the first of them (by index and byte offset) and the sha256 state over the bytes
    # before it. A create rewrites only from there (`_merge_tail`), so hashing it, or reading what another
    # process wrote, continues from this state instead of hashing the whole file again.
    group_start: int
    group_offset: int
    group_hasher: Any

    def snapshot(self, path: Path, kind: str, stat: os.stat_result) -> JsonlSnapshot:
        numbers = tuple(range(1, len(self.lines) + 1))
        return JsonlSnapshot(
            path, kind, self.lines, self.records, self.sha256, stat.st_size, stat.st_mtime_ns, True, numbers, self.data
        )


# Contents this process read or wrote, by file. A file read again that still holds those exact bytes (compared,
# not trusted to a stat) is not decoded and split again; one that holds them plus new lines (another process
# appended) costs the new lines; a write that appends (`_merge_tail`) records the new contents here, so the next
# write reads it back for the price of a compare.
_known: dict[tuple[str, str], _Known] = {}
# The content sha256s this process knows to be sorted in sudocode's order (it wrote them so).
_sorted: dict[str, bool] = {}


def _new_known(
    *,
    data: bytes,
    lines: tuple[str, ...],
    records: tuple[dict, ...],
    whole: bool,
    uuids: frozenset[str],
    cr_lines: int,
    ordered: bool | None,
    base: int = 0,
    base_offset: int = 0,
    base_hasher: Any = None,
) -> _Known:
    """A _Known for `data`, hashing only from `base_offset` on: `base_hasher` is the sha256 state over
    `data[:base_offset]`, the bytes of the first `base` records (none: hash it all). `ordered` None: as _sorted
    says of the content."""
    start = len(records)
    if whole and records:
        last = records[-1].get("created_at")
        while start > base and records[start - 1].get("created_at") == last:
            start -= 1
    offset = len(data) - sum(len(line.encode("utf-8")) + 1 for line in lines[start:]) if whole else len(data)
    view = memoryview(data)
    group_hasher = base_hasher.copy() if base_hasher is not None else hashlib.sha256()
    group_hasher.update(view[base_offset:offset])
    hasher = group_hasher.copy()
    hasher.update(view[offset:])
    sha256 = hasher.hexdigest()
    return _Known(
        data=data,
        lines=lines,
        records=records,
        sha256=sha256,
        hasher=hasher,
        whole=whole,
        uuids=uuids,
        cr_lines=cr_lines,
        ordered=_sorted.get(sha256, False) if ordered is None else ordered,
        group_start=start,
        group_offset=offset,
        group_hasher=group_hasher,
    )


def _remember(path: Path, kind: str, known: _Known) -> _Known:
    _known[(str(path), kind)] = known
    if len(_sorted) > 64:
        _sorted.clear()
    _sorted[known.sha256] = known.ordered
    return known


def snapshot_uuids(snapshot: JsonlSnapshot) -> frozenset[str]:
    """The uuids in `snapshot` (remembered with the file's contents: no pass over its records when known)."""
    known = _known_for(snapshot)
    return known.uuids if known is not None else frozenset(record["uuid"] for record in snapshot.records)


def _known_for(snapshot: JsonlSnapshot) -> _Known | None:
    """What this process knows of `snapshot`'s exact contents, if it still knows them."""
    known = _known.get((str(snapshot.path), snapshot.kind))
    if known is None or known.sha256 != snapshot.content_sha256 or not snapshot.exists:
        return None
    return known


def _merge_tail(
    snapshot: JsonlSnapshot, upserts: Mapping[str, dict], deletes: Collection[str], crlf: str
) -> tuple[bytes, str] | None:
    """render's answer, without sorting or re-joining the whole file, when the edit only adds records (a create)
    to a file this process knows to be sorted and without blank lines: the lines that sort after the first new
    record (those created in the same second, usually none) are merged with the new ones, the rest of the file is
    kept as bytes, and its sha256 is continued rather than computed again when nothing was merged. Else None
    (render the whole file)."""
    known = _known_for(snapshot)
    if deletes or not upserts or known is None or not known.whole:
        return None
    if not (known.ordered or _sorted.get(snapshot.content_sha256)) or not known.uuids.isdisjoint(upserts):
        return None
    data = known.data
    new = sorted(((sort_key(record), dump_record(record) + crlf, record) for record in upserts.values()), key=_first)
    first = new[0][0]
    keep = len(known.records)
    while keep and sort_key(known.records[keep - 1]) > first:
        keep -= 1
    tail = [(sort_key(r), line, r) for line, r in zip(known.lines[keep:], known.records[keep:], strict=True)]
    merged = sorted(tail + new, key=_first)  # stable: an old line before a new one with the same key
    cut = len(data) - sum(len(line.encode("utf-8")) + 1 for line in known.lines[keep:])
    content = data[:cut] + "".join(f"{line}\n" for _, line, _ in merged).encode("utf-8")
    lines = tuple(line for _, line, _ in merged)
    # Only the last second's lines moved (or none): hash from there. Else (a record dated in the past) hash it all.
    base = known.group_start if keep >= known.group_start else 0
    written = _remember(
        snapshot.path,
        snapshot.kind,
        _new_known(
            data=content,
            lines=known.lines[:keep] + lines,
            records=known.records[:keep] + tuple(r for _, _, r in merged),
            whole=True,
            uuids=known.uuids | frozenset(upserts),
            cr_lines=known.cr_lines
            - sum(line.endswith("\r") for line in known.lines[keep:])
            + sum(line.endswith("\r") for line in lines),
            ordered=True,
            base=base,
            base_offset=known.group_offset if base else 0,
            base_hasher=known.group_hasher if base else None,
        ),
    )
    return content, written.sha256


def _first(entry: tuple) -> tuple:
    return entry[0]


# --- building records ----------------------------------------------------------------------------------


def with_sudocode_key_order(record: dict, kind: str) -> dict:
    """A copy of `record` with the known keys in sudocode's order.

    Unknown keys stay right after the known key they followed (or first, if they led the record), so a
    record that is already in order comes back unchanged. Useful after adding e.g. `external_links` to a
    parsed record, which a plain dict would otherwise append at the end.
    """
    _check_kind(kind)
    order = _KEY_ORDER[kind]
    rank = {key: index for index, key in enumerate(order)}
    leading: list[str] = []
    trailing: dict[str, list[str]] = {}
    last_known: str | None = None
    for key in record:
        if key in rank:
            last_known = key
            trailing.setdefault(key, [])
        elif last_known is None:
            leading.append(key)
        else:
            trailing[last_known].append(key)
    ordered = leading[:]
    for key in sorted(trailing, key=rank.__getitem__):
        ordered.append(key)
        ordered.extend(trailing[key])
    return {key: record[key] for key in ordered}


def new_issue_record(
    *,
    id: str,
    uuid: str,
    title: str,
    content: str = "",
    status: str = "open",
    priority: int = 2,
    assignee: str | None = None,
    created_at: str,
    updated_at: str,
    parent_id: str | None = None,
    parent_uuid: str | None = None,
    relationships: Collection[Mapping[str, Any]] = (),
    tags: Collection[str] = (),
) -> dict:
    record = {
        "id": id,
        "uuid": uuid,
        "title": title,
        "content": content,
        "status": status,
        "priority": priority,
        "assignee": assignee,
        "archived": 0,
        "archived_at": None,
        "created_at": created_at,
        "updated_at": updated_at,
        "closed_at": None,
        "parent_id": parent_id,
        "parent_uuid": parent_uuid,
        "relationships": [dict(rel) for rel in relationships],
        "tags": list(tags),
    }
    _raise_if_malformed(record, "issue")
    return record


def new_spec_record(
    *,
    id: str,
    uuid: str,
    title: str,
    file_path: str,
    content: str = "",
    priority: int = 2,
    created_at: str,
    updated_at: str,
    parent_id: str | None = None,
    parent_uuid: str | None = None,
    relationships: Collection[Mapping[str, Any]] = (),
    tags: Collection[str] = (),
) -> dict:
    record = {
        "id": id,
        "uuid": uuid,
        "title": title,
        "file_path": file_path,
        "content": content,
        "priority": priority,
        "archived": 0,
        "archived_at": None,
        "created_at": created_at,
        "updated_at": updated_at,
        "parent_id": parent_id,
        "parent_uuid": parent_uuid,
        "relationships": [dict(rel) for rel in relationships],
        "tags": list(tags),
    }
    _raise_if_malformed(record, "spec")
    return record


def _raise_if_malformed(record: dict, kind: str) -> None:
    problem = _shape_problem(record, kind)
    if problem:
        raise ValueError(problem)


# --- timestamps ----------------------------------------------------------------------------------------

_TIMESTAMP_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ](?P<h>[0-9]{2}):(?P<m>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?)?"
    r"(?P<zone>Z|z|[+-][0-9]{2}:?[0-9]{2})?)?"
)


def _as_utc(dt: datetime | None) -> datetime:
    if dt is None:
        return datetime.now(UTC)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def sqlite_timestamp(dt: datetime | None = None) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, what SQLite's CURRENT_TIMESTAMP (sudocode's created_at) looks like."""
    return _as_utc(dt).strftime("%Y-%m-%d %H:%M:%S")


def iso_timestamp(dt: datetime | None = None) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, what JavaScript's `Date.toISOString()` writes."""
    value = _as_utc(dt)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse either sudocode timestamp format (or date only, or microseconds) to an aware UTC datetime.

    Zone-less values are UTC, as sudocode treats them. Only for comparisons: always write the original
    string back. Returns None for None and for anything that is not a timestamp.
    """
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP_RE.fullmatch(value.strip())
    if not match:
        return None
    try:
        year, month, day = (int(part) for part in match["date"].split("-"))
        frac = (match["frac"] or "").ljust(6, "0")[:6]
        parsed = datetime(
            year,
            month,
            day,
            int(match["h"] or 0),
            int(match["m"] or 0),
            int(match["s"] or 0),
            int(frac or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    zone = match["zone"]
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset_minutes = sign * (int(digits[:2]) * 60 + int(digits[2:]))
        parsed = parsed.replace(tzinfo=timezone(timedelta(minutes=offset_minutes))).astimezone(UTC)
    return parsed
