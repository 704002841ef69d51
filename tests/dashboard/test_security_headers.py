"""Issue 17: every page carries the security headers, its HTML runs only our own static files (no inline script,
style attribute or event handler), and CORS lets in exactly the origins federation.config.json lists."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from federation_site.config import default_config, write_config
from remotes import services as remote_services
from requests_app.models import CrossRepoRequest
from tracker import services

pytestmark = pytest.mark.django_db(transaction=True)

APP = "https://app.example.com"
POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(response) -> dict[str, str]:
    """The Content-Security-Policy header as {directive: sources} (django-csp does not keep their order)."""
    pairs = (part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip())
    return {name: " ".join(sorted(sources.split())) for name, sources in pairs}


@pytest.fixture
def node(node_repo):
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["remote_repos"] = [
        {"url": "github.com/org/frontend", "trust_level": "verified", "endpoint": "http://127.0.0.1:9/api/v1"},
        {"url": "github.com/org/billing", "trust_level": "verified", "endpoint": "http://billing.example.com/api/v1"},
        {"url": "github.com/org/search", "trust_level": "verified", "endpoint": "https://search.example.com/api/v1"},
    ]
    config["cors"] = {"allowed_origins": [APP]}
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    services.issue_create(title="Seen", actor="t", sudocode_id="issue-001")
    services.spec_create(title="Spec", actor="t", sudocode_id="spec-001")
    now = timezone.now()
    CrossRepoRequest.objects.create(
        request_id="req-1",
        direction="incoming",
        from_repo="github.com/org/frontend",
        to_repo="github.com/org/api-service",
        request_type="create_issue",
        payload={"type": "mutate", "data": {"title": "x"}},
        created_at=now,
        updated_at=now,
    )
    return node_repo


@pytest.fixture
def staff():
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True, is_superuser=True)
    client = Client()
    client.login(username="maintainer", password="pw")
    return client


PAGES = [
    "/",
    "/issues/issue-001",
    "/specs/spec-001",
    "/approvals/",
    "/approvals/req-1",
    "/subscriptions/",
    "/remotes/",
    "/graph/",
    "/audit/",
]


def _inline_code(html: str) -> list[str]:
    """What a strict policy would block in `html`: inline scripts (json_script data blocks are data), style
    attributes and <style> blocks, event-handler attributes, javascript: URLs."""
    found = []
    for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
        attributes, body = match.groups()
        if "src=" not in attributes and 'type="application/json"' not in attributes and body.strip():
            found.append(match.group(0)[:80])
    found += re.findall(r"<style\b", html, re.I)
    found += re.findall(r"\sstyle\s*=", html, re.I)
    found += re.findall(r"\son[a-z]+\s*=", html, re.I)
    found += re.findall(r"javascript:", html, re.I)
    return found


@pytest.mark.parametrize("path", PAGES)
def test_every_page_carries_the_security_headers_and_no_inline_code(node, staff, path):
    response = staff.get(path)
    assert response.status_code == 200, path
    assert policy(response) == POLICY
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert _inline_code(response.content.decode()) == []


def test_the_api_docs_keep_working_under_their_own_policy(node, staff):
    page = staff.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert _inline_code(html) == []
    assert policy(page) == {**POLICY, "img-src": "'self' data:"}
    script = re.search(r'<script src="([^"]*script[^"]*)"', html).group(1).replace("&amp;", "&")
    init = staff.get(script)  # Swagger UI's start-up script, served as a file of its own
    assert init.status_code == 200 and init["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in init.content.decode()
    assert staff.get("/api/schema/").status_code == 200


def test_the_login_page_and_the_api_carry_the_headers_too(node):
    for path in ("/admin/login/", "/api/v1/issues"):
        response = Client().get(path)
        assert policy(response) == POLICY, path
        assert response["X-Content-Type-Options"] == "nosniff"


def test_a_cors_preflight_from_a_listed_origin_is_allowed(node):
    response = Client().options(
        "/api/v1/federation/query",
        HTTP_ORIGIN=APP,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "authorization" in response["Access-Control-Allow-Headers"]
    answer = Client().get("/api/v1/federation/info", HTTP_ORIGIN=APP)
    assert answer["Access-Control-Allow-Origin"] == APP


def test_an_origin_not_listed_or_a_page_gets_no_cors_headers(node):
    stranger = Client().options(
        "/api/v1/federation/query", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in stranger
    page = Client().get("/remotes/", HTTP_ORIGIN=APP)  # pages are not the API
    assert "Access-Control-Allow-Origin" not in page


def test_by_default_no_origin_is_allowed(node_repo):
    write_config(
        node_repo / ".sudocode" / "federation.config.json", default_config(url="github.com/org/x", display_name="X")
    )
    response = Client().get("/api/v1/federation/info", HTTP_ORIGIN=APP)
    assert "Access-Control-Allow-Origin" not in response


def test_the_remotes_page_and_status_warn_about_plain_http_off_this_machine(node, staff):
    from remotes.selectors import plain_http_remotes

    [plain] = plain_http_remotes()  # not the loopback one, not the https one
    assert plain["url"] == "github.com/org/billing"
    assert "plain http:// endpoint (http://billing.example.com/api/v1)" in plain["message"]
    page = staff.get("/remotes/").content.decode()
    assert "Remotes reached over plain http:// across the network" in page
    assert plain["message"] in page.replace("&#x27;", "'")
