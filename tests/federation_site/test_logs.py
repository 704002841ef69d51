"""federation_site/logs.py without nodes: the formatter, the bound context, redaction."""

from __future__ import annotations

import json
import logging

import pytest

from federation_site import logs


@pytest.fixture(autouse=True)
def _warnings_stay_pytests():
    yield
    logging.captureWarnings(False)  # logs.formatter routes warnings into logging, as serve wants; not here


def render(record_logger: str, message: str, *, format: str = "json", **extra) -> str:
    record = logging.getLogger(record_logger).makeRecord(
        record_logger, logging.INFO, __file__, 1, message, (), None, extra=extra or None
    )
    return logs.formatter(format).format(record)


def test_a_stdlib_line_becomes_one_json_object_with_the_bound_context():
    with logs.bound(correlation_id="corr-1", remote="github.com/org/b"):
        logs.bind(request_id="req-1")
        line = render("django.request", "hello %s", operation="query")
    record = json.loads(line)
    assert "\n" not in line
    assert record["event"] == "hello %s" and record["logger"] == "django.request" and record["level"] == "info"
    assert (record["correlation_id"], record["remote"], record["request_id"]) == ("corr-1", "github.com/org/b", "req-1")
    assert record["operation"] == "query" and record["timestamp"].endswith("Z")


def test_what_a_line_says_wins_over_the_context_and_the_context_ends_with_its_block():
    before = logs.current("remote")
    with logs.bound(remote="github.com/org/b"):
        assert json.loads(render("x", "m", remote="github.com/org/c"))["remote"] == "github.com/org/c"
        logs.bind(remote="github.com/org/d")
        assert logs.current("remote") == "github.com/org/d"
    assert logs.current("remote") == before


def test_the_text_format_is_one_readable_line():
    with logs.bound(correlation_id="corr-2"):
        line = render("sudocode.audit", "incoming query success", format="text", remote="github.com/org/b")
    assert "incoming query success" in line and "correlation_id=corr-2" in line and "remote=github.com/org/b" in line
    assert not line.lstrip().startswith("{")


def test_empty_values_are_not_bound():
    with logs.bound(correlation_id="", remote=None, request_id="r"):
        assert logs.current("correlation_id") is None and logs.current("request_id") == "r"


def test_redact_hides_values_under_secret_names_and_credentials_in_text():
    given = {
        "Authorization": "Bearer sfk_abc",
        "headers": {"x-api-key": "k", "Cookie": "sessionid=1", "accept": "application/json"},
        "params": {"message": {"metadata": {"callback_token": "t", "secret": "s", "title": "kept"}}},
        "list": [{"password": "p"}, "Bearer sfk_in_text and more", 3],
        "signature": "v1=abc",
    }
    shown = logs.redact(given)
    assert shown["Authorization"] == shown["signature"] == logs.REDACTED
    assert shown["headers"] == {"x-api-key": logs.REDACTED, "Cookie": logs.REDACTED, "accept": "application/json"}
    assert shown["params"]["message"]["metadata"] == {
        "callback_token": logs.REDACTED,
        "secret": logs.REDACTED,
        "title": "kept",
    }
    assert shown["list"] == [{"password": logs.REDACTED}, "Bearer [redacted] and more", 3]
    assert "sfk_" not in json.dumps(shown)
    assert given["Authorization"] == "Bearer sfk_abc"  # a copy


def test_the_cli_format_is_left_plain_unless_serve_asks(monkeypatch):
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    assert logs.log_format() is None
    monkeypatch.setenv(logs.FORMAT_ENV, "text")
    assert logs.log_format() == "text"
    monkeypatch.setenv(logs.FORMAT_ENV, "xml")
    assert logs.log_format() is None


def test_debug_a2a_follows_the_switch(monkeypatch):
    monkeypatch.setenv(logs.DEBUG_A2A_ENV, "1")
    assert logs.a2a_debug_enabled()
    monkeypatch.delenv(logs.DEBUG_A2A_ENV)
    assert not logs.a2a_debug_enabled()  # no repository here: no config, no switch


def _root_state() -> tuple:
    root = logging.getLogger()
    return root.level, [(type(h), getattr(h, "stream", None), h.level, h.formatter) for h in root.handlers]


@pytest.mark.parametrize("level", ["WARNING", "DEBUG"])
def test_the_plain_cli_logging_is_applied_as_dictconfig_would(level):
    # CLI commands apply their plain config by hand, without importing logging.config (issue 16): same effect.
    import logging.config

    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        logging.config.dictConfig(logs.plain_logging_config(level))
        expected = _root_state()
        root.addHandler(logging.NullHandler())  # a handler the config replaces, as dictConfig does
        logs.apply_logging(logs.plain_logging_config(level))
        assert _root_state() == expected
        assert expected[0] == getattr(logging, level)
        with pytest.raises(ValueError):
            logs.apply_logging(logs.plain_logging_config("LOUD"))
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
