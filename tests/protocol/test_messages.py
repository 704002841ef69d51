"""The A2A wire format (federation/messages.py): the seed's examples, every kind of bad message, and fuzzing."""

import json
from datetime import UTC, datetime
from typing import get_args

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import messages
from protocol.messages import (
    MAX_MESSAGE_BYTES,
    SUPPORTED_TYPES,
    DiscoverMessage,
    DiscoverResponse,
    MessageError,
    QueryMessage,
    QueryResponse,
    dump,
    message_json_schema,
    parse_body,
    parse_message,
    parse_query,
    parse_response,
)
from tracker.jsonl import ISSUE_STATUSES

# The seed's examples (section 3, "A2A Message Types", and "API Design"), verbatim.
SEED_DISCOVER = {
    "type": "discover",
    "from": "github.com/org/repo-a",
    "to": "github.com/org/repo-b",
    "timestamp": "2025-11-06T12:00:00Z",
}
SEED_DISCOVER_RESPONSE = {
    "type": "discover_response",
    "capabilities": {
        "protocols": ["rest", "websocket", "git"],
        "operations": ["query_specs", "query_issues", "create_issues", "subscribe"],
        "schemas_version": "1.0",
        "trust_level": "verified",
        "endpoints": {
            "rest": "https://repo-b.dev/api/v1",
            "ws": "wss://repo-b.dev/api/v1/ws",
            "git": "https://github.com/org/repo-b.git",
        },
    },
}
SEED_QUERY = {
    "type": "query",
    "from": "github.com/org/frontend",
    "to": "github.com/org/api-service",
    "query": {
        "entity": "issue",
        "filters": {"labels": ["api", "auth"], "status": "open", "priority": [0, 1]},
        "include": ["relationships", "spec_refs"],
    },
}
SEED_QUERY_RESPONSE = {
    "type": "query_response",
    "results": [
        {
            "id": "issue-042",
            "uuid": "550e8400-e29b-41d4-a716-446655440000",
            "title": "Add OAuth token endpoint",
            "status": "open",
            "priority": 1,
            "spec_refs": ["spec-015"],
            "canonical_ref": "org/api-service#issue-042",
        }
    ],
    "metadata": {"total": 1, "cached_at": "2025-11-06T12:05:00Z"},
}
SEED_REST_QUERY_BODY = {
    "entity": "issue",
    "filters": {"status": "open", "labels": ["api"]},
    "include": ["relationships"],
}


def query(**body) -> dict:
    return {"type": "query", "from": "github.com/org/frontend", "query": {"entity": "issue", **body}}


def errors_of(data, parse=parse_message) -> list[tuple[str, str]]:
    with pytest.raises(MessageError) as caught:
        parse(data)
    return [(error["path"], error["message"]) for error in caught.value.errors]


def first_error(data, parse=parse_message) -> tuple[str, str]:
    return errors_of(data, parse)[0]


# --- the seed's examples ------------------------------------------------------------------------------------


def test_seed_discover_parses_and_dumps_back_unchanged():
    message = parse_message(SEED_DISCOVER)
    assert isinstance(message, DiscoverMessage)
    assert message.from_ == "github.com/org/repo-a"
    assert message.timestamp == datetime(2025, 11, 6, 12, 0, tzinfo=UTC)
    assert dump(message) == SEED_DISCOVER


def test_seed_query_parses():
    message = parse_message(SEED_QUERY)
    assert isinstance(message, QueryMessage)
    assert message.query.entity == "issue"
    assert message.query.filters.labels == ["api", "auth"]
    assert message.query.filters.status == "open"
    assert message.query.filters.priority == [0, 1]
    assert message.query.include == ["relationships", "spec_refs"]
    assert message.query.limit == 50
    assert parse_message(dump(message)) == message


def test_seed_responses_parse_and_dump_back_unchanged():
    discover = parse_response(SEED_DISCOVER_RESPONSE)
    assert isinstance(discover, DiscoverResponse)
    assert discover.capabilities.trust_level == "verified"
    assert discover.capabilities.endpoints.ws == "wss://repo-b.dev/api/v1/ws"
    assert dump(discover) == SEED_DISCOVER_RESPONSE

    answer = parse_response(SEED_QUERY_RESPONSE)
    assert isinstance(answer, QueryResponse)
    assert answer.metadata.total == 1
    assert answer.metadata.next_cursor is None
    assert dump(answer) == SEED_QUERY_RESPONSE


def test_seed_rest_query_body_is_wrapped_without_a_sender():
    message = parse_query(SEED_REST_QUERY_BODY)
    assert isinstance(message, QueryMessage)
    assert message.from_ is None
    assert message.query.filters.labels == ["api"]
    assert "from" not in dump(message)


def test_seed_examples_validate_against_the_json_schema():
    schema = message_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    requests = jsonschema.Draft202012Validator(schema)
    responses = jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/Response"})
    for example in (SEED_DISCOVER, SEED_QUERY):
        requests.validate(example)
    for example in (SEED_DISCOVER_RESPONSE, SEED_QUERY_RESPONSE):
        responses.validate(example)
    assert not requests.is_valid({**SEED_DISCOVER, "form": "github.com/org/a"})
    assert not requests.is_valid({**SEED_DISCOVER, "type": "delegate"})


# --- the module's contract ----------------------------------------------------------------------------------


def test_supported_types_follow_the_union():
    assert SUPPORTED_TYPES == ("discover", "query", "mutate", "subscribe", "delegate")
    assert messages.RESPONSE_TYPES == (
        "discover_response",
        "query_response",
        "mutate_response",
        "subscribe_response",
        "delegate_response",
    )


# The seed's subscribe message and event notification (section "Subscribe"), word for word.
SEED_SUBSCRIBE = {
    "type": "subscribe",
    "from": "github.com/org/frontend",
    "to": "github.com/org/api-service",
    "watch": {"entity_type": "issue", "filters": {"labels": ["frontend-blocking"]}},
    "callback": {
        "url": "https://frontend.dev/api/v1/webhooks/cross-repo",
        "auth": {"type": "bearer", "token": "..."},
    },
}
SEED_EVENT = {
    "type": "event",
    "from": "github.com/org/api-service",
    "to": "github.com/org/frontend",
    "event": {
        "type": "issue_updated",
        "entity": {
            "id": "issue-084",
            "uuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "canonical_ref": "org/api-service#issue-084",
        },
        "changes": {"status": {"from": "open", "to": "closed"}},
        "timestamp": "2025-11-06T14:30:00Z",
    },
}


def test_the_seeds_subscribe_message_parses():
    message = messages.parse_message(SEED_SUBSCRIBE)
    assert message.watch.filters.labels == ["frontend-blocking"]
    assert message.callback.auth.token == "..."
    assert messages.dump(message) == SEED_SUBSCRIBE


def test_an_event_carries_its_id_seq_and_entity_kind_besides_the_seeds_fields():
    with pytest.raises(MessageError) as exc:
        messages.parse_event(SEED_EVENT)
    paths = {e["path"] for e in exc.value.errors}
    assert paths == {"event.id", "event.seq", "event.entity.kind"}
    ours = json.loads(json.dumps(SEED_EVENT))
    ours["event"].update(id="5d0f4f0e-8f0c-4a4e-9a43-2f5c7c3f3c11", seq=42)
    ours["event"]["entity"]["kind"] = "issue"
    event = messages.parse_event(ours).event
    assert (event.seq, event.changes["status"].to) == (42, "closed")


def test_statuses_are_sudocodes():
    assert get_args(messages.Status) == ISSUE_STATUSES


def test_message_error_as_json_and_str():
    error = MessageError.at("query.entity", "missing")
    assert str(error) == "query.entity: missing"
    assert error.as_json() == {"error": "invalid message", "errors": [{"path": "query.entity", "message": "missing"}]}
    assert str(MessageError.at("", "expected a JSON object, got null")) == "expected a JSON object, got null"


def test_json_schema_has_the_requests_at_the_root_and_the_responses_in_defs():
    schema = message_json_schema()
    assert schema["$ref"] == "#/$defs/Message"
    defs = schema["$defs"]
    assert {"Message", "Response", "DiscoverMessage", "QueryMessage", "DiscoverResponse", "QueryResponse"} <= set(defs)
    assert defs["Message"]["discriminator"]["propertyName"] == "type"
    assert defs["QueryMessage"]["required"][:2] == ["type", "from"]
    assert defs["QueryMessage"]["properties"]["from"]["type"] == "string"  # null only for a bare REST body
    json.dumps(schema)


def test_json_schema_refs_can_point_into_openapi_components():
    schema = message_json_schema(ref_template="#/components/schemas/{model}")
    assert schema["$ref"] == "#/components/schemas/Message"
    assert "#/$defs/" not in json.dumps(schema)


def test_json_schema_of_one_model_is_self_contained():
    for tp in (messages.QueryMessage, messages.DiscoverResponse, messages.QueryResponse, messages.Message):
        schema = messages.json_schema_of(tp)
        assert "$ref" not in json.dumps(schema)
        jsonschema.Draft202012Validator.check_schema(schema)
    requests = jsonschema.Draft202012Validator(messages.json_schema_of(messages.Message))
    assert requests.is_valid(SEED_QUERY) and requests.is_valid(SEED_DISCOVER)
    assert not requests.is_valid({**SEED_QUERY, "query": {"entity": "bug"}})
    assert jsonschema.Draft202012Validator(messages.json_schema_of(DiscoverResponse)).is_valid(SEED_DISCOVER_RESPONSE)


def test_dump_uses_aliases_utc_with_z_and_drops_none():
    message = DiscoverMessage(from_="github.com/org/a", timestamp=datetime(2025, 11, 6, 14, 0, tzinfo=UTC))
    assert dump(message) == {"type": "discover", "from": "github.com/org/a", "timestamp": "2025-11-06T14:00:00Z"}


def test_dump_keeps_nulls_inside_results():
    answer = parse_response({**SEED_QUERY_RESPONSE, "results": [{"id": "issue-1", "assignee": None}]})
    assert dump(answer)["results"] == [{"id": "issue-1", "assignee": None}]


# --- what is accepted -----------------------------------------------------------------------------------------


def test_timestamps_are_stored_in_utc():
    offset = parse_message({**SEED_DISCOVER, "timestamp": "2025-11-06T14:00:00+02:00"})
    assert offset.timestamp == datetime(2025, 11, 6, 12, 0, tzinfo=UTC)
    naive = parse_message({**SEED_DISCOVER, "timestamp": "2025-11-06T12:00:00"})  # sudocode's JSONL: UTC
    assert naive.timestamp == datetime(2025, 11, 6, 12, 0, tzinfo=UTC)
    assert dump(offset)["timestamp"] == "2025-11-06T12:00:00Z"


def test_tags_is_another_name_for_labels():
    message = parse_message(query(filters={"tags": ["api"]}))
    assert message.query.filters.labels == ["api"]
    assert dump(message)["query"]["filters"] == {"labels": ["api"]}


def test_status_and_priority_take_one_value_or_a_list():
    message = parse_message(query(filters={"status": ["open", "blocked"], "priority": 0}))
    assert message.query.filters.status == ["open", "blocked"]
    assert message.query.filters.priority == 0


def test_every_filter_and_the_envelope_together():
    message = parse_message(
        {
            **query(
                filters={
                    "status": "needs_review",
                    "labels": ["api"],
                    "priority": [4],
                    "ids": ["issue-042", "550e8400-e29b-41d4-a716-446655440000"],
                    "spec_refs": ["spec-015"],
                    "updated_since": "2025-11-01",
                },
                include=["spec_refs"],
                limit=500,
                cursor="opaque",
            ),
            "to": "github.com/org/api-service",
            "correlation_id": "c" * 128,
        }
    )
    assert message.query.filters.updated_since == datetime(2025, 11, 1, tzinfo=UTC)
    assert parse_message(dump(message)) == message


def test_parse_query_takes_a_whole_query_message():
    assert parse_query(SEED_QUERY) == parse_message(SEED_QUERY)


def test_a_full_message_needs_a_sender_even_at_the_query_endpoint():
    assert first_error({**SEED_QUERY, "from": None}, parse_query) == ("from", "expected a string, got null")
    assert first_error({**SEED_QUERY, "from": None}) == ("from", "expected a string, got null")


# --- what is refused, and where -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "shown"),
    [(None, "null"), ([], "a list"), (5, "5"), ("discover", "'discover'"), (True, "true"), (1.5, "1.5")],
)
def test_a_message_must_be_an_object(data, shown):
    assert errors_of(data) == [("", f"expected a JSON object, got {shown}")]
    assert errors_of(data, parse_query) == [("", f"expected a JSON object, got {shown}")]


def test_type_is_required_and_must_be_supported():
    assert errors_of({"from": "github.com/org/a"}) == [
        ("type", "missing (supported: discover, query, mutate, subscribe, delegate)")
    ]
    assert errors_of({**SEED_DISCOVER, "type": 5}) == [("type", "expected a string, got 5")]
    assert errors_of({**SEED_DISCOVER, "type": "handoff"}) == [
        ("type", "'handoff' is not supported here (supported: discover, query, mutate, subscribe, delegate)")
    ]
    assert errors_of(SEED_DISCOVER, parse_query) == [("type", "'discover' is not supported here (supported: query)")]
    assert errors_of(SEED_QUERY, parse_response) == [
        (
            "type",
            "'query' is not supported here "
            "(supported: discover_response, query_response, mutate_response, subscribe_response, delegate_response)",
        )
    ]


def test_a_missing_field_is_named():
    assert errors_of({"type": "discover"}) == [("from", "missing")]
    assert errors_of({"type": "query", "from": "github.com/org/a", "query": {}}) == [("query.entity", "missing")]
    assert errors_of({"type": "query", "from": "github.com/org/a"}) == [("query", "missing")]


def test_a_wrong_type_is_named():
    assert first_error(query(limit="5")) == ("query.limit", "expected an integer, got '5'")
    assert first_error(query(filters=[])) == ("query.filters", "expected an object, got a list")
    assert first_error(query(filters={"labels": "api"})) == ("query.filters.labels", "expected a list, got 'api'")
    assert first_error(query(filters={"priority": [0, True]})) == (
        "query.filters.priority[1]",
        "expected an integer, got true",
    )
    assert first_error(query(filters={"priority": 1.0})) == ("query.filters.priority", "expected an integer, got 1.0")
    assert first_error({**SEED_DISCOVER, "from": 42}) == ("from", "expected a string, got 42")


def test_an_extra_key_is_refused_with_a_suggestion():
    assert errors_of({**SEED_DISCOVER, "form": "x"}) == [("form", "unknown key (did you mean 'from'?)")]
    assert errors_of({**SEED_DISCOVER, "zzz": 1}) == [
        ("zzz", "unknown key (expected one of: type, from, to, timestamp, correlation_id)")
    ]
    assert errors_of(query(filters={"label": ["api"]})) == [
        ("query.filters.label", "unknown key (did you mean 'labels'?)")
    ]
    assert errors_of({"type": "discover", "from_": "github.com/org/a"}) == [
        ("from", "missing"),
        ("from_", "unknown key (did you mean 'from'?)"),
    ]


def test_a_bad_status_names_the_choices():
    expected = "is not one of open, in_progress, blocked, needs_review, closed"
    assert errors_of(query(filters={"status": "opn"})) == [("query.filters.status", f"'opn' {expected}")]
    assert errors_of(query(filters={"status": ["open", "done"]})) == [("query.filters.status[1]", f"'done' {expected}")]
    assert errors_of(query(filters={"status": {}})) == [
        ("query.filters.status", "expected one of open, in_progress, blocked, needs_review, closed, got an object")
    ]
    assert errors_of(query(entity="issues")) == [("query.entity", "'issues' is not one of issue, spec")]


def test_out_of_range_values_are_refused():
    assert errors_of(query(limit=0)) == [("query.limit", "must be at least 1, got 0")]
    assert errors_of(query(limit=501)) == [("query.limit", "must be at most 500, got 501")]
    assert errors_of(query(limit=10**5000)) == [("query.limit", "must be at most 500, got a very large integer")]
    assert errors_of(query(filters={"priority": [0, 5]})) == [("query.filters.priority[1]", "must be at most 4, got 5")]
    assert errors_of(query(filters={"priority": -1})) == [("query.filters.priority", "must be at least 0, got -1")]
    assert errors_of(query(filters={"status": ["open"] * 6})) == [
        ("query.filters.status", "must have at most 5 items (got 6)")
    ]
    assert errors_of(query(filters={"ids": [f"issue-{n}" for n in range(501)]})) == [
        ("query.filters.ids", "must have at most 500 items (got 501)")
    ]
    assert errors_of({**SEED_DISCOVER, "correlation_id": "c" * 129}) == [
        ("correlation_id", "must be at most 128 characters (got 129)")
    ]
    assert errors_of(query(filters={"labels": ["x" * 501]})) == [
        ("query.filters.labels[0]", "must be at most 500 characters (got 501)")
    ]


def test_empty_lists_and_strings_are_refused():
    assert errors_of(query(filters={"labels": []})) == [("query.filters.labels", "must not be empty")]
    assert errors_of(query(filters={"status": []})) == [("query.filters.status", "must not be empty")]
    assert errors_of(query(filters={"ids": [""]})) == [("query.filters.ids[0]", "must not be empty")]


def test_labels_and_tags_together_are_refused():
    assert errors_of(query(filters={"labels": ["a"], "tags": ["b"]})) == [
        ("query.filters.tags", "give labels or tags, not both (tags is another name for labels)")
    ]


def test_control_characters_and_bad_unicode_are_refused():
    assert errors_of(query(filters={"labels": ["a\x00b"]})) == [
        ("query.filters.labels[0]", "must not contain control characters")
    ]
    assert errors_of(query(cursor="\ud800")) == [("query.cursor", "must be valid Unicode text")]


def test_identities_and_urls_are_checked():
    reason = "is not a repo identity (expected host/path like 'github.com/org/repo')"
    assert errors_of({**SEED_DISCOVER, "from": "https://github.com/org/a"}) == [
        ("from", f"'https://github.com/org/a' {reason}")
    ]
    assert errors_of({**SEED_DISCOVER, "to": "frontend"}) == [("to", f"'frontend' {reason}")]
    endpoints = {**SEED_DISCOVER_RESPONSE["capabilities"]["endpoints"], "ws": "https://repo-b.dev/ws"}
    bad = {**SEED_DISCOVER_RESPONSE, "capabilities": {**SEED_DISCOVER_RESPONSE["capabilities"], "endpoints": endpoints}}
    assert errors_of(bad, parse_response) == [
        ("capabilities.endpoints.ws", "'https://repo-b.dev/ws' is not a ws(s) URL")
    ]


def test_bad_timestamps_are_refused():
    expected = "expected an ISO 8601 date-time like '2025-11-06T12:00:00Z'"
    assert errors_of({**SEED_DISCOVER, "timestamp": "yesterday"}) == [("timestamp", f"{expected}, got 'yesterday'")]
    assert errors_of({**SEED_DISCOVER, "timestamp": 1762430400}) == [("timestamp", f"{expected}, got 1762430400")]
    assert errors_of(query(filters={"updated_since": "9999-12-31T23:59:59-12:00"})) == [
        ("query.filters.updated_since", "9999-12-31T23:59:59-12:00 is out of range in UTC")
    ]


def test_every_problem_is_listed():
    assert errors_of(query(entity="bug", limit=0, filters={"status": "opn", "prio": 1})) == [
        ("query.entity", "'bug' is not one of issue, spec"),
        ("query.filters.status", "'opn' is not one of open, in_progress, blocked, needs_review, closed"),
        ("query.filters.prio", "unknown key (did you mean 'priority'?)"),
        ("query.limit", "must be at least 1, got 0"),
    ]


def test_the_number_of_problems_listed_is_capped():
    assert len(errors_of({**SEED_DISCOVER, **{f"x{n}": n for n in range(100)}})) == messages.MAX_ERRORS


def test_a_bare_query_body_reports_paths_relative_to_itself():
    assert errors_of({"entity": "issue", "filters": {"status": "opn"}}, parse_query) == [
        ("filters.status", "'opn' is not one of open, in_progress, blocked, needs_review, closed")
    ]
    assert errors_of({"filters": {}}, parse_query) == [("entity", "missing")]
    assert errors_of({"entity": "issue", "from": "github.com/org/a"}, parse_query)[0] == (
        "from",
        "unknown key (expected one of: entity, filters, include, limit, cursor)",
    )
    assert errors_of({"from": "github.com/org/a", "query": {"entity": "issue"}}, parse_query) == [
        ("type", "missing (supported: query)")
    ]


# --- decoding a body ----------------------------------------------------------------------------------------


def test_parse_body_decodes_json():
    assert parse_body(json.dumps(SEED_QUERY).encode()) == SEED_QUERY
    assert parse_body("\ufeff{}".encode()) == {}


def test_parse_body_refuses_a_body_over_the_limit():
    padded = b'{"type": "discover"' + b" " * (MAX_MESSAGE_BYTES - 20) + b"}"
    assert len(padded) == MAX_MESSAGE_BYTES
    assert parse_body(padded) == {"type": "discover"}
    assert errors_of(padded + b" ", parse_body) == [
        ("", f"the message is {MAX_MESSAGE_BYTES + 1} bytes; the limit is {MAX_MESSAGE_BYTES} bytes")
    ]


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (b'{"a": "\xff"}', "", "not valid UTF-8 (byte 7)"),
        (b'{"type": "discover",\n "from": }', "", "invalid JSON at line 2, column 10: Expecting value"),
        (b"", "", "invalid JSON at line 1, column 1: Expecting value"),
        (b'{"limit": NaN}', "", "invalid JSON: NaN is not JSON"),
        (b"[1e400]", "", "invalid JSON: 1e400 is out of range"),
        (b"1" * 101, "", "invalid JSON: a number has more than 100 digits"),
        (b"[" * 65 + b"]" * 65, "", "nested deeper than 64 levels"),
        (b"[" * 200_000, "", "nested deeper than 64 levels"),
        (b'{"query": {"filters": {"status": "open", "status": "closed"}}}', "query.filters.status", "duplicate key"),
        (b'{"from": "\\ud800"}', "from", "not valid Unicode (a lone surrogate escape)"),
        (b'{"\\udc00": 1}', "", "a key is not valid Unicode (a lone surrogate escape)"),
    ],
)
def test_parse_body_refuses(raw, path, message):
    assert errors_of(raw, parse_body) == [(path, message)]


def test_parse_body_accepts_64_levels_and_escaped_pairs():
    assert parse_body(b"[" * 64 + b"]" * 64) is not None
    assert parse_body(b'{"title": "\\ud83d\\ude00 \\\\ud800"}') == {"title": "\U0001f600 \\ud800"}


# --- fuzzing: any JSON value in, a message or a MessageError out --------------------------------------------

FIELD_NAMES = sorted(
    {
        "type", "from", "to", "timestamp", "correlation_id", "query", "entity", "filters", "include", "limit",
        "cursor", "status", "labels", "tags", "priority", "ids", "spec_refs", "updated_since", "capabilities",
        "results", "metadata",
    }
)  # fmt: skip
TEXTS = st.sampled_from(
    ["discover", "query", "mutate", "issue", "spec", "open", "opn", "relationships", "github.com/org/a",
     "2025-11-06T12:00:00Z", "9999-12-31T23:59:59-12:00", "", "\x00", "\ud800", "a/b\nc", "x" * 600]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**64, -(2**63) - 1, 10**100, -(10**4000)])  # repr() refuses > 4300 digits
    | st.floats()
    | st.text(max_size=20)
    | TEXTS
)
KEYS = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)
# Messages close to valid ones, so the fuzzing also reaches the filters.
FILTERS = st.dictionaries(st.sampled_from(FIELD_NAMES[-12:] + ["labels", "tags", "status"]), JSON_VALUES, max_size=4)
NEAR_MESSAGES = st.fixed_dictionaries(
    {"type": st.sampled_from(["discover", "query"]) | JSON_VALUES, "from": st.just("github.com/org/a") | JSON_VALUES},
    optional={
        "query": st.fixed_dictionaries(
            {"entity": st.sampled_from(["issue", "spec"])},
            optional={"filters": FILTERS, "limit": JSON_VALUES, "include": JSON_VALUES},
        )
        | JSON_VALUES,
        "timestamp": JSON_VALUES,
        "extra": JSON_VALUES,
    },
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_error(error: MessageError) -> None:
    body = json.dumps(error.as_json(), ensure_ascii=False).encode("utf-8")  # what an API view sends back
    assert body
    assert error.errors and len(error.errors) <= messages.MAX_ERRORS
    for item in error.errors:
        assert set(item) == {"path", "message"} and item["message"]


@FUZZ
@given(JSON_VALUES | NEAR_MESSAGES)
def test_parse_message_returns_a_message_or_raises_message_error(data):
    for parse in (parse_message, parse_query, parse_response):
        try:
            message = parse(data)
        except MessageError as error:
            check_error(error)
        else:
            assert parse(dump(message)) == message
            json.dumps(dump(message), ensure_ascii=False).encode("utf-8")


@FUZZ
@given(st.binary(max_size=200) | JSON_VALUES.map(lambda value: json.dumps(value).encode("utf-8", "surrogatepass")))
def test_parse_body_returns_json_or_raises_message_error(raw):
    try:
        parse_body(raw)
    except MessageError as error:
        check_error(error)
