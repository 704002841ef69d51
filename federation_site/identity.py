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
    return {"url": ident.url, "display_name": ident.display_name or ident.url, "repo": str(lay.root)}
