"""Issue 17 on real nodes: every inbound path that carries an RFC 9421 signature keeps it with its audit row, so a
node can show later exactly what the other one sent (and check it again with the sender's key): REST query,
mutate and subscribe, the request callback, the webhook receiver; and over A2A, a remote reached by its agent
card has its key pinned from the card, its messages verified, and a key rotation announced to it."""

from __future__ import annotations

import json

import pytest
import requests

from federation_site.keys import fingerprint, parse_public_key
from remotes.signatures import reverify
from tests.nodes import Node, eventually, link

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "auditor", "a-long-test-password-17"


def public_key(node: Node) -> str:
    return node.config()["local_identity"]["public_key"]


def last_row(node: Node, remote: Node, operation: str) -> dict:
    rows = node.cli_json("audit", "list", "--remote", remote.identity, "--operation", operation, "--limit", "1")
    assert rows, f"{node.name} has no {operation} row from {remote.name}"
    return rows[0]


def assert_signed_by(row: dict, sender: Node, *, target: str) -> None:
    """The row keeps the sender's signature, over the URL it was sent to, and it checks again with its key."""
    signature = row["signature"]
    assert signature is not None, row
    assert signature["key_id"] == fingerprint(public_key(sender))
    base = signature["signature_base"].split("\n")
    assert base[0] == '"@method": POST' and base[1] == f'"@target-uri": {target}', base
    assert base[4] == f'"content-digest": {signature["content_digest"]}'
    assert 'tag="sudocode-federation"' in signature["signature_input"] and signature["created"]
    assert reverify(signature, parse_public_key(public_key(sender)))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed-audit")
    api, front = Node(root, "api-service"), Node(root, "frontend")
    try:
        api.start()
        front.start()
        link(front, api)
        # Each pins the other's key (front pinned api's at `remote add`) and refuses its unsigned messages.
        pinned = api.cli("remote", "key", front.identity, "--pin", public_key(front), "--require-signatures", "on")
        assert pinned.code == 0, pinned.err
        assert front.cli("remote", "key", api.identity, "--require-signatures", "on").code == 0
        api.create_staff(STAFF, PASSWORD)
        yield api, front
    finally:
        front.stop()
        api.stop()


def test_query_mutate_subscribe_callback_and_webhook_keep_the_senders_signature(pair):
    api, front = pair
    assert front.cli("remote", "query", api.identity, "issue", "--format", "json").code == 0
    assert_signed_by(last_row(api, front, "query"), front, target=f"{api.api}/federation/query")

    asked = front.cli_json("remote", "create-issue", api.identity, "--title", "Signed ask", "--format", "json")
    request_id = asked["request_id"]
    mutate = last_row(api, front, "mutate")
    assert mutate["request_id"] == request_id
    assert_signed_by(mutate, front, target=f"{api.api}/federation/mutate")
    # The row says what was asked: the payload, and the signed digest of the very body that asked it.
    assert mutate["payload"]["title"] == "Signed ask"

    assert api.cli("request", "approve", request_id).code == 0  # api's worker calls front back, signed
    callback = eventually(
        lambda: front.cli_json("audit", "list", "--operation", "callback", "--request-id", request_id),
        timeout=60,
        what="front receiving api's callback",
    )[0]
    assert callback["remote_repo"] == api.identity
    assert_signed_by(callback, api, target=f"{front.api}/federation/callback")

    assert api.cli("issue", "create", "Endpoint", "--id", "issue-084").code == 0
    made = front.cli(
        "issue", "create", "Page", "--status", "blocked", "-d", "Blocked by: [[org/api-service#issue-084]]"
    )
    assert made.code == 0, made.err
    subscribe = eventually(
        lambda: api.cli_json("audit", "list", "--remote", front.identity, "--operation", "subscribe"),
        timeout=60,
        what="front subscribing to issue-084",
    )[0]
    assert_signed_by(subscribe, front, target=f"{api.api}/federation/subscribe")

    assert api.cli("issue", "close", "issue-084").code == 0  # a webhook to front, signed by api
    event = eventually(
        lambda: front.cli_json("audit", "list", "--remote", api.identity, "--operation", "event"),
        timeout=60,
        what="front receiving the webhook of issue-084's change",
    )[0]
    assert event["direction"] == "incoming" and event["payload"]["entity"] == "issue-084"
    assert_signed_by(event, api, target=f"{front.api}/webhooks/cross-repo")


def test_the_audit_api_shows_the_stored_signature(pair):
    api, front = pair
    answer = requests.get(
        f"{api.api}/federation/audit",
        params={"remote": front.identity, "operation": "query", "limit": 1},
        auth=(STAFF, PASSWORD),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    [row] = answer.json()["results"]
    assert_signed_by(row, front, target=f"{api.api}/federation/query")
    assert row == last_row(api, front, "query")  # the CLI and the API show the same row


# --- a remote reached over A2A ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def a2a_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed-a2a")
    api, front = Node(root, "api-service", worker=False), Node(root, "frontend", worker=False)
    try:
        api.start()
        front.start()
        yield api, front
    finally:
        front.stop()
        api.stop()


def test_an_a2a_remote_has_its_card_key_pinned_its_messages_verified_and_hears_a_key_rotation(a2a_pair):
    api, front = a2a_pair
    added = api.cli("remote", "add", front.identity, "--trust", "verified", "--endpoint", front.api, "--no-discover")
    key = next(line.strip() for line in added.out.splitlines() if line.strip().startswith("sfk_"))
    card = requests.get(f"{api.base}/.well-known/agent-card.json", timeout=30).json()
    [extension] = card["capabilities"]["extensions"]

    # The endpoint is the node's address: its card is there, /federation/info is not. The card names the key.
    added = front.cli("remote", "add", api.identity, "--endpoint", api.base, "--trust", "verified", "--token", key)
    assert added.code == 0 and "over A2A 1.0 (reachable)" in added.out, added
    assert f"Signing key: {fingerprint(extension['params']['public_key'])}" in added.out  # shown to compare
    [declared] = [r for r in front.config()["remote_repos"] if r["url"] == api.identity]
    assert declared["transport"] == "a2a" and declared["public_key"] == public_key(api)

    old_key = public_key(front)
    required = api.cli("remote", "key", front.identity, "--pin", old_key, "--require-signatures", "on")
    assert required.code == 0, required.err
    assert front.cli("remote", "query", api.identity, "issue", "--format", "json").code == 0
    assert_signed_by(last_row(api, front, "query"), front, target=f"{api.base}/a2a")

    rotated = front.cli("key", "rotate")
    assert rotated.code == 0 and f"{api.identity}: pinned the new key" in rotated.out, rotated
    new_key = public_key(front)
    assert new_key != old_key
    [pinned] = [r for r in api.config()["remote_repos"] if r["url"] == front.identity]
    assert pinned["public_key"] == new_key and pinned["require_signatures"] is True
    rotation = last_row(api, front, "key_rotation")
    assert rotation["signature"]["key_id"] == fingerprint(old_key)  # announced under the old key
    assert rotation["payload"] == {"old_key_id": fingerprint(old_key), "new_key_id": fingerprint(new_key)}
    assert reverify(rotation["signature"], parse_public_key(old_key))

    answer = front.cli("remote", "query", api.identity, "issue", "--format", "json")
    assert answer.code == 0, answer.err  # signed with the new key, which api now requires
    assert last_row(api, front, "query")["signature"]["key_id"] == fingerprint(new_key)
    assert json.loads(answer.out)["results"] is not None
