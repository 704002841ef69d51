"""Issue 14 between two real nodes: a page follows everything it shows (its remote blockers too), each node
keeps its own login on one host, an outgoing subscription the remote refused is retried (and by the "Retry
now" button), and the subscriptions page hears it. frontend's issue-101 is blocked by a local issue and by
api-service's issue-700; api-service closes and reopens issue-700 from its CLI while frontend's page listens."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.nodes import Node, eventually, node_cookie
from tests.requests_app.test_use_case_1 import (
    PASSWORD,
    STAFF,
    staff_session,
    staffed_pair,
)

pytestmark = pytest.mark.slow

REMOTE_ID, LOCAL_ID, LOCAL_BLOCKER = "issue-700", "issue-101", "issue-102"
REF = f"org/api-service#{REMOTE_ID}"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    with staffed_pair(tmp_path_factory.mktemp("live")) as (frontend, api):
        assert api.cli("issue", "create", "Profile endpoint", "--id", REMOTE_ID).code == 0
        assert frontend.cli("issue", "create", "Avatar storage", "--id", LOCAL_BLOCKER).code == 0
        made = frontend.cli(
            "issue", "create", "Profile page", "--id", LOCAL_ID, "--depends-on", LOCAL_BLOCKER,
            "-d", f"Blocked by: [[{REF}]]",
        )  # fmt: skip
        assert made.code == 0, made.err
        eventually(lambda: subscribed(frontend), what="frontend's subscription to api-service confirmed", timeout=30)
        yield frontend, api


def subscribed(frontend: Node) -> bool:
    rows = frontend.cli_json("subscriptions", "list", "--direction", "outgoing", "--format", "json")
    return any(r["delivery_status"] == "confirmed" and REMOTE_ID in json.dumps(r["watch"]) for r in rows)


def live_config(page: str) -> dict:
    found = re.search(r'<script id="live-config" type="application/json">(.*?)</script>', page, re.S)
    assert found, "the page has no live config"
    return json.loads(found.group(1))


def remote_status(page: str) -> str:
    """The status the page shows for the remote blocker (the first status chip after its reference)."""
    found = re.search(re.escape(REF) + r".*?status-([a-z_]+)", page, re.S)
    assert found, f"{REF} is not on the page"
    return found.group(1)


def ws_connect(node: Node, session: requests.Session):
    from websockets.sync.client import connect

    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return connect(f"ws://127.0.0.1:{node.port}/api/v1/ws", origin=node.base, additional_headers={"Cookie": cookie})


def subscribe_like_the_page(ws, config: dict) -> None:
    for i, watch in enumerate(config["watches"]):
        ws.send(
            json.dumps({"type": "subscribe", "subscription_id": f"page-{i}", "watch": watch, "since": config["since"]})
        )
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"


def next_message(ws, kind: str, *, timeout: float = 20, event: str | None = None) -> dict:
    """The next message of `kind` (of event type `event`), skipping others (the issue's own updates)."""
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message["type"] == kind and (event is None or message["event"]["type"] == event):
            return message


def test_one_browser_stays_logged_in_to_both_nodes(nodes):
    frontend, api = nodes
    browser = requests.Session()  # one cookie jar for 127.0.0.1, as a browser has: cookies ignore the port
    for node in (frontend, api):
        browser.get(f"{node.base}/admin/login/", timeout=10)
        answer = browser.post(
            f"{node.base}/admin/login/?next=/approvals/",
            data={"username": STAFF, "password": PASSWORD, "next": "/approvals/"},
            headers={
                "X-CSRFToken": browser.cookies[node.cookie_name("csrftoken")],
                "Referer": f"{node.base}/admin/login/",
            },
            timeout=10,
        )
        assert answer.status_code == 200 and answer.url.endswith("/approvals/"), answer.url
    names = {c.name for c in browser.cookies}
    assert {frontend.cookie_name("sessionid"), api.cookie_name("sessionid")} <= names, names
    for node in (frontend, api):  # logging in to the second did not log out of the first
        page = browser.get(f"{node.base}/approvals/", timeout=10, allow_redirects=False)
        assert page.status_code == 200 and 'data-live="queue"' in page.text


def test_the_issue_page_follows_its_remote_blocker_closed_and_reopened(nodes):
    frontend, api = nodes
    session = staff_session(frontend)
    page = session.get(f"{frontend.base}/issues/{LOCAL_ID}", timeout=30).text
    assert remote_status(page) == "open"
    config = live_config(page)
    with ws_connect(frontend, session) as ws:
        subscribe_like_the_page(ws, config)
        for status in ("closed", "open", "closed"):
            changed = api.cli("issue", "update", REMOTE_ID, "--status", status)
            assert changed.code == 0, changed.err
            # The local issue's event: its remote reference's cached state moved (the webhook from api-service).
            event = next_message(ws, "event", event="reference_updated")["event"]
            assert event["entity"]["id"] == LOCAL_ID
            assert event["changes"][f"cross_repo.{REF}"]["to"]["cached"]["status"] == status
            again = session.get(f"{frontend.base}/issues/{LOCAL_ID}", headers={"X-Live-Refresh": "1"}, timeout=30)
            assert remote_status(again.text) == status


def test_a_refused_subscription_is_retried_by_the_button_and_the_page_hears_it(nodes):
    frontend, api = nodes
    assert api.cli("remote", "trust", frontend.identity, "untrusted").code == 0  # api-service stops trusting us
    assert frontend.cli("issue", "create", "Settings page", "-d", "Needs [[org/api-service#issue-701]]").code == 0
    row = eventually(lambda: refused(frontend), what="frontend's subscription refused", timeout=30)
    assert row["delivery_status"] == "retrying" and "403" in row["last_error"]

    session = staff_session(frontend)
    page = session.get(f"{frontend.base}/subscriptions/", timeout=30).text
    assert "Retry now" in page and row["subscription_id"] in page
    with ws_connect(frontend, session) as ws:
        subscribe_like_the_page(ws, live_config(page))
        assert api.cli("remote", "trust", frontend.identity, "verified").code == 0  # trusted again, over there
        answer = session.post(
            f"{frontend.base}/subscriptions/{row['subscription_id']}/retry",
            data={"csrfmiddlewaretoken": node_cookie(session.cookies, "csrftoken")},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 302
        assert next_message(ws, "changed")["kind"] == "subscription"
    eventually(lambda: confirmed(frontend, row["subscription_id"]), what="the retry confirmed", timeout=30)
    assert "Retry now" not in session.get(f"{frontend.base}/subscriptions/", timeout=30).text


def refused(frontend: Node) -> dict | None:
    rows = frontend.cli_json("subscriptions", "list", "--direction", "outgoing", "--format", "json")
    return next((r for r in rows if r["last_error"] and r["delivery_status"] == "retrying"), None)


def confirmed(frontend: Node, subscription_id: str) -> bool:
    rows = frontend.cli_json("subscriptions", "list", "--direction", "outgoing", "--format", "json")
    return any(r["subscription_id"] == subscription_id and r["delivery_status"] == "confirmed" for r in rows)


def test_federation_pages_need_a_login_and_content_needs_public_read(nodes):
    frontend, _ = nodes
    anonymous = requests.Session()
    for path in ("/remotes/", "/subscriptions/", "/approvals/", "/audit/", "/graph/", "/", f"/issues/{LOCAL_ID}"):
        answer = anonymous.get(f"{frontend.base}{path}", allow_redirects=False, timeout=10)
        assert answer.status_code == 302 and "/login/" in answer.headers["Location"], path
    config = frontend.config()
    frontend.write_config({**config, "web": {"public_read": True}})
    try:
        page = eventually(
            lambda: (r := anonymous.get(f"{frontend.base}/issues/{LOCAL_ID}", timeout=10)).status_code == 200 and r,
            what="the issue page public",
        )
        assert "live.js" not in page.text  # the socket is staff only
        assert anonymous.get(f"{frontend.base}/remotes/", allow_redirects=False, timeout=10).status_code == 302
    finally:
        frontend.write_config(config)
