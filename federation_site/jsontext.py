"""How error messages name a place and a value in a JSON document: one way for federation.config.json and
for A2A messages alike (`remote_repos[1].trust_level: 'trustd' is not one of ...`)."""

from __future__ import annotations

from typing import Any


def format_path(loc: tuple[str | int, ...]) -> str:
    """("remote_repos", 1, "trust_level") -> "remote_repos[1].trust_level"."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            # A key is echoed as sent, but short and encodable (an unknown key may be anything).
            key = str(part)[:80].encode("utf-8", "backslashreplace").decode("utf-8")
            text += f".{key}" if text else key
    return text


def show(value: Any) -> str:
    """A value as it was written in JSON (strings quoted like Python, so 'abc'), kept short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large integer"  # repr() of a huge int is slow, or refused beyond 4300 digits
    if isinstance(value, str) and len(value) > 80:
        return repr(value[:77] + "...")
    return repr(value)
