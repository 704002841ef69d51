"""Credentials in `.sudocode/secrets.env` (gitignored, mode 0600).

The file is parsed with django-environ's dotenv parser but into a private mapping: secrets never land in
os.environ, where every child process would inherit them. It is re-read whenever it changes on disk, so a
running node picks up a rotated token without a restart. A variable set in the environment wins over the file.

Format, as django-environ reads it: `NAME=value` or `export NAME=value`, one per line; `#` starts a comment
only at the beginning of a line (a `#` inside a value is part of it, which matters for generated keys);
'single' or "double" quotes around the whole value are removed.
"""

import io
import logging
import os
import re
import subprocess
import threading
from pathlib import Path

import environ

from federation_site.files import write_atomic

SECRETS_FILENAME = "secrets.env"

logger = logging.getLogger(__name__)

# What django-environ accepts as an assignment (Env.read_env); anything else is skipped with a warning.
_ASSIGNMENT_RE = re.compile(r"\A(?:export )?([A-Za-z_0-9]+)=(.*)\Z")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_cache: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}
_cache_lock = threading.Lock()


def read_secrets(path: Path) -> dict[str, str]:
    """All NAME=value pairs of the file (a missing file has none); cached until the file changes."""
    path = Path(path).absolute()
    try:
        with open(path, encoding="utf-8") as handle:
            info = os.fstat(handle.fileno())
            # The inode changes on every atomic replace, which catches edits within one mtime tick.
            version = (info.st_mtime_ns, info.st_size, info.st_ino)
            with _cache_lock:
                cached = _cache.get(path)
            if cached and cached[0] == version:
                return dict(cached[1])
            text = handle.read()
    except FileNotFoundError:
        with _cache_lock:
            _cache.pop(path, None)
        return {}
    values = _parse(text, source=path)
    with _cache_lock:
        _cache[path] = (version, values)
    return dict(values)


def _parse(text: str, *, source: Path) -> dict[str, str]:
    kept = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line or line.startswith("#") or _ASSIGNMENT_RE.match(line):
            kept.append(line)
        else:
            # django-environ would log the whole line, which may hold a secret: say only where it is.
            logger.warning("%s line %d: ignored, not NAME=value", source, number)
    values: dict[str, str] = {}
    # Env.read_env writes into the class's ENVIRON; a throwaway subclass points that at our own dict.
    reader = type("_SecretsReader", (environ.Env,), {"ENVIRON": values})
    reader.read_env(io.StringIO("\n".join(kept)), overwrite=True)
    return values


def get_secret(path: Path, name: str, default: str | None = None) -> str | None:
    """The environment variable `name` if set, else the file's value, else `default`.

    An empty value counts as unset: an empty API key must never match an empty header.
    """
    value = os.environ.get(name) or read_secrets(path).get(name)
    return value or default


def set_secret(path: Path, name: str, value: str) -> None:
    """Set NAME=value in the file (replacing the existing line, else appending); other lines are kept."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid secret name {name!r}: use letters, digits and _")
    new_line = f"{name}={_format_value(value)}"
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    result: list[str] = []
    replaced = False
    for line in lines:
        match = _ASSIGNMENT_RE.match(line)
        if match and match[1] == name:
            # The parser keeps the last of repeated names, so every earlier copy must go too.
            if not replaced:
                result.append(("export " if line.startswith("export ") else "") + new_line)
                replaced = True
            continue
        result.append(line)
    if not replaced:
        result.append(new_line)
    write_secrets_text(path, "\n".join(result) + "\n")


def write_secrets_text(path: Path, text: str) -> None:
    """Replace the whole file atomically, readable by its owner only."""
    path = Path(path)
    write_atomic(path, text.encode("utf-8"), mode=0o600)
    with _cache_lock:
        _cache.pop(path.absolute(), None)


def _format_value(value: str) -> str:
    """`value` as a line django-environ reads back unchanged."""
    if any(char in value for char in "\r\n\x00"):
        raise ValueError("a secret cannot contain line breaks")
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
    if not quoted:
        return value  # taken verbatim, '#' and spaces included
    # A value that is itself wrapped in quotes would lose them: double-quote it, escaping \ and ".
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def token_env_name(remote_url: str) -> str:
    """The seed's token name: github.com/org/api-gateway -> REMOTE_REPO_TOKEN_API_GATEWAY."""
    segment = remote_url.strip().rstrip("/").rsplit("/", 1)[-1]
    if not segment:
        raise ValueError(f"cannot name a token for remote {remote_url!r}")
    # The seed maps "-" and "."; anything else that cannot appear in a variable name is mapped the same way.
    return "REMOTE_REPO_TOKEN_" + re.sub(r"[^A-Za-z0-9_]", "_", segment).upper()


def default_secrets_text(*, secret_key: str, api_key: str, webhook_secret: str) -> str:
    """The file `sudocode-fed init` writes."""
    return f"""\
# .sudocode/secrets.env: credentials for this federation node.
# This file is gitignored: never commit it, and keep it readable by its owner only (chmod 600).
# Changes are picked up without a restart. An environment variable of the same name wins over this file.
# One NAME=value per line; the value runs to the end of the line (a # inside it is part of the value).

# Django's signing key for this node.
DJANGO_SECRET_KEY={_format_value(secret_key)}

# Incoming auth: remotes send this key to call this node.
FEDERATION_API_KEY={_format_value(api_key)}

# Webhook signing secret (HMAC of webhook deliveries).
WEBHOOK_SIGNING_SECRET={_format_value(webhook_secret)}

# Who may scrape /metrics besides staff (Authorization: Bearer <token>); unset: staff only.
# METRICS_TOKEN=

# Outgoing auth: one bearer token per remote repo, named after the last segment of its url
# (github.com/org/api-gateway -> REMOTE_REPO_TOKEN_API_GATEWAY).
# REMOTE_REPO_TOKEN_API_GATEWAY=ghp_xxxxxxxxxxxx
# REMOTE_REPO_TOKEN_AUTH_SERVICE=ghp_yyyyyyyyyyyy
"""


def is_tracked_by_git(repo_root: Path, path: Path) -> bool:
    """Whether git tracks `path` (relative to `repo_root` if relative); False outside a repo or if no git."""
    try:
        result = subprocess.run(
            ["git", "-C", str(repo_root), "ls-files", "--error-unmatch", "--", str(path)],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
