"""Federated search (issue 13; the seed's Phase 4 `sudocode search "authentication bug" --all-repos`): full text
over this repository's issues and specs (tracker.search) and, when asked, over every remote at once through the
federated query's `search` filter, which each remote answers within what it lets this node see. Results are
labelled by repository and interleaved by rank (each node ranks its own)."""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from federation_site import identity
from remotes.sync import remotes_query_all
from tracker.selectors import entity_search


def search_everywhere(*, text: str, kinds: list[str], all_repos: bool = False, limit: int = 20) -> dict[str, Any]:
    """Returns {"results": [{"repo", "kind", "id", "title", "status", "canonical_ref", "snippet"}],
    "total": int (matches everywhere), "remotes": [{"url", "ok", "total", "error"}]} (remotes only with
    `all_repos`). At most `limit` results per kind and repository."""
    here = identity.repo_path(identity.local_url()) if identity.local_url() else "this repository"
    per_repo: list[list[dict]] = []
    total = 0
    remotes: list[dict] = []
    local: list[dict] = []
    for kind in kinds:
        page, count = entity_search(kind=kind, search=text, limit=limit, archived=False)
        total += count
        local += [
            {
                "repo": here,
                "kind": kind,
                "id": e.sudocode_id,
                "title": e.title,
                "status": e.status or None,
                "canonical_ref": f"{here}#{e.sudocode_id}",
                "snippet": getattr(e, "search_snippet", ""),
            }  # fmt: skip
            for e in page
        ]
        if all_repos:
            answer = remotes_query_all(query={"entity": kind, "filters": {"search": text}})
            total += answer["total"]
            remotes += [{k: r[k] for k in ("url", "ok", "total", "error")} for r in answer["remotes"]]
            by_repo: dict[str, list[dict]] = {}
            for row in answer["results"]:
                by_repo.setdefault(row["repo"], []).append(
                    {
                        "repo": row["repo"],
                        "kind": kind,
                        "id": row.get("id"),
                        "title": row.get("title"),
                        "status": row.get("status"),
                        "canonical_ref": row.get("canonical_ref"),
                        "snippet": row.get("snippet", ""),
                    }  # fmt: skip
                )
            per_repo += [rows[:limit] for rows in by_repo.values()]
    per_repo.insert(0, local)
    results = [row for rank in zip_longest(*per_repo) for row in rank if row is not None]
    return {"results": results, "total": total, "remotes": remotes}
