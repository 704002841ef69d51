"""This node's Ed25519 key pair (issue 17): the private key in `.sudocode/secrets.env` (FEDERATION_SIGNING_KEY),
the public key in federation.config.json (`local_identity.public_key`), in `discover` and in the agent card.

Text forms, shared by every node: a public key is `ed25519:<base64url of the 32 raw bytes, no padding>`; its
fingerprint (what `remote add` shows for the admin to compare, as SSH does) is `SHA256:<base64 of the SHA-256 of
those bytes, no padding>`, and it is also the `keyid` of every signature made with it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation_site.secrets import get_secret, set_secret

SIGNING_KEY_ENV = "FEDERATION_SIGNING_KEY"
_PREFIX = "ed25519:"


class KeyFormatError(ValueError):
    """A key in a form this node cannot read; `str()` says which and why."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_text(key: Ed25519PublicKey) -> str:
    return _PREFIX + _b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


@functools.lru_cache(maxsize=256)
def parse_public_key(text: str) -> Ed25519PublicKey:
    """The key `ed25519:<base64url>` names; KeyFormatError when it is not one."""
    if not isinstance(text, str) or not text.startswith(_PREFIX):
        raise KeyFormatError(f"expected 'ed25519:<base64url of 32 bytes>', got {str(text)[:60]!r}")
    try:
        raw = _unb64(text[len(_PREFIX) :])
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise KeyFormatError(f"not an Ed25519 public key: {exc}") from None


def fingerprint(public_key: str | Ed25519PublicKey) -> str:
    """`SHA256:<base64>` of the raw public key (the text form, remembered per text as parse_public_key does: every
    verified message asks for its sender's; or the key)."""
    if isinstance(public_key, str):
        return _text_fingerprint(public_key)
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode()


@functools.lru_cache(maxsize=256)
def _text_fingerprint(text: str) -> str:
    return fingerprint(parse_public_key(text))


def private_key_text(key: Ed25519PrivateKey) -> str:
    return _b64(
        key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    )


@functools.lru_cache(maxsize=8)
def parse_private_key(text: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(_unb64(text.strip()))
    except ValueError as exc:
        raise KeyFormatError(
            f"{SIGNING_KEY_ENV} is not an Ed25519 private key (base64url of 32 bytes): {exc}"
        ) from None


@dataclass(frozen=True)
class NodeKey:
    """What this node signs with: the private key and its key id (the public key's fingerprint)."""

    private_key: Ed25519PrivateKey

    @functools.cached_property
    def public_key(self) -> str:
        return public_key_text(self.private_key.public_key())

    @functools.cached_property
    def key_id(self) -> str:
        return fingerprint(self.private_key.public_key())


def node_key(secrets_path: Path) -> NodeKey | None:
    """This node's key from secrets.env (or the environment), None when it has none yet."""
    text = get_secret(secrets_path, SIGNING_KEY_ENV)
    return NodeKey(parse_private_key(text)) if text else None


def ensure_node_key(secrets_path: Path, config_path: Path) -> tuple[NodeKey, bool]:
    """The node's key, made now when secrets.env has none (at `init`, or the first `serve`), and its public key
    written to federation.config.json's `local_identity.public_key` when the file names another one.
    Returns (key, whether anything was written)."""
    changed = False
    key = node_key(secrets_path)
    if key is None:
        key = NodeKey(Ed25519PrivateKey.generate())
        set_secret(secrets_path, SIGNING_KEY_ENV, private_key_text(key.private_key))
        changed = True
    if config_path.exists():
        from federation_site.config import write_config

        data = json.loads(config_path.read_text(encoding="utf-8"))
        identity = data.get("local_identity")
        if isinstance(identity, dict) and identity.get("public_key") != key.public_key:
            identity["public_key"] = key.public_key
            write_config(config_path, data)
            changed = True
    return key, changed


def local_key() -> NodeKey | None:
    """This node's key (from its secrets.env), None when it has none yet (then nothing is signed)."""
    from federation_site import node

    try:
        return node_key(node.layout().secrets_path)
    except (KeyFormatError, node.RepoNotFound):
        return None
