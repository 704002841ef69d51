"""Structured logs: JSON lines (or readable text) through structlog, and the context every line of a cross-repo
operation carries (its correlation id, the remote, the request id).

Code logs with the standard library (`logging.getLogger(__name__).info("...", extra={...})`): cheap, and the
same for Django, daphne and Celery. Under `sudocode-fed serve` (SUDOCODE_LOG_FORMAT=json|text, which the worker
and beat inherit) settings.LOGGING routes every record through structlog's ProcessorFormatter (`formatter`), which
adds the bound context, the level, the logger and a UTC timestamp and renders one JSON object per line. Without
the variable (CLI commands) logging stays plain, and structlog (~0.2 s to import) is never imported.

The context is a ContextVar of our own, so binding it costs a dict copy and no import: `bound(...)` around an
incoming call (federation_site.asgi, every HTTP request) and around each outgoing call (remotes.client), `bind`
for what is learnt on the way (the caller's identity once authenticated, the request id once parsed). asgiref
copies the context into the threads that run sync code, so a view's lines carry what its request bound.

`--debug-a2a` (SUDOCODE_DEBUG_A2A=1) or the config's `logging.debug_a2a` logs every A2A message in and out in
full (`a2a_debug`), through `redact`: values of keys that name a secret (token, secret, authorization, password,
api key, signature, credentials, cookie) are replaced by "[redacted]".
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

FORMAT_ENV = "SUDOCODE_LOG_FORMAT"  # json | text: set by `serve --log-format`, inherited by its worker and beat
DEBUG_A2A_ENV = "SUDOCODE_DEBUG_A2A"  # "1": set by `serve --debug-a2a`
FORMATS = ("json", "text")
CONTEXT_KEYS = ("correlation_id", "remote", "request_id")
REDACTED = "[redacted]"

_context: ContextVar[Mapping[str, str]] = ContextVar("sudocode_log_context", default={})  # noqa: B039 (never mutated)
_SECRET_KEY = re.compile(
    r"token|secret|authorization|password|passwd|api[_-]?key|signature|credential|cookie|private[_-]?key", re.I
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[^\s\"',]+", re.I)
_a2a_logger = logging.getLogger("sudocode.a2a")


def log_format() -> str | None:
    """The format `serve` asked for ("json" or "text"), or None (plain stdlib logging: CLI commands)."""
    value = os.environ.get(FORMAT_ENV, "").strip().lower()
    return value if value in FORMATS else None


# --- the context --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Add `fields` (empty values ignored) to the context of every line logged inside the block, and of the
    blocks it calls; `bind`s made inside end with it too."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Add `fields` to the current context until the enclosing `bound` block ends."""
    given = {k: str(v) for k, v in fields.items() if v}
    if given:
        _context.set({**_context.get(), **given})


def current(name: str) -> str | None:
    """One value of the current context ("correlation_id", "remote", "request_id"), or None."""
    return _context.get().get(name)


def correlation_id_of(headers: Any) -> str:
    """The X-Correlation-ID among ASGI `headers` ([(b"name", b"value")]) when usable (printable, at most 128
    characters), else a new one: the id an incoming call is known by in this node's logs and audit rows."""
    for name, value in headers:
        if name == b"x-correlation-id":
            given = value.decode("latin-1").strip()
            if given and given.isprintable():
                return given[:128]
    return uuid.uuid4().hex


def add_context(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor: the bound context, under what the line itself says."""
    for key, value in _context.get().items():
        event_dict.setdefault(key, value)
    return event_dict


# --- the formatter (only imported through settings.LOGGING under serve) ----------------------------------------


def formatter(format: str = "json") -> logging.Formatter:
    """A logging.Formatter for settings.LOGGING: structlog's ProcessorFormatter rendering each record, stdlib's
    or structlog's, as one JSON object per line (`format="json"`) or an aligned readable line ("text")."""
    import structlog

    logging.captureWarnings(True)  # a library's warnings too are log lines, not bare text on stderr
    pre_chain = [
        add_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if format == "json":
        render = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer(default=str)]
    else:
        render = [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(  # structlog's own loggers, should anything use them: the same chain, then the formatter
        processors=[
            add_context,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
    )


def plain_logging_config(level: str) -> dict:
    """settings.LOGGING of CLI commands: the standard library's lines, `level` ("WARNING" by default) and up, on
    stderr as they are."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "root": {"handlers": ["console"], "level": level},
    }


def apply_logging(config: dict) -> None:
    """Apply settings.LOGGING as django.setup() does (`logging.config.dictConfig`). The plain config of CLI
    commands (`plain_logging_config`) is applied by hand, to the same effect: importing logging.config (with
    logging.handlers and socketserver) is ~4 ms of a command's start (issue 16). Raises ValueError for a level
    that is not one (as dictConfig does)."""
    level = config.get("root", {}).get("level")
    if isinstance(level, str) and config == plain_logging_config(level):
        root = logging.getLogger()
        root.setLevel(level)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(logging.StreamHandler())
        return
    from logging.config import dictConfig

    dictConfig(config)


def logging_config(format: str, level: str) -> dict:
    """settings.LOGGING under serve: everything (Django, daphne, Celery, ours) to stderr through `formatter`.
    Celery's per-task INFO lines (a beat task every half second) are left out below WARNING."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": "federation_site.logs.formatter", "format": format}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "celery": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
            "django.channels.server": {"level": "WARNING"},
        },
    }


# --- A2A debug logging --------------------------------------------------------------------------------------


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like: dicts, lists, strings) with every value under a key that names a secret
    replaced by "[redacted]", and bearer/basic credentials inside strings too."""
    if isinstance(value, Mapping):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    return value


def a2a_debug_enabled() -> bool:
    """`serve --debug-a2a`, or `logging.debug_a2a: true` in federation.config.json."""
    if os.environ.get(DEBUG_A2A_ENV) == "1":
        return True
    from federation_site import node

    try:
        cfg = node.config()
    except Exception:  # no repository, or no config: no switch
        return False
    return bool(cfg is not None and cfg.logging.debug_a2a)


def a2a_debug(direction: str, what: str, *, url: str, headers: Mapping[str, str] | None = None, body: Any) -> None:
    """Log one A2A message in full, redacted: `direction` "in" or "out", `what` "request" or "response"."""
    _a2a_logger.info(
        f"a2a {direction} {what}",
        extra={
            "a2a_direction": direction,
            "a2a_kind": what,
            "url": url,
            "headers": redact(dict(headers or {})),
            "body": redact(body),
        },
    )
