"""How this node names itself (from federation.config.json's local_identity, else the folder name)."""

from __future__ import annotations

from federation_site import node


def describe() -> dict:
    try:
        lay = node.layout()
    except node.RepoNotFound:
        return {"url": "", "display_name": "sudocode federation", "repo": ""}
    cfg = node.config()
    if cfg is None:
        return {"url": "", "display_name": lay.root.name, "repo": str(lay.root)}
    ident = cfg.local_identity
    if ident is None:
        return {"url": "", "display_name": lay.root.name, "repo": str(lay.root)}
    return {"url": ident.url, "display_name": ident.display_name or ident.url, "repo": str(lay.root)}


def local_url() -> str:
    """This node's identity ("github.com/org/repo"), or "" when federation is not set up."""
    try:
        cfg = node.config()
    except node.RepoNotFound:
        return ""
    return cfg.local_identity.url if cfg and cfg.local_identity else ""


SERVED_URL_ENV = "SUDOCODE_SERVED_URL"


def rest_base() -> str:
    """Where other nodes reach our REST API ("https://node.example/api/v1"): `endpoints.rest` in the config, else
    what `sudocode-fed serve` is bound to (it exports it to its workers), else ""."""
    import os

    try:
        cfg = node.config()
    except node.RepoNotFound:
        cfg = None
    if cfg is not None and cfg.endpoints.rest:
        return str(cfg.endpoints.rest).rstrip("/")
    return os.environ.get(SERVED_URL_ENV, "").rstrip("/")


def repo_path(url: str) -> str:
    """How references name a repository: "github.com/org/api" -> "org/api" (a host-less identity stays)."""
    head, _, rest = url.partition("/")
    return rest if ("." in head or ":" in head) and rest else url


def canonical_ref(entity_id: str) -> str:
    """ "org/repo#issue-042" for one of this repository's entities (just the id when there is no identity)."""
    url = local_url()
    return f"{repo_path(url)}#{entity_id}" if url else entity_id
