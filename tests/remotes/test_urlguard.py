"""Issue 17's URL guard: what a remote may make this node call. No test sends traffic outside 127.0.0.0/8: names
resolve through a test resolver (`remotes.urlguard.resolve` replaced), and every public address it hands out is
refused at connect time before a packet leaves."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from federation_site.config import default_config, write_config
from remotes import services as remote_services
from remotes import urlguard
from remotes.client import RemoteBadResponse, RemoteClient, RemoteRejected, close_sessions, post_webhook
from remotes.models import RemoteRepo
from remotes.urlguard import UrlGuard, UrlRefused
from subscriptions.models import Subscription

PUBLIC_IP = "93.184.216.34"  # what the test resolver says a public name is; never connected to


@pytest.fixture
def resolver(monkeypatch):
    """Names as this test says: `names[host]` is a list of addresses (a list per call, when a list of lists)."""
    names: dict[str, list] = {}
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in names:
            raise UrlRefused(f"{host} does not resolve")
        answer = names[host]
        return answer.pop(0) if answer and isinstance(answer[0], list) else answer

    monkeypatch.setattr(urlguard, "resolve", resolve)
    yield SimpleNamespace(names=names, calls=calls)
    close_sessions()


# --- the table ------------------------------------------------------------------------------------------------

VOUCHED = UrlGuard.for_endpoints(["http://127.0.0.1:8001/api/v1"])

REFUSED = [
    ("http://127.0.0.1:8002/x", "http:// is only accepted on the origin"),  # another port than the declared one
    ("https://127.0.0.1/x", "127.0.0.1 is a loopback address"),
    ("https://127.1/x", "is a loopback address"),
    ("https://2130706433/x", "is a loopback address"),  # decimal
    ("https://0177.0.0.1/x", "is a loopback address"),  # octal
    ("https://0x7f.0.0.1/x", "is a loopback address"),  # hex
    ("https://0x7f000001/x", "is a loopback address"),
    ("https://[::1]/x", "is a loopback address"),
    ("https://[::ffff:127.0.0.1]/x", "IPv4-mapped form of 127.0.0.1"),
    ("https://[::ffff:a9fe:a9fe]/x", "IPv4-mapped form of 169.254.169.254"),
    ("https://169.254.169.254/latest/meta-data/", "is a link-local address"),  # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "use https://169.254.169.254"),
    ("https://[fe80::1]/x", "is a link-local address"),
    ("https://10.0.0.1/x", "is a private address"),
    ("https://192.168.1.1/x", "is a private address"),
    ("https://172.16.0.1/x", "is a private address"),
    ("https://[fd00::1]/x", "is a unique-local address"),
    ("https://224.0.0.1/x", "is a multicast address"),
    ("https://[ff02::1]/x", "is a multicast address"),
    ("https://0.0.0.0/x", "unspecified"),
    ("https://240.0.0.1/x", "is a reserved address"),
    ("https://100.64.0.1/x", "not a public address"),  # carrier-grade NAT
    ("https://localhost.test/x", "localhost.test resolves to 127.0.0.1 is a loopback address"),
    ("https://mixed.test/x", "mixed.test resolves to 10.1.2.3 is a private address"),  # one bad address is enough
    ("https://nowhere.test/x", "nowhere.test does not resolve"),
    ("ftp://example.test/x", "is not an http(s) URL"),
    ("https://user:pw@public.test/x", "credentials in the URL are refused"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_the_guard_refuses_every_form_of_an_internal_address(resolver, url, reason):
    resolver.names.update(
        {"localhost.test": ["127.0.0.1"], "mixed.test": [PUBLIC_IP, "10.1.2.3"], "public.test": [PUBLIC_IP]}
    )
    with pytest.raises(UrlRefused) as refused:
        VOUCHED.check(url)
    assert reason in str(refused.value)


def test_the_guard_vouches_for_the_declared_origin_and_accepts_public_https(resolver):
    resolver.names["hooks.example.test"] = [PUBLIC_IP, "2606:2800:220:1:248:1893:25c8:1946"]
    assert VOUCHED.check("http://127.0.0.1:8001/api/v1/webhooks/cross-repo") is True
    assert VOUCHED.check("HTTP://127.0.0.1:8001/other") is True  # the origin, any path, any case
    assert VOUCHED.check("https://hooks.example.test/hook") is False  # public: checked again at connect time
    assert VOUCHED.check(f"https://{PUBLIC_IP}/hook") is False


def test_an_allow_list_keeps_public_hosts_to_the_ones_it_names(resolver):
    resolver.names.update({"hooks.partner.test": [PUBLIC_IP], "elsewhere.test": [PUBLIC_IP]})
    guard = UrlGuard.for_endpoints(["http://127.0.0.1:8001/api/v1"], allowed_hosts=["hooks.partner.test"])
    assert guard.check("https://hooks.partner.test/x") is False
    with pytest.raises(UrlRefused, match="elsewhere.test is not in this remote's allowed_hosts"):
        guard.check("https://elsewhere.test/x")
    assert guard.check("http://127.0.0.1:8001/x") is True  # the declared origin needs no allow-list


# --- at connect time ------------------------------------------------------------------------------------------


def test_a_name_rebound_to_loopback_after_the_check_is_refused_at_connect_time(resolver):
    """DNS rebinding: public when checked, 127.0.0.1 when connected. The second answer is refused before the
    connection is made (had it been accepted, the POST would go to a port nothing listens on: no traffic)."""
    resolver.names["rebind.test"] = [[PUBLIC_IP], ["127.0.0.1"]]
    with pytest.raises(RemoteRejected, match="refused: rebind.test resolves to 127.0.0.1 is a loopback address"):
        post_webhook("https://rebind.test:9/hook", b"{}", headers={}, guard=UrlGuard())
    assert resolver.calls == ["rebind.test", "rebind.test"]


def test_the_client_refuses_a_learned_url_before_calling_it(resolver):
    resolver.names["intranet.test"] = ["10.0.0.7"]
    client = RemoteClient("https://intranet.test/api/v1", guard=UrlGuard())
    with pytest.raises(RemoteRejected, match="refused: intranet.test resolves to 10.0.0.7"):
        client.get("/federation/info")


class _Redirecting(ThreadingHTTPServer):
    """Answers every request with a redirect to the cloud metadata address, and counts the requests."""

    def __init__(self) -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self):
                server.hits += 1
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _redirect

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


def test_redirects_are_not_followed_to_a_refused_address(resolver):
    server = _Redirecting()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        guard = UrlGuard.for_endpoints([base])
        with pytest.raises(RemoteBadResponse, match="HTTP 302"):
            post_webhook(f"{base}/hook", b"{}", headers={}, guard=guard)
        with pytest.raises(RemoteBadResponse, match="HTTP 302"):
            RemoteClient(base, guard=guard).get("/x")
        assert server.hits == 2  # one request each, and nothing sent on to the Location
        assert resolver.calls == []
    finally:
        server.shutdown()


# --- at subscribe time ----------------------------------------------------------------------------------------

REMOTE = "github.com/org/partner"
ENDPOINT = "http://127.0.0.1:9/api/v1"


@pytest.fixture
def node(node_repo, monkeypatch):
    monkeypatch.setattr("subscriptions.delivery.wake", lambda: None)
    config = default_config(url="github.com/org/api-service", display_name="API Service")
    config["remote_repos"] = [
        {"url": REMOTE, "trust_level": "verified", "endpoint": ENDPOINT, "allowed_hosts": ["hooks.partner.test"]}
    ]
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote_services.remotes_reconcile(force=True)
    return SimpleNamespace(key=remote_services.remote_rotate_key(remote=RemoteRepo.objects.get(url=REMOTE)))


def subscribe(node, url: str, *, bare: bool = False):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {node.key}")
    watch = {"entity_type": "issue", "filters": {"labels": ["x"]}}
    body = (
        {"watch": watch, "callback_url": url}
        if bare
        else {"type": "subscribe", "from": REMOTE, "watch": watch, "callback": {"url": url}}
    )
    return client.post("/api/v1/federation/subscribe", body, format="json")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/internal/admin/delete-everything", "http:// is only accepted on the origin"),
        ("http://169.254.169.254/latest/meta-data/", "http:// is only accepted on the origin"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("https://2130706433/x", "127.0.0.1 is a loopback address"),
        ("https://[::ffff:127.0.0.1]/x", "IPv4-mapped form of 127.0.0.1"),
        ("https://localhost.test/x", "not in this remote's allowed_hosts"),
        ("https://hooks.partner.test/x", "hooks.partner.test resolves to 127.0.0.1"),
    ],
)
def test_a_subscription_with_a_callback_into_our_network_is_refused_with_a_400(node, resolver, url, reason):
    resolver.names.update({"localhost.test": ["127.0.0.1"], "hooks.partner.test": ["127.0.0.1"]})
    response = subscribe(node, url)
    assert response.status_code == 400, response.json()
    [error] = response.json()["errors"]
    assert error["path"] == "callback.url"
    assert error["message"].startswith("refused: ") and reason in error["message"]
    assert not Subscription.objects.exists()  # nothing stored, so nothing will be called


@pytest.mark.django_db(transaction=True)
def test_a_callback_on_the_declared_origin_or_a_public_allowed_host_is_accepted(node, resolver):
    resolver.names["hooks.partner.test"] = [PUBLIC_IP]
    assert subscribe(node, f"{ENDPOINT}/webhooks/cross-repo").status_code == 200
    assert subscribe(node, "https://hooks.partner.test/hook", bare=True).status_code == 200
    assert Subscription.objects.count() == 2
