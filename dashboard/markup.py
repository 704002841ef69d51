"""How every page shows text: an issue's or spec's content, a request's description (written by another
repository: untrusted), as Markdown (markdown-it-py, CommonMark plus tables and strikethrough, raw HTML
off) sanitised by nh3 (Ammonia), with each `[[ref]]` (tracker.refs: local, `[[org/repo#id]]`, the
`{ depends-on }` suffix) turned into a link with a status chip. The template filter `markdown`
(dashboard/templatetags/pages.py) calls `render_markdown`; nothing else renders content.

A ref is replaced by an inert placeholder before Markdown sees the text and by our own escaped HTML after the
sanitiser, so neither Markdown syntax nor the sanitiser can change a ref, and a ref cannot inject markup.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import nh3
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from federation_site import identity
from remotes.models import CrossRepoReference, RemoteRepo
from remotes.selectors import entity_page_url, remotes_for_repo
from tracker.ids import kind_of_id
from tracker.models import Entity
from tracker.refs import Ref, parse_refs, repo_path

__all__ = ["RefLink", "ref_links", "render_markdown"]

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)
# What Markdown can produce, and nothing else (nh3's defaults allow more than we need).
_TAGS = {
    *("p", "br", "hr", "em", "strong", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"),
}
# No images (a remote's content could track who reads it) and no style attributes.
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_SCHEMES = {"http", "https", "mailto"}
# Chip classes for the statuses a ref can show; anything else is shown as "unknown".
CHIP_STATUSES = ("open", "in_progress", "blocked", "needs_review", "closed")


@dataclass(frozen=True)
class RefLink:
    """What one `[[ref]]` shows: its text, where it links (None: nowhere known), its status chip."""

    text: str
    href: str | None
    status: str | None  # one of CHIP_STATUSES or "unknown"; None for a spec (specs have no status)
    title: str | None
    rel_type: str | None

    def html(self) -> SafeString:
        chip = (
            format_html('<span class="chip chip-{0}">{1}</span>', self.status, self.status.replace("_", " "))
            if self.status
            else ""
        )
        kind = format_html('<span class="muted ref-type">{{ {0} }}</span>', self.rel_type) if self.rel_type else ""
        tooltip = self.title or ""
        if self.href:
            return format_html(
                '<span class="ref"><a href="{0}" title="{1}"><code>{2}</code></a> {3}{4}</span>',
                self.href, tooltip, self.text, chip, kind,
            )  # fmt: skip
        return format_html(
            '<span class="ref" title="{0}"><code>{1}</code> {2}{3}</span>', tooltip, self.text, chip, kind
        )


def _status(value: str | None) -> str:
    return value if value in CHIP_STATUSES else "unknown"


def _local_href(kind: str, entity_id: str) -> str | None:
    try:
        return reverse("dashboard:spec" if kind == "spec" else "dashboard:issue", args=[entity_id])
    except NoReverseMatch:  # an id another tool wrote with a "/" in it
        return None


def ref_links(refs: list[Ref], *, base_repo: str | None = None) -> list[RefLink]:
    """One RefLink per ref, in order, with two queries for all local refs and two for all remote ones.

    `base_repo`: the repository the text was written in when it is not this one (a request's description from
    another node): its local refs are then that repository's entities. A remote ref's status is the cached copy
    (remotes' cross_repo_references), its link the page on the remote's own node when its endpoint is known."""
    here = repo_path(identity.local_url()) if identity.local_url() else None
    base = repo_path(base_repo) if base_repo else here
    resolved: list[tuple[Ref, str | None]] = []  # (ref, its repo path or None for this repository)
    for ref in refs:
        repo = repo_path(ref.repo) if ref.repo else base
        resolved.append((ref, None if repo == here else repo))
    local_ids = {ref.target_id for ref, repo in resolved if repo is None}
    local = {e.sudocode_id: e for e in Entity.objects.filter(sudocode_id__in=local_ids)} if local_ids else {}
    remote_repos = {repo for _, repo in resolved if repo}
    cached: dict[tuple[str, str], dict] = {}
    sites: dict[str, RemoteRepo | None] = {}
    if remote_repos:
        all_remotes = list(RemoteRepo.objects.all())
        for repo in remote_repos:
            matches = remotes_for_repo(repo, all_remotes)
            sites[repo] = matches[0] if len(matches) == 1 else None
        remote_ids = {ref.target_id for ref, repo in resolved if repo}
        for row in CrossRepoReference.objects.filter(remote_id__in=remote_ids).exclude(cached_data=None):
            cached[(repo_path(row.repo), row.remote_id)] = row.cached_data or {}
    out = []
    for ref, repo in resolved:
        text = ref.display or (ref.canonical_ref if ref.repo else ref.target_id)
        kind = kind_of_id(ref.target_id) or "issue"
        if repo is None:
            entity = local.get(ref.target_id)
            out.append(
                RefLink(
                    text=text,
                    href=_local_href(entity.kind, entity.sudocode_id) if entity else None,
                    status=None if entity and not entity.is_issue else _status(entity.status if entity else None),
                    title=entity.title if entity else "not in this repository",
                    rel_type=ref.rel_type,
                )
            )
            continue
        data = cached.get((repo, ref.target_id), {})
        remote = sites.get(repo)
        out.append(
            RefLink(
                text=text,
                href=entity_page_url(remote, kind, ref.target_id) if remote else None,
                status=None if kind == "spec" and data else _status(data.get("status")),
                title=data.get("title"),
                rel_type=ref.rel_type,
            )
        )
    return out


def render_markdown(text: str | None, *, base_repo: str | None = None) -> SafeString:
    """`text` as sanitised HTML: Markdown rendered, refs linked with their status (see the module docstring)."""
    if not text:
        return mark_safe("")
    refs = parse_refs(text)
    links = ref_links(refs, base_repo=base_repo)
    nonce = secrets.token_hex(6)
    pieces, last = [], 0
    for i, ref in enumerate(refs):
        pieces += [text[last : ref.start], f"SDREF{nonce}N{i}Z"]
        last = ref.end
    pieces.append(text[last:])
    html = nh3.clean(
        _MD.render("".join(pieces)),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    html = re.sub(rf"SDREF{nonce}N(\d+)Z", lambda m: str(links[int(m[1])].html()), html)
    return mark_safe(html)  # noqa: S308 - sanitised by nh3 above; the refs' HTML is format_html's
