"""What the watching node's tests share: a node watching a remote, a fake remote (a local HTTP server that
records subscribe calls and serves a catch-up feed), and events signed as the remote would sign them."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from django.test import Client

from federation_site.config import default_config, write_config
from remotes import services as remote_services
from subscriptions import signing

LOCAL = "github.com/org/frontend"
REMOTE = "github.com/org/api-service"
OUR_REST = "https://frontend.example/api/v1"
WEBHOOK = "/api/v1/webhooks/cross-repo"


@dataclass
class FakeRemote:
    """api-service as seen from the network: subscribe, unsubscribe and the catch-up feed."""

    head_seq: int = 40
    fail_with: int | None = None  # answer every call with this status (503: down; 403: refused)
    subscribes: list[dict] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    feed_calls: list[dict] = field(default_factory=list)
    feed: list[dict] = field(default_factory=list)  # items {"previous_seq", "event"} in seq order
    entities: dict[str, dict] = field(default_factory=dict)  # what a query for ids finds, by id
    queries: list[list[str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> FakeRemote:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if fake.fail_with:
                    return self._answer(fake.fail_with, {"error": "nope", "detail": "refused by the fake"})
                if self.path.endswith("/federation/query"):
                    ids = body["query"]["filters"].get("ids") or []
                    fake.queries.append(ids)
                    results = [fake.entities[i] for i in ids if i in fake.entities]
                    return self._answer(200, {"type": "query_response", "results": results, "metadata": {}})
                fake.subscribes.append({"body": body, "authorization": self.headers.get("Authorization")})
                self._answer(
                    200,
                    {
                        "type": "subscribe_response",
                        "from": REMOTE,
                        "subscription_id": body["subscription_id"],
                        "status": "active",
                        "head_seq": fake.head_seq,
                        "events_url": f"{fake.api}/federation/events?subscription={body['subscription_id']}",
                    },
                )

            def do_DELETE(self):
                if fake.fail_with:
                    return self._answer(fake.fail_with, {"error": "nope"})
                fake.deletes.append(self.path.rsplit("/", 1)[-1])
                self._answer(200, {"status": "cancelled"})

            def do_GET(self):
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                fake.feed_calls.append(query)
                if fake.fail_with:
                    return self._answer(fake.fail_with, {"error": "down"})
                after, limit = int(query["after"]), int(query.get("limit", 100))
                items = [i for i in fake.feed if (i.get("event") or i)["seq"] > after][:limit]
                self._answer(200, {"events": items, "head_seq": fake.head_seq, "more": False})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def api(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}/api/v1"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def remote_issue(entity_id: str, status: str = "open", title: str = "Add user profile endpoint") -> dict:
    """An issue of api-service as its query answers show it."""
    return {
        "id": entity_id,
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, entity_id)),
        "kind": "issue",
        "title": title,
        "status": status,
        "priority": 1,
        "updated_at": "2025-11-06T12:00:00Z",
        "canonical_ref": f"org/api-service#{entity_id}",
    }


def watching_node(node_repo, fake: FakeRemote, *, rest: str | None = OUR_REST):
    """frontend, declaring its REST endpoint, with api-service (the fake) as a verified remote."""
    config = default_config(url=LOCAL, display_name="Frontend")
    if rest:
        config["endpoints"] = {"rest": rest}
    config["remote_repos"] = [
        {"url": REMOTE, "display_name": "api-service", "trust_level": "verified", "endpoint": fake.api}
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    from remotes.models import RemoteRepo

    remote = RemoteRepo.objects.get(url=REMOTE)
    remote_services.remote_set_token(remote=remote, token="key-frontend-at-api")
    return SimpleNamespace(repo=node_repo, remote=remote, fake=fake)


def event_body(
    seq: int,
    *,
    entity_id: str = "issue-084",
    status: str = "open",
    title: str = "Add user profile endpoint",
    event_type: str = "issue_updated",
    deleted: bool = False,
    entity_uuid: str = "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    changes: dict | None = None,
) -> dict:
    entity = {
        "id": entity_id,
        "uuid": entity_uuid,
        "kind": "issue",
        "canonical_ref": f"org/api-service#{entity_id}",
        "title": title,
        "status": status,
        "priority": 1,
        "updated_at": "2025-11-06T12:00:00Z",
    }
    if deleted:
        entity["deleted"] = True
    return {
        "id": str(uuid.uuid4()),
        "seq": seq,
        "type": event_type,
        "entity": entity,
        "changes": changes if changes is not None else {"status": {"from": "open", "to": status}},
        "timestamp": "2025-11-06T12:00:00.000000Z",
    }


def signed_post(
    subscription,
    event: dict,
    *,
    previous: int,
    timestamp: int | None = None,
    secret: str | None = None,
    token: str | None = None,
    sender: str = REMOTE,
    body: bytes | None = None,
    extra: dict | None = None,
):
    """POST `event` to our webhook as the remote would: signed, with its headers. Returns the response."""
    raw = (
        body
        if body is not None
        else json.dumps({"type": "event", "from": sender, "to": LOCAL, "event": event}).encode()
    )
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "HTTP_X_SUDOCODE_SIGNATURE": signing.sign(secret or subscription.secret, raw, timestamp=timestamp),
        "HTTP_X_SUDOCODE_EVENT_ID": event["id"],
        "HTTP_X_SUDOCODE_SEQUENCE": str(event["seq"]),
        "HTTP_X_SUDOCODE_PREVIOUS_SEQUENCE": str(previous),
        "HTTP_X_SUDOCODE_SUBSCRIPTION": subscription.subscription_id,
        "HTTP_X_SUDOCODE_FROM": sender,
        "HTTP_AUTHORIZATION": f"Bearer {token if token is not None else subscription.callback_auth['token']}",
        **(extra or {}),
    }
    return Client().post(WEBHOOK, data=raw, content_type="application/json", **headers)
