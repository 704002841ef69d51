"""`sudocode-fed doctor`: every problem in a repository's sudocode data, found by reading the files themselves
(not the database, which keeps the last good import), and the repairs that are safe to make.

Problems: git conflict markers left in a file, lines that are not sudocode records, two records with one uuid,
two records with one id (both lines named), relationships and `[[refs]]` to local ids that do not exist,
cross-repo references to repositories the config does not declare. Safe repairs (`doctor_fix`): a duplicated
id gets a fresh hash id on the later record, and the references that unambiguously mean that record (its own
relationships, children whose parent_uuid is its uuid) follow. Everything else needs a human and says how.

Pure: no database; `sudocode_cli.commands.node.doctor` is the edge (config, secrets, git commit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tracker import ids, jsonl, refs


@dataclass(frozen=True)
class Problem:
    """One thing wrong. `lines` are 1-based line numbers of `file` (empty for the repository as a whole)."""

    code: str  # conflict_markers | malformed | duplicate_uuid | duplicate_id | broken_reference | unknown_remote
    file: str
    lines: tuple[int, ...]
    message: str
    fixable: bool = False

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "file": self.file,
            "lines": list(self.lines),
            "message": self.message,
            "fixable": self.fixable,
        }

    def __str__(self) -> str:
        where = f"{self.file}:{','.join(map(str, self.lines))}" if self.lines else self.file
        return f"{where}: {self.message}{'  [doctor --fix repairs it]' if self.fixable else ''}"


@dataclass
class FileScan:
    """What one JSONL file holds, line by line, tolerating what read_jsonl refuses."""

    kind: str
    path: Path
    text: str = ""
    records: list[tuple[int, dict]] = field(default_factory=list)  # (line number, record) of readable lines
    problems: list[Problem] = field(default_factory=list)


def scan_file(path: Path, kind: str) -> FileScan:
    scan = FileScan(kind=kind, path=path)
    if not path.exists():
        return scan
    name = path.name
    try:
        scan.text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        scan.problems.append(Problem("malformed", name, (), f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return scan
    lines = scan.text.split("\n")
    markers = [number for number, raw in enumerate(lines, start=1) if jsonl.CONFLICT_MARKER.match(raw)]
    if markers:
        # Inside a conflict both versions of a record stand: any other finding would be noise. Its readable
        # records still count as existing, for the references of the other file.
        scan.problems.append(
            Problem(
                "conflict_markers",
                name,
                (markers[0], markers[-1]),
                f"unresolved git merge conflict at lines {markers[0]}-{markers[-1]}: keep one version of each "
                "record and delete the marker lines (the merge driver that `sudocode-fed init` registers merges "
                "these files by record next time)",
            )
        )
    for number, raw in enumerate(lines, start=1):
        if not raw.strip() or jsonl.CONFLICT_MARKER.match(raw):
            continue
        try:
            scan.records.append((number, jsonl.parse_line(raw, path=name, line=number, kind=kind)))
        except jsonl.JsonlFormatError as exc:
            if not markers:
                scan.problems.append(Problem("malformed", name, (number,), exc.reason))
    if markers:
        return scan
    seen_uuid: dict[str, int] = {}
    seen_id: dict[str, int] = {}
    for number, record in scan.records:
        if record["uuid"] in seen_uuid:
            first = seen_uuid[record["uuid"]]
            scan.problems.append(
                Problem(
                    "duplicate_uuid",
                    name,
                    (first, number),
                    f"uuid {record['uuid']} is on line {first} and again on line {number}: one entity written twice; "
                    "keep the line you want and delete the other",
                )
            )
            continue
        seen_uuid[record["uuid"]] = number
        if record["id"] in seen_id:
            first = seen_id[record["id"]]
            scan.problems.append(
                Problem(
                    "duplicate_id",
                    name,
                    (first, number),
                    f"id {record['id']!r} is on line {first} and again on line {number}, for two different records",
                    fixable=True,
                )
            )
        else:
            seen_id[record["id"]] = number
    return scan


def diagnose(
    scans: dict[str, FileScan], *, known_repos: set[str], remote_identities: list[str] | None = None
) -> list[Problem]:
    """Every problem of the files (`scans` by kind) and of their references. `known_repos`: the `org/repo`
    paths of the remotes the config declares (and this repository's own); `remote_identities`: their full
    identities, to find a short reference (`[[org/x#id]]`) that two remotes share (ambiguous)."""
    problems = [p for scan in scans.values() for p in scan.problems]
    by_path: dict[str, list[str]] = {}
    for url in remote_identities or []:
        by_path.setdefault(refs.repo_path(url).lower(), []).append(url)
    shared = {path: sorted(urls) for path, urls in by_path.items() if len(urls) > 1}
    local_ids = {record["id"] for scan in scans.values() for _n, record in scan.records}
    for scan in scans.values():
        name = scan.path.name
        for number, record in scan.records:
            missing = sorted(
                {r.get("to") for r in record.get("relationships") or [] if r.get("to") not in local_ids} - {None}
            )
            for target in missing:
                problems.append(
                    Problem(
                        "broken_reference",
                        name,
                        (number,),
                        f"{record['id']} has a relationship to {target}, "
                        "which exists in neither issues.jsonl nor specs.jsonl",
                    )
                )
            for ref in refs.parse_refs(record.get("content") or ""):
                if ref.repo is None and not ref.mention and ref.target_id not in local_ids:
                    problems.append(
                        Problem(
                            "broken_reference",
                            name,
                            (number,),
                            f"{record['id']} mentions [[{ref.target_id}]], "
                            "which exists in neither issues.jsonl nor specs.jsonl",
                        )
                    )
                elif ref.repo is not None and refs.repo_path(ref.repo) not in known_repos:
                    problems.append(_unknown_remote(name, number, record["id"], refs.repo_path(ref.repo)))
                elif ref.repo is not None and ref.repo.lower() in shared:
                    urls = shared[ref.repo.lower()]
                    problems.append(
                        Problem(
                            "ambiguous_reference",
                            name,
                            (number,),
                            f"{record['id']} refers to [[{ref.repo}#{ref.target_id}]], which could mean "
                            f"{' or '.join(urls)}: write the full identity, e.g. [[{urls[0]}#{ref.target_id}]]",
                        )
                    )
            for rel in record.get("remote_relationships") or []:
                repo = refs.repo_path(str(rel.get("remote_repo") or rel.get("canonical_ref", "").partition("#")[0]))
                if repo and repo not in known_repos:
                    problems.append(_unknown_remote(name, number, record["id"], repo))
    return problems


def _unknown_remote(name: str, number: int, record_id: str, repo: str) -> Problem:
    return Problem(
        "unknown_remote",
        name,
        (number,),
        f"{record_id} refers to {repo}, which federation.config.json does not declare: "
        f"`sudocode-fed remote add github.com/{repo} --endpoint URL` (or fix the reference)",
    )


def doctor_fix(scan: FileScan, *, other_ids: set[str]) -> tuple[bytes | None, list[str]]:
    """The file's content with every duplicated id repaired (the later record gets a fresh hash id; its own
    relationships and the children whose parent_uuid is its uuid follow), and what was done; (None, []) when
    there is nothing to repair or the file has problems a human must solve first (conflict markers, malformed
    lines, duplicated uuids). `other_ids`: the ids of the other file, which a new id must not take either."""
    if any(p.code in ("conflict_markers", "malformed", "duplicate_uuid") for p in scan.problems):
        return None, []
    if not any(p.code == "duplicate_id" for p in scan.problems):
        return None, []
    lines = scan.text.split("\n")
    taken = {record["id"] for _n, record in scan.records} | other_ids
    seen: set[str] = set()
    renamed: dict[str, tuple[str, str]] = {}  # uuid -> (old id, new id)
    records = {number: dict(record) for number, record in scan.records}
    for record in records.values():
        if record["id"] not in seen:
            seen.add(record["id"])
            continue
        new_id = ids.generate_id(scan.kind, record["uuid"], entity_count=len(records), taken=taken)
        taken.add(new_id)
        renamed[record["uuid"]] = (record["id"], new_id)
        record["id"] = new_id
    done = []
    for number, record in records.items():
        changed = record["uuid"] in renamed
        if record["uuid"] in renamed:
            old, new = renamed[record["uuid"]]
            record["relationships"] = [
                dict(r, **{"from": new}) if r.get("from") == old else r for r in record.get("relationships") or []
            ]
            done.append(f"{scan.path.name}:{number}: {old} is now {new} (it shared its id with another record)")
        if record.get("parent_uuid") in renamed:
            record["parent_id"] = renamed[record["parent_uuid"]][1]
            changed = True
        if changed:
            ending = "\r" if lines[number - 1].endswith("\r") else ""
            lines[number - 1] = jsonl.dump_record(record) + ending
    return "\n".join(lines).encode("utf-8"), done


def known_repo_paths(config_remotes: list[str], own: str | None) -> set[str]:
    return {refs.repo_path(url) for url in [*config_remotes, *([own] if own else [])]}


MERGE_DECISIONS = "merge-conflicts.jsonl"


def merge_decisions(sudocode_dir: Path) -> list[Problem]:
    """What the merge driver decided and a human should check (`.sudocode/merge-conflicts.jsonl`, one JSON
    object per line: file, at, id, uuid, reason). Checked ones are deleted from that file by the human."""
    path = sudocode_dir / MERGE_DECISIONS
    if not path.exists():
        return []
    problems = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        try:
            item = json.loads(raw)
            message = f"{item['file']}: {item['id']}: {item['reason']} (merged {item['at']})"
        except (ValueError, KeyError, TypeError):
            continue
        problems.append(
            Problem("merge_decision", MERGE_DECISIONS, (number,), f"{message}; check it, then delete this line")
        )
    return problems
