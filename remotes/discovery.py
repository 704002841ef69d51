"""Discovering many repositories at once (issue 13, Use Case 3: `remote discover github.com/org/* --auto-add`).

A node may publish a **directory**: itself (`discovery.listed`) and the remotes that agreed to be listed
(`remote_repos[].listed`), readable by callers of at least `discovery.list_to` trust (GET
/api/v1/federation/directory). `remote discover PATTERN` reads the directories named in `discovery.sources` (or
given), keeps the repositories whose identity matches the glob, asks each of them `discover` in parallel, and
with `auto_add` declares the ones that answered as remotes. The config file stays the truth: adding goes through
remotes.services.remote_add.
"""

from __future__ import annotations

import fnmatch
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from federation_site import identity, node
from remotes.client import HttpPolicy, RemoteClient, RemoteError
from remotes.models import RemoteRepo
from remotes.policy import Caller, PermissionDenied
from remotes.urlguard import UrlGuard

TRUST_RANK = {"untrusted": 0, "verified": 1, "trusted": 2}
DISCOVER_WORKERS = 16
ONE_TRY = HttpPolicy(connect_timeout=3.0, read_timeout=10.0, retries=0)  # discovery reports, it does not insist


def directory_for(caller: Caller, *, served_rest: str = "") -> dict[str, Any]:
    """The directory_response for `caller`: {"type", "from", "repositories": [{"url", "display_name",
    "endpoint", "description"}]}. PermissionDenied below `discovery.list_to`. `served_rest`: this node's REST base
    as the caller reached it, when the config declares none."""
    cfg = node.config()
    settings = cfg.discovery if cfg else None
    needed = settings.list_to if settings else "verified"
    if TRUST_RANK[caller.trust_level] < TRUST_RANK[needed]:
        raise PermissionDenied(
            f"{caller} has trust level {caller.trust_level}; this node shows its directory from {needed} up "
            "(discovery.list_to)"
        )
    entries = []
    if settings and settings.listed:
        described = identity.describe()
        rest = str(cfg.endpoints.rest) if cfg.endpoints.rest else served_rest
        entries.append(
            {
                "url": described["url"],
                "display_name": described["display_name"],
                "endpoint": rest or None,
                "description": described.get("description") or "",
            }  # fmt: skip
        )
    listed = {r.url.lower() for r in (cfg.remote_repos if cfg else []) if r.listed}
    for remote in RemoteRepo.objects.order_by("url"):
        if remote.url.lower() in listed:
            entries.append(
                {
                    "url": remote.url,
                    "display_name": remote.display_name,
                    "endpoint": remote.rest_endpoint or None,
                    "description": "",
                }  # fmt: skip
            )
    return {"type": "directory_response", "from": identity.local_url() or None, "repositories": entries}


def remotes_discover(
    *, pattern: str, sources: list[str] | None = None, auto_add: bool = False, trust_level: str = "untrusted",
    actor: str,
) -> dict[str, Any]:  # fmt: skip
    """Read the directories, match `pattern` (a glob over identities, case-insensitive, e.g. github.com/org/*),
    ask every match `discover` at once, and with `auto_add` declare those that answered at `trust_level`.

    Returns {"sources": [{"url", "ok", "error", "listed": int}], "found": [{"url", "display_name", "endpoint",
    "reachable": bool, "operations": [...] | None, "error": str | None, "known": bool (already a remote),
    "added": bool}]}. ValueError when no directory is named (neither `sources` nor discovery.sources)."""
    from remotes.services import remote_add

    cfg = node.config()
    urls = list(sources or []) or [str(s) for s in (cfg.discovery.sources if cfg else [])]
    if not urls:
        raise ValueError("no directory to read: pass --source URL, or list directories in discovery.sources")
    read = [_read_directory(url) for url in urls]
    own = (identity.local_url() or "").lower()
    known = {r.url.lower() for r in RemoteRepo.objects.all()}
    matches: dict[str, dict] = {}
    for _, entries in read:
        for entry in entries:
            url = str(entry.get("url") or "")
            if url and url.lower() != own and fnmatch.fnmatchcase(url.lower(), pattern.lower()):
                matches.setdefault(url.lower(), entry)
    found = list(matches.values())
    # An endpoint a directory hands us is a URL from outside (issue 17): vouched for when it is on the origin of
    # one of our remotes or on a directory's own host (an admin named that directory), else public https only.
    guard = UrlGuard.for_endpoints(
        [r.rest_endpoint for r in RemoteRepo.objects.exclude(rest_endpoint="")],
        vouched_hosts=[urlsplit(url).hostname or "" for url in urls],
    )
    with ThreadPoolExecutor(max_workers=max(1, min(DISCOVER_WORKERS, len(found)))) as pool:
        answers = list(pool.map(functools.partial(_discover_one, guard=guard), found))
    for item in answers:
        item["known"] = item["url"].lower() in known
        item["added"] = False
        if auto_add and item["reachable"] and not item["known"]:
            remote_add(url=item["url"], actor=actor, trust_level=trust_level, endpoint=item["endpoint"],
                       display_name=item["display_name"], discover=True)  # fmt: skip
            item["added"] = True
    return {
        "sources": [
            {"url": url, "ok": error is None, "error": error, "listed": len(entries)}
            for url, (error, entries) in zip(urls, read, strict=True)
        ],  # fmt: skip
        "found": sorted(answers, key=lambda item: item["url"].lower()),
    }


def _read_directory(url: str) -> tuple[str | None, list[dict]]:
    """(error, entries) of the directory at the REST base `url`, asked with our key when it is a remote."""
    from federation_site.secrets import get_secret, token_env_name

    base = url.rstrip("/")
    remote = RemoteRepo.objects.filter(rest_endpoint=base).first()
    token = get_secret(node.layout().secrets_path, token_env_name(remote.url)) if remote else None
    try:
        data = RemoteClient(base, token=token, policy=ONE_TRY).get("/federation/directory").data
    except (RemoteError, ValueError) as exc:
        return str(exc), []
    entries = data.get("repositories")
    if not isinstance(entries, list):
        return f"{base}/federation/directory is not a directory (no repositories list)", []
    return None, [e for e in entries if isinstance(e, dict)]


def _discover_one(entry: dict, *, guard: UrlGuard) -> dict[str, Any]:
    item = {"url": str(entry["url"]), "display_name": entry.get("display_name") or str(entry["url"]).rsplit("/")[-1],
            "endpoint": entry.get("endpoint"), "reachable": False, "operations": None, "error": None}  # fmt: skip
    try:
        if not item["endpoint"]:
            item["error"] = "the directory gives no endpoint"
            return item
        answer = RemoteClient(str(item["endpoint"]), policy=ONE_TRY, guard=guard).get("/federation/info").data
        item["reachable"] = True
        item["operations"] = (answer.get("capabilities") or {}).get("operations")
    except (RemoteError, ValueError) as exc:
        item["error"] = str(exc)
    return item
