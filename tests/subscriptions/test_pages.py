"""The subscriptions dashboard (staff only, CSRF-protected redeliver), the admin, and the CLI commands."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from federation_site.node import RepoLayout
from subscriptions.models import Subscription
from sudocode_cli import runtime
from sudocode_cli.main import main

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "f" * 64


def make(sid: str, *, direction: str = "incoming", **fields) -> Subscription:
    now = timezone.now()
    values = {
        "direction": direction,
        "from_repo": "github.com/org/frontend" if direction == "incoming" else "github.com/org/api-service",
        "to_repo": "github.com/org/api-service" if direction == "incoming" else "github.com/org/frontend",
        "watch_config": {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}},
        "callback_url": "http://127.0.0.1:9/api/v1/webhooks/cross-repo",
        "callback_auth": {"type": "bearer", "token": "whk-token-never-shown"},
        "created_at": now,
        "updated_at": now,
        "secret": SECRET,
        **fields,
    }
    return Subscription.objects.create(subscription_id=sid, **values)


@pytest.fixture
def subscriptions(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    make("sub-live", cursor_seq=4, last_seq=3, event_count=3)
    make("sub-dead", delivery_status="dead", attempts=15, last_error="gave up after 15 attempts: HTTP 503")
    make("sub-ours", direction="outgoing", auto=True, last_seq=7, delivery_status="confirmed")


@pytest.fixture
def staff():
    User.objects.create_user("maintainer", "m@example.com", "pw", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    token = client.get("/admin/login/").cookies[settings.CSRF_COOKIE_NAME].value
    client.post("/admin/login/", {"username": "maintainer", "password": "pw", "csrfmiddlewaretoken": token})
    return client


def test_the_dashboard_is_for_staff_only(subscriptions):
    response = Client().get("/subscriptions/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_dashboard_shows_both_directions_and_never_a_secret(subscriptions, staff):
    page = staff.get("/subscriptions/").content.decode()
    for text in ("sub-live", "sub-dead", "sub-ours", "github.com/org/frontend", "issue: labels=frontend-blocking"):
        assert text in page
    assert "gave up after 15 attempts" in page
    assert page.count(">Redeliver</button>") == 1
    assert SECRET not in page and "whk-token-never-shown" not in page
    assert 'href="/subscriptions/"' in staff.get("/approvals/").content.decode()  # in the nav


def test_redeliver_needs_csrf_and_revives_a_dead_stream(subscriptions, staff):
    assert staff.post("/subscriptions/sub-dead/redeliver").status_code == 403
    token = staff.cookies[settings.CSRF_COOKIE_NAME].value
    response = staff.post("/subscriptions/sub-dead/redeliver", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    row = Subscription.objects.get(pk="sub-dead")
    assert (row.delivery_status, row.attempts) == ("pending", 0)
    assert "delivering again" in staff.get("/subscriptions/").content.decode()
    assert staff.post("/subscriptions/sub-unknown/redeliver", {"csrfmiddlewaretoken": token}).status_code == 404


def test_the_admin_lists_subscriptions_without_their_secret(subscriptions, staff):
    listing = staff.get("/admin/subscriptions/subscription/")
    assert listing.status_code == 200 and "sub-live" in listing.content.decode()
    detail = staff.get("/admin/subscriptions/subscription/sub-live/change/").content.decode()
    assert "sub-live" in detail
    assert SECRET not in detail and "whk-token-never-shown" not in detail


@pytest.fixture
def cli(node_repo, monkeypatch, capsys):
    """The CLI's commands, run in this process against the test database."""
    monkeypatch.setattr(runtime, "_ready", RepoLayout(node_repo))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_the_cli_lists_subscriptions(subscriptions, cli):
    code, out, _ = cli("subscriptions", "list", "--format", "json")
    assert code == 0
    rows = {row["subscription_id"]: row for row in json.loads(out)}
    assert set(rows) == {"sub-live", "sub-dead", "sub-ours"}
    assert rows["sub-dead"]["delivery_status"] == "dead" and rows["sub-dead"]["attempts"] == 15
    assert rows["sub-live"]["cursor_seq"] == 4 and rows["sub-ours"]["auto"] is True
    assert SECRET not in out and "whk-token-never-shown" not in out

    code, out, _ = cli("subscriptions", "list", "--direction", "outgoing")
    assert code == 0 and "sub-ours" in out and "sub-live" not in out


def test_the_cli_redelivers_a_dead_subscription(subscriptions, cli):
    code, out, _ = cli("subscription", "redeliver", "sub-dead")
    assert code == 0 and "sub-dead" in out
    assert Subscription.objects.get(pk="sub-dead").delivery_status == "pending"
    code, _, err = cli("subscription", "redeliver", "sub-dead")
    assert code == 1 and "not dead" in err
    code, _, err = cli("subscription", "redeliver", "sub-nope")
    assert code == 1 and "subscriptions list" in err
