"""Issue 17 on real nodes: `init` makes each node a key, `remote add` pins the other's (shown as a fingerprint),
and a node that requires signatures answers the other's signed query and keeps the signature with its audit row."""

from __future__ import annotations

import pytest

from tests.nodes import Node, link

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed")
    frontend, api = Node(root, "frontend", worker=False), Node(root, "api-service", worker=False)
    try:
        api.start()
        frontend.start()
        link(frontend, api)
        yield frontend, api
    finally:
        frontend.stop()
        api.stop()


def test_remote_add_pins_the_key_the_remote_announces_and_shows_its_fingerprint(pair):
    frontend, api = pair
    api_key = api.config()["local_identity"]["public_key"]
    [declared] = [r for r in frontend.config()["remote_repos"] if r["url"] == api.identity]
    assert declared["public_key"] == api_key  # pinned from api's discover answer
    shown = frontend.cli("remote", "key", api.identity)
    fingerprint = api.cli_json("status")["signing_key"]
    assert shown.code == 0 and f"Signing key: {fingerprint}" in shown.out


def test_a_node_requiring_signatures_answers_a_signed_query_and_keeps_the_signature(pair):
    frontend, api = pair
    frontend_key = frontend.config()["local_identity"]["public_key"]
    pinned = api.cli("remote", "key", frontend.identity, "--pin", frontend_key, "--require-signatures", "on")
    assert pinned.code == 0, pinned.err
    answer = frontend.cli("remote", "query", api.identity, "issue", "--format", "json")
    assert answer.code == 0, answer.err
    [row] = api.cli_json("audit", "list", "--remote", frontend.identity, "--operation", "query", "--limit", "1")
    assert row["status"] == "success"
    assert row["signature"]["key_id"] == frontend.cli_json("status")["signing_key"]
    assert 'tag="sudocode-federation"' in row["signature"]["signature_input"]
