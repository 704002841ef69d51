"""The fast door (federation/fastdoor.py) and Django's door answer info and query alike.

A real node over HTTP: a plain request goes through the fast door (federation_site.asgi, before Django), the same
request with a query string through Django's middleware and the DRF view; and Django's test client in a process
of its own serving the same repository. Each scenario must give the same status, body (less its timestamps) and
important headers through all three."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import requests

from tests.conftest import REPO_ROOT, cli_env
from tests.nodes import Node, link

INFO = "/api/v1/federation/info"
QUERY = "/api/v1/federation/query"
CORRELATION = "fastdoor-parity-1"
# What a caller relies on: the body's type, the correlation id, the refusals' headers, and what
# SecurityMiddleware, django-csp and XFrameOptionsMiddleware add to every answer.
IMPORTANT = (
    "content-type",
    "x-correlation-id",
    "retry-after",
    "www-authenticate",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "content-security-policy",
    "x-frame-options",
    "x-sudocode-data-problem",
)

# Django's test client in a process serving the node's repository (its settings, its database): reads
# [{method, path, headers, body}] on stdin, prints [{status, headers, body}].
TEST_CLIENT = """
import json, sys
import django
django.setup()
from django.test import Client
out = []
for r in json.load(sys.stdin):
    response = Client().generic(r["method"], r["path"], r["body"].encode(), content_type="application/json",
                                headers=r["headers"])
    out.append({"status": response.status_code, "headers": dict(response.headers),
                "body": response.content.decode()})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("fastdoor")
    served = Node(root, "served", worker=False)
    for title in ("OAuth token endpoint", "Rate limits", "Docs"):
        assert served.cli("issue", "create", title, "--tags", "api").code == 0
    caller = Node(root, "caller", worker=False)
    key = link(caller, served, trust="verified")
    served.start()
    yield served, caller, key
    served.stop()


def _through_all_doors(served: Node, requests_: list[dict]) -> list[list[dict]]:
    """Each request through the fast door, Django's door over HTTP and Django's test client: [[fast, django,
    client], ...], each {status, headers (lower-case names), body (JSON)}."""
    host = f"127.0.0.1:{served.port}"
    for r in requests_:
        r["headers"] = {"X-Correlation-ID": CORRELATION, "Host": host, **r.get("headers", {})}
    over_http = []
    for r in requests_:
        answers = []
        for suffix in ("", "?door=django"):
            response = requests.request(
                r["method"], served.base + r["path"] + suffix, data=r["body"].encode(), headers=r["headers"], timeout=10
            )
            answers.append(
                {"status": response.status_code, "headers": dict(response.headers), "body": response.content.decode()}
            )
        over_http.append(answers)
    result = subprocess.run(
        [sys.executable, "-c", TEST_CLIENT],
        input=json.dumps(requests_),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=cli_env(SUDOCODE_REPO=str(served.repo), DJANGO_SETTINGS_MODULE="federation_site.settings"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = json.loads(result.stdout.strip().splitlines()[-1])
    out = []
    for (fast, django), test_client in zip(over_http, client, strict=True):
        answers = []
        for answer in (fast, django, test_client):
            headers = {name.lower(): value for name, value in answer["headers"].items()}
            answers.append({"status": answer["status"], "headers": headers, "body": json.loads(answer["body"])})
        out.append(answers)
    return out


def _same(answers: list[dict]) -> dict:
    """Assert the three doors agree (timestamps and the seconds of a Retry-After aside); returns the fast one."""
    fast, django, client = answers
    # Which door answered: DRF adds Allow to its answers, the fast door does not.
    assert "allow" not in fast["headers"], "the plain request did not go through the fast door"
    assert "allow" in django["headers"] and "allow" in client["headers"]

    def comparable(answer: dict) -> tuple:
        headers = {name: answer["headers"].get(name) for name in IMPORTANT}
        if headers["retry-after"] is not None:
            assert int(headers["retry-after"]) >= 1
            headers["retry-after"] = "n"
        # django-csp writes the directives in a set's order, which differs from one process to the next.
        headers["content-security-policy"] = sorted(headers["content-security-policy"].split("; "))
        return answer["status"], headers, _steady(answer["body"])

    assert comparable(fast) == comparable(django) == comparable(client)
    return fast


def _steady(body):
    """The body without what changes from one answer to the next: timestamps, the seconds left in a window."""
    if isinstance(body, dict):
        return {
            k: _steady(v) for k, v in body.items() if k not in ("timestamp", "cached_at", "retry_after", "built_at")
        }
    if isinstance(body, list):
        return [_steady(v) for v in body]
    if isinstance(body, str):
        return re.sub(r"try again in \d+ s", "try again in n s", body)
    return body


def _query(body: dict, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    return {"method": "POST", "path": QUERY, "body": json.dumps(body), "headers": headers}


def _info(key: str | None = None) -> dict:
    return {"method": "GET", "path": INFO, "body": "", "headers": {"Authorization": f"Bearer {key}"} if key else {}}


def test_the_fast_door_and_djangos_answer_alike(nodes):
    served, caller, key = nodes
    good, invalid, forbidden, anonymous, info, anonymous_info = _through_all_doors(
        served,
        [
            _query({"entity": "issue", "filters": {"status": "open"}}, key),
            _query({"entity": "issue", "limit": "many"}, key),
            _query({"entity": "issue", "include": ["relationships"]}),  # internal data: not for the untrusted
            _query({"entity": "issue"}),
            _info(key),
            _info(),
        ],
    )
    answer = _same(good)
    assert answer["status"] == 200 and len(answer["body"]["results"]) == 3
    assert answer["body"]["to"] == caller.identity
    assert answer["headers"]["x-correlation-id"] == CORRELATION
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["headers"]["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer["headers"]["content-security-policy"]
    answer = _same(invalid)
    assert answer["status"] == 400 and "limit" in json.dumps(answer["body"]["errors"])
    answer = _same(forbidden)
    assert answer["status"] == 403 and answer["body"]["error"] == "forbidden"
    answer = _same(anonymous)
    assert answer["status"] == 200 and "to" not in answer["body"]
    answer = _same(info)
    assert answer["status"] == 200 and answer["body"]["capabilities"]["trust_level"] == "verified"
    assert answer["body"]["capabilities"]["endpoints"]["rest"] == served.api
    answer = _same(anonymous_info)
    assert answer["body"]["capabilities"]["trust_level"] == "untrusted"


def test_an_unsigned_message_is_refused_alike_when_signatures_are_required(nodes):
    served, caller, key = nodes
    config = served.config()
    before = json.loads(json.dumps(config))
    next(r for r in config["remote_repos"] if r["url"] == caller.identity)["require_signatures"] = True
    served.write_config(config)
    try:
        query, info = _through_all_doors(served, [_query({"entity": "issue"}, key), _info(key)])
    finally:
        served.write_config(before)
    for answers in (query, info):
        answer = _same(answers)
        assert answer["status"] == 401 and answer["body"]["error"] == "unauthorized"
        assert "must sign its messages" in answer["body"]["detail"]
        assert answer["headers"]["www-authenticate"].startswith("Bearer")


def test_a_rate_limited_query_is_refused_alike(nodes):
    served, caller, key = nodes
    config = served.config()
    before = json.loads(json.dumps(config))
    config["rate_limits"]["per_repo"]["queries_per_minute"] = 1
    served.write_config(config)
    # The three doors must ask within one clock minute (the limit's window): not in its last 15 seconds.
    second = datetime.now(UTC).second
    if second >= 45:
        time.sleep(60.5 - second)
    try:
        # The first query of the minute may pass; every one after it is refused, through every door.
        requests.post(served.base + QUERY, json={"entity": "issue"}, headers={"Authorization": f"Bearer {key}"})
        (limited,) = _through_all_doors(served, [_query({"entity": "issue"}, key)])
    finally:
        served.write_config(before)
    answer = _same(limited)
    assert answer["status"] == 429 and answer["body"]["error"] == "rate_limited"
    assert "queries_per_minute" in answer["body"]["detail"]


def test_what_the_fast_door_leaves_to_django(nodes):
    served, _, key = nodes
    # A browser's request (Origin: CORS is django-cors-headers' work), HEAD: Django's door answers them.
    response = requests.get(served.base + INFO, headers={"Origin": "https://evil.example"}, timeout=10)
    assert response.status_code == 200 and "Allow" in response.headers
    response = requests.head(served.base + INFO, timeout=10)
    assert response.status_code == 200 and "Allow" in response.headers
    # A Host that ALLOWED_HOSTS refuses is Django's 400, not an answer.
    response = requests.get(served.base + INFO, headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 400
    # A body over the limit is refused by its Content-Length, before it is read.
    response = requests.post(
        served.base + QUERY,
        data=b"{" + b" " * (256 * 1024 + 10) + b"}",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400 and "the limit is 262144 bytes" in response.text
    assert "Allow" not in response.headers


# The fast door in a process of the node's own (its settings, its SQLite file): five discovers, each in a task of
# its own as a server runs them; prints how many database connections were opened.
FAST_DOOR_CONNECTIONS = """
import asyncio, json
import django
django.setup()
from django.db.backends.signals import connection_created
from federation import fastdoor
opened = []
connection_created.connect(lambda **kwargs: opened.append(1), weak=False)
scope = {"type": "http", "method": "GET", "path": "/api/v1/federation/info", "query_string": b"",
         "scheme": "http", "headers": [(b"host", b"127.0.0.1:8000")], "client": ("127.0.0.1", 50000)}

async def one():
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    await fastdoor.asgi_answer(scope, receive, send)
    return sent[0]["status"]

async def five():
    return [await asyncio.create_task(one()) for _ in range(5)]

print(json.dumps({"statuses": asyncio.run(five()), "opened": len(opened)}))
"""


def test_the_fast_door_keeps_its_database_connection_from_one_answer_to_the_next(nodes):
    # CONN_MAX_AGE is 0 on SQLite, so Django closes a connection after each request; opening one (and its WAL
    # pragmas) cost more than a whole answer.
    served, _, _ = nodes
    result = subprocess.run(
        [sys.executable, "-c", FAST_DOOR_CONNECTIONS],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=cli_env(SUDOCODE_REPO=str(served.repo), DJANGO_SETTINGS_MODULE="federation_site.settings"),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"statuses": [200] * 5, "opened": 1}


@pytest.mark.django_db(transaction=True)
def test_a_signature_over_a_url_with_a_query_string_verifies_on_djangos_door(node_repo):
    # The fast door takes no query string; Django's door passes its own to `answer`, which the signature covers.
    from types import SimpleNamespace

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from federation_site.config import default_config, write_config
    from federation_site.keys import NodeKey
    from remotes import services as remote_services
    from remotes.models import RemoteRepo
    from tests.remotes.test_signatures import send, signed

    key = NodeKey(Ed25519PrivateKey.generate())
    strict = "github.com/org/strict"
    config = default_config(url="github.com/org/api-service", display_name="API")
    config["remote_repos"] = [
        {"url": strict, "trust_level": "verified", "public_key": key.public_key, "require_signatures": True}
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    node = SimpleNamespace(keys={strict: remote_services.remote_rotate_key(remote=RemoteRepo.objects.get(url=strict))})
    target = "/api/v1/federation/query?via=django"
    response = send(node, strict, signed(key, url="http://testserver" + target), path=target)
    assert response.status_code == 200, response.content
    assert response.json()["to"] == strict
