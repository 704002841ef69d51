"""A node SIGKILLed again and again while a remote creates issues through its API loses nothing and duplicates
nothing: every request answered 200 is an issue exactly once, a request the kill cut off and that its sender
sends again (same request_id) is an issue exactly once, and the JSONL file is valid after every kill (issue 10)."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
import requests

from tests.nodes import Node, link
from tracker import jsonl

pytestmark = pytest.mark.slow

KILLS = 30


def _message(request_id: str) -> dict:
    return {
        "type": "mutate",
        "from": "github.com/org/frontend",
        "operation": "create_issue",
        "data": {"title": f"Created by {request_id}", "priority": 2},
        "metadata": {"request_id": request_id, "requester": "crash-test"},
    }


class Sender:
    """frontend's side: sends create_issue requests one after another; one that got no answer is sent again
    (same request_id) until it gets one, as a remote's retry would."""

    def __init__(self, api: Node, key: str) -> None:
        self.api, self.key = api, key
        self.answered: dict[str, dict] = {}  # request_id -> the 200 answer
        self.sent = 0
        self.last: str = ""  # the last answer that was not a completion, to say why a run got stuck
        self.error: BaseException | None = None
        self._next = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            self._send_all()
        except BaseException as exc:  # seen by the test, not lost with the thread
            self.error = exc

    def _send_all(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key}"
        request_id = None
        while not self._stop.is_set():
            if request_id is None:
                self._next += 1
                request_id = f"req-crash-{self._next:05d}"
            try:
                self.sent += 1
                answer = session.post(f"{self.api.api}/federation/mutate", json=_message(request_id), timeout=10)
            except requests.RequestException:
                time.sleep(0.05)  # the node is down: the same request again when it is back
                continue
            if answer.status_code == 200 and answer.json()["status"] == "completed":
                self.answered[request_id] = answer.json()
                request_id = None
            else:
                self.last = f"{request_id}: {answer.status_code} {answer.text[:300]}"
                if answer.status_code >= 500:
                    raise AssertionError(self.last)
                time.sleep(0.05)  # e.g. "approved": being carried out after a restart; ask again


def test_sigkill_at_random_moments_loses_and_duplicates_no_request(tmp_path):
    api = Node(tmp_path, "api-service", worker=False)
    frontend = Node(tmp_path, "frontend", worker=False)
    api.start()
    key = link(frontend, api, trust="trusted")
    config = api.config()
    for remote in config["remote_repos"]:
        if remote["url"] == frontend.identity:
            remote["permissions"] = {"mutate": {"allowed": True, "mutations_per_hour": 100_000}}
    api.write_config(config)
    sender = Sender(api, key).start()
    rng = random.Random(10)
    path = api.repo / ".sudocode" / "issues.jsonl"
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.1, 0.8))
            api.kill()
            if path.exists():
                jsonl.read_jsonl(path, "issue")  # a valid file after every kill (raises otherwise)
            api.start()
        deadline = time.monotonic() + 30
        while sender._thread.is_alive() and time.monotonic() < deadline and len(sender.answered) < sender._next:
            time.sleep(0.1)  # the last request in flight gets its answer
    finally:
        sender.stop()
        api.stop()

    titles = [json.loads(line)["title"] for line in path.read_text().splitlines()]
    created = [t for t in titles if t.startswith("Created by req-crash-")]
    assert len(created) == len(set(created)), "a request created two issues"
    for request_id in sender.answered:
        assert created.count(f"Created by {request_id}") == 1, f"{request_id} was answered but is not one issue"
    # Every request that was created was also answered (or was the last one, cut off at the very end).
    assert len(created) - len(sender.answered) <= 1
    assert sender.error is None, f"the sender stopped: {sender.error!r}"
    assert len(sender.answered) >= KILLS, f"too few requests got through: {len(sender.answered)}; last: {sender.last}"
    print(f"{KILLS} kills, {sender.sent} sends, {len(sender.answered)} requests answered, {len(created)} issues")
