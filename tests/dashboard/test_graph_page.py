"""The /graph/ page and its JSON endpoint /api/v1/graph: the page is served with the vendored cytoscape.js from
static/ (no CDN: it works offline), the endpoint answers the graph of remotes.graph and names a bad parameter,
and the issue page links to the graph centred on the issue. (No browser here: the drawing itself is not run.)"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from federation_site.config import default_config, write_config
from remotes import services as remote_services
from tests.conftest import git
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def node(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.outgoing.references_changed", lambda: None)
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    git(node_repo, "add", "-A")
    git(node_repo, "commit", "-qm", "init")
    remote_services.remotes_reconcile(force=True)
    return node_repo


def test_the_endpoint_answers_the_graph_with_root_and_depth(node):
    a = services.issue_create(title="A", actor="ana")
    b = services.issue_create(title="B", actor="ana", relationships=[("depends-on", a.sudocode_id)])
    services.issue_create(title="C", actor="ana", relationships=[("depends-on", b.sudocode_id)])
    whole = staff_client().get("/api/v1/graph")
    assert whole.status_code == 200
    assert {n["title"] for n in whole.json()["nodes"]} == {"A", "B", "C"}
    assert len(whole.json()["edges"]) == 2 and whole.json()["cycles"] == []
    near = staff_client().get("/api/v1/graph", {"root": a.sudocode_id, "depth": 1}).json()
    assert near["root"] == f"org/frontend#{a.sudocode_id}" and {n["title"] for n in near["nodes"]} == {"A", "B"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"root": "i-nope"}, "root"),
        ({"depth": "-1"}, "depth"),
        ({"depth": "x"}, "depth"),
        ({"cross_repo": "maybe"}, "cross_repo"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(node, params, field):
    response = staff_client().get("/api/v1/graph", params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_the_page_loads_the_vendored_library_from_static_and_it_is_served(node):
    page = staff_client().get("/graph/", {"root": "i-abcd", "depth": "2"})
    assert page.status_code == 200
    html = page.content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert "/static/vendor/cytoscape/cytoscape.min.js" in scripts and "/static/js/graph.js" in scripts
    assert not [s for s in scripts if s.startswith(("http:", "https:", "//"))]  # nothing from a CDN
    assert '"api": "/api/v1/graph"' in html and '"root": "i-abcd"' in html and '"depth": "2"' in html
    library = Client().get("/static/vendor/cytoscape/cytoscape.min.js")
    assert library.status_code == 200
    body = b"".join(library.streaming_content) if library.streaming else library.content
    assert b"cytoscape" in body[:2000] and len(body) > 100_000
    assert Client().get("/static/js/graph.js").status_code == 200


def test_the_issue_page_links_to_the_graph_centred_on_it(node):
    issue = services.issue_create(title="Checkout", actor="ana")
    page = staff_client().get(f"/issues/{issue.sudocode_id}").content.decode()
    assert f'href="/graph/?root={issue.sudocode_id}&amp;depth=3"' in page


def staff_client() -> Client:
    browser = Client()
    browser.force_login(User.objects.get_or_create(username="ops", defaults={"is_staff": True})[0])
    return browser
