"""How fast a change travels: from the transaction that commits it on one node to the other node's cached
reference (by signed webhook), and to a WebSocket client; and how long a webhook fan-out to 100 subscribers takes.

Two real nodes (`sudocode-fed serve`: daphne, Celery worker and beat), api-service and frontend, are linked
(api-service trusts frontend at `trusted`); frontend's issue-100 is blocked by api-service's issue-084, so frontend
subscribes to it by itself. A writer process (a separate Python process, like the CLI or another tool) then
changes issue-084 `--changes` times, `--interval` seconds apart, through the tracker's services. Every change is
an event in api-service's outbox (its `created_at` is taken inside the transaction, just before the commit);
frontend keeps each event it applies (`received_at`, in the transaction that updates the cached reference); a
WebSocket client connected to api-service notes when each event arrives; so does frontend's issue-100 page (a
staff session's socket subscribed as static/js/live.js does), hearing each change as a `reference_updated` event
of issue-100 (issue 14: a page follows its remote blockers). Latency = arrival - created_at, all on this
machine's clock.

Profiles: `embedded` (the default: filesystem broker, in-memory channel layer, SQLite) and `redis` (Celery broker
and channel layer on Redis at 127.0.0.1:6379; still SQLite). The fan-out scenario adds 100 subscriptions (one
local HTTP receiver, 100 callback paths) and times one change until the 100th delivery, `--fanout-rounds` times.

    .venv/bin/python benchmarks/bench_propagation.py [--changes 1000] [--interval 0.02] [--profiles embedded,redis]

Prints one JSON document; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from common import percentile, progress  # noqa: E402

from tests.nodes import Node, link  # noqa: E402


def redis_env(db: int) -> dict[str, str]:
    # Each node its own Redis databases: a worker must never take another node's tasks.
    return {
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{db}",
        "CHANNEL_LAYER_URL": f"redis://127.0.0.1:6379/{db + 1}",
    }


# --- the writer: a separate process changing issue-084 through the tracker's services -------------------------


def writer(repo: str, count: int, interval: float) -> None:
    os.environ["SUDOCODE_REPO"] = repo
    os.environ["DJANGO_SETTINGS_MODULE"] = "federation_site.settings"
    import django

    django.setup()
    from tracker.services import issue_update

    for n in range(count):
        issue_update(issue="issue-084", actor="bench", title=f"Add user profile endpoint (rev {n})")
        time.sleep(interval)


def run_writer(node: Node, count: int, interval: float) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(node.env)
    subprocess.run(
        [sys.executable, __file__, "--writer", str(node.repo), str(count), str(interval)],
        env=env,
        check=True,
        cwd=ROOT,
    )


# --- reading the nodes' databases (Node.db: read-only; the nodes keep running) ------------------------------------


def when(text: str) -> float:
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def events_of(node: Node, after_seq: int) -> dict[str, tuple[int, float]]:
    with node.db() as conn:
        rows = conn.execute("SELECT event_id, seq, created_at FROM events_event WHERE seq > ?", (after_seq,))
        return {uuid.UUID(str(eid)).hex: (seq, when(created)) for eid, seq, created in rows}


def received_of(node: Node) -> dict[str, float]:
    with node.db() as conn:
        rows = conn.execute("SELECT event_id, received_at FROM subscriptions_receivedevent")
        return {uuid.UUID(str(eid)).hex: when(received) for eid, received in rows}


def head_seq(node: Node) -> int:
    with node.db() as conn:
        return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events_event").fetchone()[0]


def wait(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"{what} did not happen within {timeout:.0f} s")


def confirmed_subscription(node: Node) -> bool:
    with node.db() as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM cross_repo_subscriptions WHERE direction = 'outgoing' AND status = 'active' "
            "AND delivery_status = 'confirmed'"
        ).fetchone()
        return row[0] > 0


def summary(values_ms: list[float]) -> dict:
    if not values_ms:
        return {"count": 0}
    return {
        "count": len(values_ms),
        "p50_ms": round(percentile(values_ms, 0.50), 1),
        "p95_ms": round(percentile(values_ms, 0.95), 1),
        "p99_ms": round(percentile(values_ms, 0.99), 1),
        "max_ms": round(max(values_ms), 1),
    }


# --- a WebSocket client on api-service -------------------------------------------------------------------------


class WsClient(threading.Thread):
    def __init__(self, node: Node, key: str):
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{node.port}/api/v1/ws"
        self.key = key
        self.arrivals: dict[str, float] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: str = ""

    def run(self) -> None:
        from websockets.sync.client import connect

        watch = {"entity_type": "issue", "filters": {"ids": ["issue-084"]}}
        try:
            with connect(self.url, additional_headers={"Authorization": f"Bearer {self.key}"}) as conn:
                conn.send(json.dumps({"type": "subscribe", "watch": watch}))
                answer = json.loads(conn.recv(10))
                if answer.get("type") != "subscribed":
                    self.error = f"the WebSocket subscribe failed: {answer}"
                    return
                self.ready.set()
                while not self.stopping.is_set():
                    try:
                        raw = conn.recv(0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    message = json.loads(raw)
                    if message.get("type") == "event":
                        self.arrivals[uuid.UUID(message["event"]["id"]).hex] = now
        except Exception as exc:
            self.error = str(exc)
        finally:
            self.ready.set()

    def open(self) -> None:
        self.start()
        self.ready.wait(15)
        if self.error or not self.ready.is_set():
            raise SystemExit(self.error or "the WebSocket client did not subscribe")

    def close(self) -> None:
        self.stopping.set()
        self.join(5)


class PageClient(threading.Thread):
    """frontend's issue-100 page as a maintainer's browser has it: the staff session's socket, subscribed to the
    page's own watches (its live-config). Notes when each revision of the remote blocker's title arrives."""

    def __init__(self, node: Node):
        super().__init__(daemon=True)
        from tests.requests_app.test_use_case_1 import PASSWORD, STAFF, staff_session

        node.create_staff(STAFF, PASSWORD)
        self.node = node
        self.session = staff_session(node)
        self.arrivals: dict[int, float] = {}  # revision -> arrival
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error = ""

    def run(self) -> None:
        import re

        from websockets.sync.client import connect

        page = self.session.get(f"{self.node.base}/issues/issue-100", timeout=30).text
        config = json.loads(
            re.search(r'<script id="live-config" type="application/json">(.*?)</script>', page, re.S)[1]
        )
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        url = f"ws://127.0.0.1:{self.node.port}/api/v1/ws"
        try:
            with connect(url, origin=self.node.base, additional_headers={"Cookie": cookie}) as conn:
                for i, watch in enumerate(config["watches"]):
                    conn.send(json.dumps({"type": "subscribe", "subscription_id": f"page-{i}", "watch": watch}))
                    if json.loads(conn.recv(10)).get("type") != "subscribed":
                        self.error = "the page's subscribe failed"
                        return
                self.ready.set()
                while not self.stopping.is_set():
                    try:
                        raw = conn.recv(0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    event = json.loads(raw).get("event") or {}
                    for change in (
                        (event.get("changes") or {}).values() if event.get("type") == "reference_updated" else []
                    ):
                        title = ((change.get("to") or {}).get("cached") or {}).get("title") or ""
                        if "(rev " in title:
                            self.arrivals.setdefault(int(title.rsplit("(rev ", 1)[1].rstrip(")")), now)
        except Exception as exc:
            self.error = str(exc)
        finally:
            self.ready.set()

    def open(self) -> None:
        self.start()
        self.ready.wait(30)
        if self.error or not self.ready.is_set():
            raise SystemExit(self.error or "the page's socket did not subscribe")

    def close(self) -> None:
        self.stopping.set()
        self.join(5)


# --- the fan-out receiver -------------------------------------------------------------------------------------


class FanoutReceiver:
    def __init__(self):
        self.arrivals: dict[str, list[float]] = {}
        lock = threading.Lock()
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                event_id = uuid.UUID(json.loads(body)["event"]["id"]).hex
                with lock:
                    arrivals.setdefault(event_id, []).append(now)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # socketserver's 5 refuses connections under a 16-wide fan-out

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"


# --- scenarios --------------------------------------------------------------------------------------------------


def setup(root: Path, envs: tuple[dict[str, str], dict[str, str]]) -> tuple[Node, Node, str]:
    api = Node(root, "api-service", env=envs[0])
    front = Node(root, "frontend", env=envs[1])
    api.start()
    front.start()
    key = link(front, api, trust="trusted")
    made = api.cli("issue", "create", "Add user profile endpoint", "--id", "issue-084")
    assert made.code == 0, made.err
    made = front.cli(
        "issue",
        "create",
        "Add user profile page",
        "--id",
        "issue-100",
        "--status",
        "blocked",
        "-d",
        "Blocked by: [[org/api-service#issue-084]]",
    )
    assert made.code == 0, made.err
    progress("waiting for frontend's auto-subscription to api-service")
    wait(lambda: confirmed_subscription(front), "frontend subscribing to api-service", timeout=120)
    return api, front, key


def propagation(
    profile: str, envs: tuple[dict[str, str], dict[str, str]], changes: int, interval: float, fanout_rounds: int
) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-propagation-{profile}-") as tmp:
        root = Path(tmp)
        api, front, key = setup(root, envs)
        try:
            ws = WsClient(api, key)
            ws.open()
            page = PageClient(front)
            page.open()
            start_seq = head_seq(api)
            progress(f"{profile}: {changes} changes to issue-084, {interval * 1000:.0f} ms apart")
            started = time.monotonic()
            run_writer(api, changes, interval)
            write_s = time.monotonic() - started
            events = wait(
                lambda: (e := events_of(api, start_seq)) and len(e) >= changes and e,
                "api-service recording the events",
            )
            wait(
                lambda: len(set(received_of(front)) & set(events)) >= len(events), "frontend applying every event", 300
            )
            wait(lambda: len(set(ws.arrivals) & set(events)) >= len(events), "the WebSocket client hearing every event")
            wait(lambda: len(page.arrivals) >= len(events), "frontend's issue page hearing every change")
            by_revision = [created for _seq, created in sorted(events.values())]  # revision n is the nth event
            page_ms = [(page.arrivals[n] - by_revision[n]) * 1000 for n in page.arrivals if n < len(by_revision)]
            page.close()
            received = received_of(front)
            webhook_ms = [(received[e] - created) * 1000 for e, (_seq, created) in events.items() if e in received]
            ws_ms = [(ws.arrivals[e] - created) * 1000 for e, (_seq, created) in events.items() if e in ws.arrivals]
            ws.close()
            result = {
                "changes": len(events),
                "writer_seconds": round(write_s, 1),
                "to_cached_reference_by_webhook": summary(webhook_ms),
                "to_websocket_client": summary(ws_ms),
                "to_frontend_issue_page": summary(page_ms),
            }
            if fanout_rounds:
                result["fanout_100_subscribers"] = fanout(api, fanout_rounds)
            return result
        finally:
            front.stop()
            api.stop()


FANOUT_REMOTE = "github.com/bench/fanout-subscriber"


def fanout(api: Node, rounds: int, subscribers: int = 100) -> dict:
    # The subscriber is a remote of its own whose declared endpoint is the receiver: a callback URL must be on
    # the origin an admin declared for the remote that hands it over (remotes/urlguard.py, issue 17).
    receiver = FanoutReceiver()
    added = api.cli("remote", "add", FANOUT_REMOTE, "--trust", "verified", "--endpoint", f"{receiver.base}/api/v1",
                    "--no-discover")  # fmt: skip
    if added.code != 0:
        raise SystemExit(f"declaring the fan-out subscriber failed: {added.err}")
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    config = api.config()
    for remote in config["remote_repos"]:
        if remote["url"] == FANOUT_REMOTE:
            remote.setdefault("permissions", {})["subscribe"] = {"allowed": True, "max_subscriptions": subscribers + 10}
    api.write_config(config)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    for n in range(subscribers):
        answer = session.post(
            f"{api.api}/federation/subscribe",
            json={
                "type": "subscribe",
                "from": FANOUT_REMOTE,
                "watch": {"entity_type": "issue", "filters": {"ids": ["issue-084"]}},
                "callback": {"url": f"{receiver.base}/hook/{n}", "secret": uuid.uuid4().hex * 2},
                "subscription_id": f"bench-fanout-{n}",
            },
            timeout=10,
        )
        if answer.status_code != 200:
            raise SystemExit(f"subscribing #{n} failed: {answer.status_code} {answer.text}")
    progress(f"fan-out: {rounds} changes to {subscribers} subscribers")
    start_seq = head_seq(api)
    run_writer(api, rounds, 2.0)
    events = wait(
        lambda: (e := events_of(api, start_seq)) and len(e) >= rounds and e, "api-service recording the events"
    )
    wait(
        lambda: all(len(receiver.arrivals.get(e, [])) >= subscribers for e in events),
        f"{subscribers} deliveries of every event",
        120,
    )
    last_ms = [(max(receiver.arrivals[e]) - created) * 1000 for e, (_seq, created) in events.items()]
    first_ms = [(min(receiver.arrivals[e]) - created) * 1000 for e, (_seq, created) in events.items()]
    receiver.server.shutdown()
    return {
        "subscribers": subscribers,
        "rounds": len(events),
        "to_first_delivery": summary(first_ms),
        "to_last_delivery": summary(last_ms),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between two changes (default 0.02)")
    parser.add_argument("--profiles", default="embedded,redis")
    parser.add_argument("--fanout-rounds", type=int, default=20)
    args = parser.parse_args()
    profiles = {"embedded": ({}, {}), "redis": (redis_env(5), redis_env(7))}
    results = {}
    for name in args.profiles.split(","):
        if name not in profiles:
            parser.error(f"unknown profile {name!r} (choose from {', '.join(profiles)})")
        results[name] = propagation(name, profiles[name], args.changes, args.interval, args.fanout_rounds)
    print(
        json.dumps(
            {
                "benchmark": "propagation",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "changes": args.changes,
                "interval_s": args.interval,
                "profiles": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
