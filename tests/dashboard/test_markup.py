"""Content as every page shows it (dashboard.markup, the `markdown` filter): Markdown rendered, sanitised (remote
content is untrusted), `[[refs]]` linked with a status chip: local ones to their page, remote ones to the page on
their own node when its endpoint is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.template import Context, Template
from django.utils import timezone

from dashboard.markup import render_markdown
from federation_site.config import default_config, write_config
from remotes import services as remote_services
from remotes.models import CrossRepoReference
from tests.conftest import git
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

API = "github.com/org/api-service"


@pytest.fixture
def node(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.outgoing.references_changed", lambda: None)
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    monkeypatch.setattr("remotes.sync.remote_query", lambda **kw: {"results": []})
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    config["remote_repos"] = [
        {
            "url": API,
            "display_name": "api-service",
            "trust_level": "verified",
            "endpoint": "http://api.test:8001/api/v1",
        },
        {"url": "github.com/org/odd", "display_name": "odd", "trust_level": "verified", "endpoint": "http://odd.test/"},
    ]
    config["web"] = {"public_read": True}  # anonymous readers too (what they may not see is tested)
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    git(node_repo, "add", "-A")
    git(node_repo, "commit", "-qm", "init")
    remote_services.remotes_reconcile(force=True)
    return node_repo


class Elements(HTMLParser):
    """The elements and attributes a browser would build from the HTML (escaped text is only text)."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize(
    "evil",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        '<a href="https://x.test" onclick="steal()">x</a>',
        "![pixel](https://tracker.test/p.gif)",
        "<iframe src=https://x.test></iframe>",
        '[[i-abcd|"><script>alert(1)</script>]]',
        '[x](https://x.test "a\\" onmouseover=\\"alert(1)")',
    ],
)
def test_untrusted_content_cannot_inject_markup(node, evil):
    html = str(render_markdown(f"Hello\n\n{evil}\n", base_repo=API))

    elements = Elements(html).tags
    assert {tag for tag, _ in elements} <= {"p", "a", "code", "span"}, html
    for _tag, attrs in elements:
        assert set(attrs) <= {"href", "title", "rel", "class"}, html
        assert (attrs.get("href") or "http://").startswith(("http://", "https://", "/")), html
    assert "<p>Hello</p>" in html


def test_markdown_is_rendered(node):
    html = str(
        render_markdown("# Plan\n\n- **one**\n- `two`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[site](https://x.test)")
    )

    assert "<h1>Plan</h1>" in html and "<strong>one</strong>" in html and "<code>two</code>" in html
    assert "<td>1</td>" in html
    assert '<a href="https://x.test" rel="noopener noreferrer nofollow">site</a>' in html


def test_refs_become_links_with_their_status_chip(node):
    blocker = services.issue_create(title="Login form", actor="t", status="blocked")
    spec = services.spec_create(title="Auth design", actor="t")
    issue = services.issue_create(
        title="Page",
        actor="t",
        content=(
            f"Needs [[{blocker.sudocode_id}]] and [[{spec.sudocode_id}|the design]].\n\n"
            "Then [[org/api-service#issue-042]]{ depends-on } and [[org/api-service#i-gone]],"
            " [[org/odd#i-odd1]] and [[org/unknown#i-what]]."
        ),
    )
    remote_services.references_rebuild()
    CrossRepoReference.objects.filter(remote_id="issue-042").update(
        cached_data={"title": "Billing <schema>", "status": "closed"}, last_fetched_at=timezone.now()
    )

    html = str(render_markdown(issue.content))

    assert (
        f'<a href="/issues/{blocker.sudocode_id}" title="Login form"><code>{blocker.sudocode_id}</code></a>'
        ' <span class="chip chip-blocked">blocked</span>'
    ) in html
    assert f'<a href="/specs/{spec.sudocode_id}" title="Auth design"><code>the design</code></a>' in html
    assert (
        '<a href="http://api.test:8001/issues/issue-042" title="Billing &lt;schema&gt;">'
        '<code>org/api-service#issue-042</code></a> <span class="chip chip-closed">closed</span>'
        '<span class="muted ref-type">{ depends-on }</span>'
    ) in html
    assert 'href="http://api.test:8001/issues/i-gone"' in html and "chip-unknown" in html
    # No link where the remote's pages are unknown: an endpoint that is not a node's /api/v1, or no remote.
    assert '<code>org/odd#i-odd1</code> <span class="chip chip-unknown">unknown</span>' in html
    assert '<code>org/unknown#i-what</code> <span class="chip chip-unknown">unknown</span>' in html
    assert "{ depends-on }</span>" in html and "]]" not in html


def test_a_request_from_another_node_resolves_its_local_refs_there(node):
    services.issue_create(title="Ours", actor="t", sudocode_id="issue-001")

    html = str(render_markdown("Blocks [[issue-001]]", base_repo=API))

    assert 'href="http://api.test:8001/issues/issue-001"' in html and 'href="/issues/issue-001"' not in html


def test_the_filters_every_page_loads(node):
    moment = datetime(2026, 11, 30, 2, 5, 9, tzinfo=UTC)
    template = Template("{% load pages %}{{ text|markdown }}|{{ moment|when }}|{{ iso|when }}|{{ none|when }}")
    out = template.render(Context({"text": "*hi*", "moment": moment, "iso": "2026-11-30T02:05:09+00:00", "none": None}))
    time = '<time datetime="2026-11-30T02:05:09+00:00" title="2026-11-30 02:05 UTC">2026-11-30 02:05 UTC</time>'
    assert out == f"<p><em>hi</em></p>\n|{time}|{time}|"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=5), "under a minute"),
        (timedelta(minutes=1, seconds=5), "1 minute"),
        (timedelta(minutes=59), "59 minutes"),
        (timedelta(hours=2, minutes=10), "2 hours 10 minutes"),
        (timedelta(hours=3), "3 hours"),
        (timedelta(days=3, hours=1), "3 days"),
    ],
)
def test_a_wait_is_never_blank(delta, text):
    assert Template("{% load pages %}{{ d|duration }}").render(Context({"d": delta})) == text
