"""Calling a remote that speaks A2A 1.0 instead of our REST endpoints (`transport: "a2a"` in its config entry):
the same calls as remotes.client.RemoteClient (`get`, `post`, `delete` on the federation paths, returning the
same Response and raising the same RemoteError classes), carried as A2A JSON-RPC to the interface its Agent Card
names. The rest of the node cannot tell the transports apart.

| REST call                              | over A2A                                                      |
|----------------------------------------|---------------------------------------------------------------|
| GET  /federation/info                  | SendMessage with the data part {"type": "discover"}           |
| POST /federation/query|mutate|delegate|subscribe | SendMessage with the message as its data part        |
| POST /federation/key                   | SendMessage with the key_rotation message (issue 17)          |
| GET  /federation/requests/<id>         | GetTask <id> (the task's metadata is the mutate_response)     |
| anything else (callback, events, ...)  | RemoteRejected 404: the requester polls instead of a callback |

A refusal comes back as an agent message carrying the REST error body; it is raised as the REST status would
be (forbidden: RemoteRejected 403; rate_limited: RemoteUnreachable 429 with its retry_after), so the callers'
retry rules hold. The card is fetched once per process and base URL; its signatures extension names the
remote's public key (`card_public_key`), which `remote add` pins (remotes.sync.remote_discover). See PROTOCOL.md
"A2A 1.0" and "Signatures".
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from federation_site import logs
from federation_site.keys import NodeKey
from protocol.messages import integral_numbers
from remotes.client import (
    DEFAULT_POLICY,
    HttpPolicy,
    RemoteBadResponse,
    RemoteClient,
    RemoteRejected,
    RemoteUnreachable,
    Response,
)
from remotes.urlguard import UrlGuard

CARD_PATH = "/.well-known/agent-card.json"
A2A_VERSION = "1.0"
_SENT_AS_MESSAGES = {
    "/federation/query": "query",
    "/federation/mutate": "mutate",
    "/federation/delegate": "delegate",
    "/federation/subscribe": "subscribe",
    "/federation/key": "key_rotation",
}
_REQUEST_PATH = re.compile(r"^/federation/requests/([^/]+)$")
_ERROR_STATUS = {"unauthorized": 401, "forbidden": 403, "not_found": 404, "conflict": 409, "rate_limited": 429}

# The card's extension that names the key a node signs its messages with (RFC 9421); agents/a2a_server.py puts it
# on our card. PROTOCOL.md "Signatures".
SIGNATURES_EXTENSION = "urn:sudocode-federation:http-message-signatures:v1"

_cards: dict[str, dict] = {}  # base URL -> its agent card, fetched once per process
_cards_lock = threading.Lock()


def agent_card(base_url: str, *, policy: HttpPolicy = DEFAULT_POLICY) -> dict:
    """The Agent Card at `base_url` (GET /.well-known/agent-card.json). RemoteError when there is none."""
    card = RemoteClient(base_url, policy=policy).get(CARD_PATH).data
    if not isinstance(card.get("supportedInterfaces"), list):
        raise RemoteBadResponse(f"{base_url}{CARD_PATH} is not an A2A 1.0 agent card", url=base_url + CARD_PATH)
    return card


def card_public_key(card: dict) -> str | None:
    """The public key (`ed25519:<base64url>`) the card's signatures extension names, or None."""
    for extension in (card.get("capabilities") or {}).get("extensions") or []:
        if isinstance(extension, dict) and extension.get("uri") == SIGNATURES_EXTENSION:
            key = (extension.get("params") or {}).get("public_key")
            return key if isinstance(key, str) and key else None
    return None


def jsonrpc_url(card: dict) -> str | None:
    """The URL of the card's JSON-RPC interface for A2A 1.0, or None."""
    for interface in card.get("supportedInterfaces") or []:
        if interface.get("protocolBinding") == "JSONRPC" and str(interface.get("protocolVersion", "1.0")) == "1.0":
            return interface.get("url")
    return None


class A2AClient:
    """RemoteClient's interface over A2A 1.0 JSON-RPC (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        policy: HttpPolicy = DEFAULT_POLICY,
        signer: NodeKey | None = None,
        remote: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._token = token
        self.remote = remote  # the remote's identity, for the log context (as RemoteClient's)
        self._signer = signer  # signs each A2A message (RFC 9421, remotes.signatures)

    def __repr__(self) -> str:
        return f"A2AClient({self.base_url!r})"

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        if path == "/federation/info":
            return self._send({"type": "discover"}, correlation_id, timeout)
        found = _REQUEST_PATH.match(path)
        if found:
            response, result = self._call("GetTask", {"id": found.group(1)}, correlation_id, timeout)
            return _with(response, integral_numbers(dict(result.get("metadata") or {})))
        raise self._unsupported("GET", path)

    def post(
        self,
        path: str,
        json_body: dict,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        kind = _SENT_AS_MESSAGES.get(path)
        if kind is None:
            raise self._unsupported("POST", path)
        message = dict(json_body)
        if message.get("type") != kind:  # a bare body (the seed's query and subscribe forms)
            message = {"type": kind, kind if kind != "subscribe" else "subscription": json_body}
        return self._send(message, correlation_id, timeout)

    def delete(self, path: str, *, correlation_id: str | None = None, timeout: float | None = None) -> Response:
        raise self._unsupported("DELETE", path)

    # ---

    def _send(self, message: dict, correlation_id: str | None, timeout: float | None) -> Response:
        metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
        a2a_message = {
            "messageId": metadata.get("request_id") or uuid.uuid4().hex,
            "role": "ROLE_USER",
            "parts": [{"data": message, "mediaType": "application/json"}],
        }
        response, result = self._call("SendMessage", {"message": a2a_message}, correlation_id, timeout)
        if "task" in result:
            return _with(response, integral_numbers(dict(result["task"].get("metadata") or {})))
        answer = result.get("message") or {}
        data = next((p["data"] for p in answer.get("parts") or [] if isinstance(p.get("data"), dict)), None)
        data = integral_numbers(data)
        if data is None:
            raise RemoteBadResponse(f"{self._rpc_url()}: the answer carries no data part", url=self._rpc_url())
        if "error" in data:
            status = _ERROR_STATUS.get(data["error"], 400)
            cls = RemoteUnreachable if status == 429 else RemoteRejected
            detail = data.get("detail") or data["error"]
            raise cls(f"A2A {self._rpc_url()}: {detail}", url=self._rpc_url(), status=status, body=data)
        return _with(response, data)

    def _call(
        self, method: str, params: dict, correlation_id: str | None, timeout: float | None
    ) -> tuple[Response, dict]:
        url = self._rpc_url()
        headers = {"A2A-Version": A2A_VERSION}
        # The card names this URL: it came from outside (issue 17), vouched for only on the declared endpoint's origin.
        rpc = RemoteClient(
            url,
            token=self._token,
            policy=self.policy,
            headers=headers,
            guard=UrlGuard.for_endpoints([self.base_url]),
            signer=self._signer,
            remote=self.remote,
        )
        envelope = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
        # `serve --debug-a2a`: both messages in full (secrets redacted), under the call's correlation id.
        debug = logs.a2a_debug_enabled()
        correlation_id = correlation_id or logs.current("correlation_id") or uuid.uuid4().hex
        if debug:
            sent_headers = {**headers, "Authorization": f"Bearer {self._token}"} if self._token else headers
            with logs.bound(correlation_id=correlation_id, remote=self.remote or None):
                logs.a2a_debug("out", "request", url=url, headers=sent_headers, body=envelope)
        response = rpc.post("", envelope, correlation_id=correlation_id, timeout=timeout)
        if debug:
            with logs.bound(correlation_id=correlation_id, remote=self.remote or None):
                logs.a2a_debug("in", "response", url=url, headers=dict(response.headers), body=response.data)
        error = response.data.get("error")
        if isinstance(error, dict):
            code, text = error.get("code"), error.get("message") or "error"
            status = {-32001: 404, -32002: 409, -32602: 400, -32004: 400}.get(code, 400)
            raise RemoteRejected(
                f"A2A {url}: {method}: {text} ({code})", url=url, status=status, body={"detail": text, "code": code}
            )
        result = response.data.get("result")
        if not isinstance(result, dict):
            raise RemoteBadResponse(f"A2A {url}: {method}: no result in the answer", url=url)
        return response, result

    def card(self) -> dict:
        """The remote's agent card (fetched once per process and base URL). RemoteError when there is none."""
        with _cards_lock:
            known = _cards.get(self.base_url)
        if known is None:
            known = agent_card(self.base_url, policy=self.policy)
            with _cards_lock:
                _cards[self.base_url] = known
        return known

    def _rpc_url(self) -> str:
        url = jsonrpc_url(self.card())
        if not url:
            raise RemoteBadResponse(
                f"{self.base_url}{CARD_PATH} declares no JSON-RPC interface for A2A 1.0", url=self.base_url
            )
        return url

    def _unsupported(self, method: str, path: str) -> RemoteRejected:
        return RemoteRejected(
            f"{method} {path} has no A2A equivalent ({self.base_url} is reached over A2A)",
            url=self.base_url + path,
            status=404,
        )


def _with(response: Response, data: dict) -> Response:
    return Response(
        status=200,
        data=data,
        headers=response.headers,
        elapsed_ms=response.elapsed_ms,
        attempts=response.attempts,
        correlation_id=response.correlation_id,
    )
