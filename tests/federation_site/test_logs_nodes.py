"""Structured logs across two real nodes (federation_site/logs.py): `alpha` and `beta`, each `sudocode-fed serve`
logging JSON lines to a file (tests.nodes.Node sends stderr there). alpha's CLI runs with SUDOCODE_LOG_FORMAT=json
too, so what it sends is logged as a node process would. Every line of every log must parse as JSON; one
query and one mutate must show the same correlation id on both nodes; A2A messages logged in full under
`logging.debug_a2a` must not show a key."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from tests.conftest import cli_env, run_cli
from tests.nodes import Node, eventually, link
from tests.requests_app.test_use_case_1 import request_id_in, start_together, stop_together

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    alpha = Node(root, "alpha", worker=False)
    beta = Node(root, "beta")  # its worker calls alpha back
    config = beta.config()
    config["logging"] = {"debug_a2a": True}  # the config switch (`serve --debug-a2a` sets the same)
    beta.write_config(config)
    try:
        start_together(alpha, beta)
        key = link(alpha, beta, trust="verified")
        issue = beta.cli("issue", "create", "Logged issue", "--id", "issue-7")
        assert issue.code == 0, issue.err
        yield alpha, beta, key
    finally:
        stop_together(alpha, beta)


def alpha_cli(alpha: Node, *args: str, **env: str):
    """alpha's CLI, logging JSON lines to stderr as `serve` does."""
    result = run_cli("--repo", str(alpha.repo), *args, env=cli_env(SUDOCODE_LOG_FORMAT="json", **env))
    assert result.code == 0, result.err
    return result


def json_lines(text: str) -> list[dict]:
    """Every line of `text` as a JSON object: a line that is not one fails the test, naming it."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line[:300]!r}")
        assert isinstance(record, dict) and "event" in record and "level" in record and "timestamp" in record, line
        lines.append(record)
    return lines


def node_log(node: Node) -> list[dict]:
    return json_lines(node.log_path.read_text())


def with_correlation(lines: list[dict], correlation_id: str) -> list[dict]:
    return [line for line in lines if line.get("correlation_id") == correlation_id]


def logged(node: Node, correlation_id: str, **fields: str) -> list[dict]:
    """The lines of `node`'s log under `correlation_id` that have all of `fields`."""
    lines = with_correlation(node_log(node), correlation_id)
    return [line for line in lines if all(line.get(k) == v for k, v in fields.items())]


def test_every_line_a_node_writes_is_a_json_object(pair):
    alpha, beta, _key = pair
    for node in (alpha, beta):
        lines = node_log(node)
        assert lines, f"{node.name} logged nothing"
        assert any("Serving" in line["event"] for line in lines)  # serve's own notes are log lines too


def test_a_query_has_one_correlation_id_on_both_nodes(pair):
    alpha, beta, _key = pair
    result = alpha_cli(alpha, "remote", "query", beta.identity, "issue", "--format", "json")
    assert "issue-7" in result.out
    [sent] = [line for line in json_lines(result.err) if line["event"] == "outgoing query success"]
    correlation_id = sent["correlation_id"]
    assert sent["remote"] == beta.identity and sent["logger"] == "sudocode.audit"
    answered = eventually(
        lambda: with_correlation(node_log(beta), correlation_id), what="beta logging the query's correlation id"
    )
    [received] = [line for line in answered if line["event"] == "incoming query success"]
    assert received["remote"] == alpha.identity
    assert received["operation"] == "query" and received["direction"] == "incoming"
    assert isinstance(received["duration_ms"], int)


def test_a_mutate_and_its_callback_carry_one_correlation_id_and_the_request_id_on_both_nodes(pair):
    alpha, beta, _key = pair
    asked = alpha_cli(alpha, "remote", "create-issue", beta.identity, "--title", "Please log this")
    request_id = request_id_in(asked.out)
    [sent] = [line for line in json_lines(asked.err) if line["event"] == "outgoing mutate success"]
    correlation_id = sent["correlation_id"]
    assert (sent["remote"], sent["request_id"]) == (beta.identity, request_id)

    received = eventually(lambda: with_correlation(node_log(beta), correlation_id), what="beta logging the mutate")
    assert {line["request_id"] for line in received if "request_id" in line} == {request_id}
    assert any(line["event"] == "incoming mutate pending" for line in received)  # a human decides

    approved = beta.cli("request", "approve", request_id)
    assert approved.code == 0, approved.err
    # beta's worker calls alpha back under the request's correlation id: alpha's serve logs it.
    called_back = eventually(
        lambda: [
            line for line in with_correlation(node_log(alpha), correlation_id) if line.get("operation") == "callback"
        ],
        what="alpha logging beta's callback under the mutate's correlation id",
        timeout=30,
    )
    assert called_back[0]["event"] == "incoming callback success"
    assert called_back[0]["remote"] == beta.identity and called_back[0]["request_id"] == request_id
    # beta's worker logs the callback it sent once alpha's answer is back: a moment after alpha logged it.
    eventually(
        lambda: any(
            line["event"] == "outgoing callback success" for line in with_correlation(node_log(beta), correlation_id)
        ),
        what="beta's worker logging the callback it sent (its lines are JSON in the same log)",
        timeout=30,
    )


def test_debug_a2a_logs_the_messages_in_full_without_the_key(pair):
    alpha, beta, key = pair
    correlation_id = f"corr-{uuid.uuid4().hex[:8]}"
    body = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": uuid.uuid4().hex,
                "role": "ROLE_USER",
                "parts": [{"data": {"type": "query", "query": {"entity": "issue"}}, "mediaType": "application/json"}],
                "metadata": {"api_token": "s3cret-in-the-body"},
            }
        },
    }
    answer = requests.post(
        f"{beta.base}/a2a",
        json=body,
        headers={"Authorization": f"Bearer {key}", "A2A-Version": "1.0", "X-Correlation-ID": correlation_id},
        timeout=10,
    )
    assert answer.status_code == 200 and "issue-7" in answer.text

    lines = eventually(
        lambda: [line for line in with_correlation(node_log(beta), correlation_id) if line["event"].startswith("a2a ")],
        what="beta logging the A2A messages",
    )
    by_event = {line["event"]: line for line in lines}
    incoming, outgoing = by_event["a2a in request"], by_event["a2a out response"]
    assert incoming["headers"]["authorization"] == "[redacted]"
    assert incoming["body"]["params"]["message"]["parts"][0]["data"] == {"type": "query", "query": {"entity": "issue"}}
    assert incoming["body"]["params"]["message"]["metadata"]["api_token"] == "[redacted]"
    assert "issue-7" in json.dumps(outgoing["body"])
    [answered] = [line for line in lines if line["event"] == "incoming query success"] or [
        line for line in with_correlation(node_log(beta), correlation_id) if line["event"] == "incoming query success"
    ]
    assert answered["remote"] == alpha.identity  # the caller is known once its key is read, after the request
    text = beta.log_path.read_text()
    assert key not in text and "s3cret-in-the-body" not in text


def test_debug_a2a_on_the_calling_side_logs_what_alpha_sends_redacted(pair):
    alpha, beta, key = pair
    config = alpha.config()
    [entry] = [r for r in config["remote_repos"] if r["url"] == beta.identity]
    rest = dict(entry)
    entry.update(transport="a2a", endpoint=beta.base)  # an A2A remote's endpoint is where its Agent Card is
    alpha.write_config(config)
    try:
        result = alpha_cli(alpha, "remote", "query", beta.identity, "issue", "--format", "json", SUDOCODE_DEBUG_A2A="1")
    finally:
        entry.clear()
        entry.update(rest)
        alpha.write_config(config)
    assert "issue-7" in result.out
    lines = json_lines(result.err)
    [request] = [line for line in lines if line["event"] == "a2a out request"]
    [response] = [line for line in lines if line["event"] == "a2a in response"]
    assert request["headers"]["Authorization"] == "[redacted]" and request["body"]["method"] == "SendMessage"
    assert "issue-7" in json.dumps(response["body"])
    assert request["remote"] == beta.identity
    assert key not in result.err
    correlation_id = request["correlation_id"]
    eventually(  # a2a-sdk's routes are not Django's: federation_site.asgi binds the id for them too
        lambda: [
            line for line in with_correlation(node_log(beta), correlation_id) if line["event"] == "a2a in request"
        ],
        what="beta logging alpha's A2A message under alpha's correlation id",
    )
