"""The A2A wire format: every message two nodes exchange, as typed models (seed section 3, "A2A Message Types").

This is the only module that knows the shape of a message. Edges decode a body with `parse_body`, turn it into a
model with `parse_message` (or `parse_query` for the REST query endpoint) and answer with `dump(response)`.
Anything wrong comes out as one `MessageError` listing every problem as `path: message`, e.g.
`query.filters.status: 'opn' is not one of open, in_progress, blocked, needs_review, closed`.

Unknown keys are errors at every level: a typo in a filter must never silently widen a query. Values are checked
strictly (JSON `"5"` is not an integer, `true` is not a priority), every string and list is bounded, and strings
may not carry control characters (NUL cannot be stored in PostgreSQL, and we keep every raw message).

To add a message type: write its model (subclass `_Request`, with `type: Literal["..."] = "..."`) and add it to
`Message`; `SUPPORTED_TYPES`, `parse_message` and the JSON schema follow. Responses go in `Response` likewise.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import types
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import DEFAULT_REF_TEMPLATE

from federation_site.jsontext import format_path, show

SCHEMAS_VERSION = "1.0"
MAX_MESSAGE_BYTES = 256 * 1024
MAX_DEPTH = 64  # nesting of a decoded body; real messages are 5 deep
MAX_ERRORS = 20  # problems listed in one MessageError
MAX_DIGITS = 100  # of a JSON number; no field needs more, and int() of thousands of digits is slow
# Names one exchange across nodes and the audit rows of both; sent by callers, echoed by every answer.
CORRELATION_HEADER = "X-Correlation-ID"

Loc = tuple[str | int, ...]
_ASCII_DIGITS = re.compile(r"[0-9]+")


def parse_count(text: str | None, *, max_digits: int = 18) -> int | None:
    """A non-negative integer written in plain ASCII digits (at most `max_digits`), as a header or a query
    parameter carries it; None for anything else. `str.isdigit` and `int` alone let through '²' (which int()
    then refuses), '٣', ' 7', '1_000' and numbers of any size."""
    if text is None or len(text) > max_digits or not _ASCII_DIGITS.fullmatch(text):
        return None
    return int(text)


def integral_numbers(value: Any) -> Any:
    """`value` with every float that is a whole number made an int, at any depth. A message that crossed a
    protobuf `Struct` (an A2A data part) holds every number as a double: its 1.0 was the sender's 1 (a priority,
    a limit, a sequence number)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_numbers(v) for v in value]
    return value


class MessageError(ValueError):
    """A message we cannot accept. `errors` is a list of {"path", "message"}; `str()` is the first one."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors or [{"path": "", "message": "invalid message"}]
        first = self.errors[0]
        super().__init__(f"{first['path']}: {first['message']}" if first["path"] else first["message"])

    @classmethod
    def at(cls, path: str, message: str) -> MessageError:
        return cls([{"path": path, "message": message}])

    def as_json(self) -> dict[str, Any]:
        return {"error": "invalid message", "errors": self.errors}


class _Problem(ValueError):
    """Raised by validators; `at` extends the error's path (e.g. to point at `tags` from the filters model)."""

    def __init__(self, reason: str, *, at: Loc = ()) -> None:
        super().__init__(reason)
        self.at = at


class _Nested(ValueError):
    """Raised by validators that ran a TypeAdapter themselves: its errors, relative to the field."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("invalid value")
        self.errors = errors


# --- field types -------------------------------------------------------------------------------------------

_NO_CONTROL = r"[^\x00-\x1f\x7f]"
_TEXT_PATTERN = rf"^{_NO_CONTROL}*$"
# "github.com/org/repo": a host (port allowed) and at least one path segment; no scheme, whitespace or controls.
_IDENTITY_PATTERN = r"^[^\s/\x00-\x1f\x7f]+(?:/[^\s/\x00-\x1f\x7f]+)+$"
_HTTP_URL_PATTERN = r"^https?://[^\s/\x00-\x1f\x7f]+\S*$"
_WS_URL_PATTERN = r"^wss?://[^\s/\x00-\x1f\x7f]+\S*$"

_PATTERN_REASONS = {
    _TEXT_PATTERN: "must not contain control characters",
    _IDENTITY_PATTERN: "is not a repo identity (expected host/path like 'github.com/org/repo')",
    _HTTP_URL_PATTERN: "is not an http(s) URL",
    _WS_URL_PATTERN: "is not a ws(s) URL",
}

Text = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=_TEXT_PATTERN)]
Identity = Annotated[str, StringConstraints(max_length=500, pattern=_IDENTITY_PATTERN)]
CorrelationId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_TEXT_PATTERN)]
HttpUrl = Annotated[str, StringConstraints(max_length=2000, pattern=_HTTP_URL_PATTERN)]
WsUrl = Annotated[str, StringConstraints(max_length=2000, pattern=_WS_URL_PATTERN)]

_TIMESTAMP_EXAMPLE = "'2025-11-06T12:00:00Z'"


def _to_utc(value: object) -> datetime:
    # A date-time without an offset is UTC, as in sudocode's own JSONL.
    if isinstance(value, str) and len(value) <= 64:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            pass
    if not isinstance(value, datetime):
        raise _Problem(f"expected an ISO 8601 date-time like {_TIMESTAMP_EXAMPLE}, got {show(value)}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _Problem(f"{value.isoformat()} is out of range in UTC") from None


def _format_utc(value: datetime) -> str:
    return _to_utc(value).isoformat().replace("+00:00", "Z")


def dump_timestamp(value: datetime) -> str:
    """A date-time as the wire writes it: UTC, with a Z ('2025-11-08T12:00:00Z'), as `dump` does."""
    return _format_utc(value)


def timestamp_text(value: str) -> str:
    """`value` (ISO 8601; no offset means UTC) as the wire writes it ('2025-11-08T12:00:00Z').
    ValueError saying what is expected."""
    return _format_utc(_to_utc(value))


# Validated from an ISO 8601 string (not from a number), stored in UTC, written back with a Z.
Timestamp = Annotated[
    datetime, BeforeValidator(_to_utc), PlainSerializer(_format_utc, return_type=str, when_used="json")
]

Status = Literal["open", "in_progress", "blocked", "needs_review", "closed"]
Priority = Annotated[int, Field(ge=0, le=4)]  # sudocode priorities: 0 (highest) .. 4
Entity = Literal["issue", "spec"]
Include = Literal["relationships", "spec_refs", "blocked_by", "remote_relationships"]
TrustLevel = Literal["trusted", "verified", "untrusted"]


def _one_or_many(item: Any, *, max_items: int) -> Any:
    """A value or a non-empty list of them; errors point at the value itself or at `[i]` in the list."""
    many_type = Annotated[list[item], Field(min_length=1, max_length=max_items)]
    one = TypeAdapter(item, config=ConfigDict(strict=True))
    many = TypeAdapter(many_type, config=ConfigDict(strict=True))

    def validate(value: object) -> object:
        try:
            return (many if isinstance(value, list) else one).validate_python(value)
        except ValidationError as exc:
            raise _Nested(exc.errors(include_url=False)) from None

    return Annotated[Union[item, many_type], BeforeValidator(validate)]  # noqa: UP007 (item is a runtime value)


StatusFilter = _one_or_many(Status, max_items=5)
PriorityFilter = _one_or_many(Priority, max_items=5)
Labels = Annotated[list[Text], Field(min_length=1, max_length=100)]
Ids = Annotated[list[Text], Field(min_length=1, max_length=500)]


# --- models ------------------------------------------------------------------------------------------------


def _type_is_required(schema: dict[str, Any]) -> None:
    # `type` has a default so Python code need not repeat it, but on the wire it is always there.
    if "type" in schema.get("properties", {}):
        schema["required"] = ["type", *[key for key in schema.get("required", []) if key != "type"]]


class _Wire(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        validate_by_alias=True,
        validate_by_name=True,  # Python code writes from_=...; parsing passes by_name=False so JSON must say "from"
        serialize_by_alias=True,
        json_schema_extra=_type_is_required,
    )


_FROM = "The sender's repo identity, e.g. github.com/org/frontend."


class _Request(_Wire):
    """The envelope every request carries."""

    type: str
    from_: Identity = Field(alias="from", description=_FROM)
    to: Identity | None = None
    timestamp: Timestamp | None = None
    correlation_id: CorrelationId | None = Field(None, description="Chosen by the sender; echoed in the response.")


class _Response(_Wire):
    """The envelope of a response; `from` is optional (the seed's examples leave it out)."""

    type: str
    from_: Identity | None = Field(None, alias="from")
    to: Identity | None = None
    timestamp: Timestamp | None = None
    correlation_id: CorrelationId | None = None


# Requests


class DiscoverMessage(_Request):
    type: Literal["discover"] = "discover"


class QueryFilters(_Wire):
    """Every filter is optional; one left out does not filter. Lists must not be empty."""

    status: StatusFilter | None = Field(None, description="One status or any of several.")
    labels: Labels | None = None
    tags: Labels | None = Field(
        None, exclude=True, description="sudocode's word for labels; give labels or tags, not both."
    )
    priority: PriorityFilter | None = Field(None, description="One priority or any of several.")
    ids: Ids | None = None
    spec_refs: Labels | None = None
    updated_since: Timestamp | None = None
    archived: bool | Literal["any"] | None = Field(
        None,
        description="Archived entities: left out by default (false), unless `ids` is given; true: only archived "
        'ones; "any": both.',
    )
    search: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = Field(
        None,
        description="Full text over titles and content: the entities with every word (the last as a prefix), "
        "best first, one page (no cursor); each result has a `snippet`.",
    )

    @model_validator(mode="after")
    def _tags_are_labels(self) -> QueryFilters:
        if self.tags is not None:
            if self.labels is not None:
                raise _Problem("give labels or tags, not both (tags is another name for labels)", at=("tags",))
            object.__setattr__(self, "labels", self.tags)  # the model is frozen; this is its own validation
        return self


class QueryBody(_Wire):
    entity: Entity
    filters: QueryFilters = Field(default_factory=QueryFilters)
    include: Annotated[list[Include], Field(max_length=4)] = []
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    cursor: Text | None = Field(None, description="next_cursor from the previous page.")


def _not_null_on_the_wire(schema: dict[str, Any]) -> None:
    # The JSON schema describes what a sender may send: `"from": null` is not it.
    members = [member for member in schema.pop("anyOf", []) if member.get("type") != "null"]
    if len(members) == 1:
        schema.update(members[0])


_ANONYMOUS_SENDER = "anonymous_sender"  # validation context set by parse_query (bare body) and parse_subscribe


class QueryMessage(_Request):
    type: Literal["query"] = "query"
    # None only for a bare REST query body (parse_query): the sender is then known from authentication.
    from_: Identity | None = Field(alias="from", description=_FROM, json_schema_extra=_not_null_on_the_wire)
    query: QueryBody

    @field_validator("from_")
    @classmethod
    def _sender_given(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and not (info.context or {}).get(_ANONYMOUS_SENDER):
            raise _Problem("expected a string, got null")
        return value


# Responses


class CapabilityEndpoints(_Wire):
    rest: HttpUrl | None = None
    ws: WsUrl | None = None
    git: Text | None = None


class Capabilities(_Wire):
    protocols: Annotated[list[Text], Field(max_length=20)]
    operations: Annotated[list[Text], Field(max_length=50)]
    schemas_version: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=_TEXT_PATTERN)]
    trust_level: TrustLevel = Field(description="The trust the responder grants the sender.")
    endpoints: CapabilityEndpoints = Field(default_factory=CapabilityEndpoints)


PublicKey = Annotated[str, StringConstraints(max_length=100, pattern=r"^ed25519:[A-Za-z0-9_-]{43}$")]


class DiscoverResponse(_Response):
    type: Literal["discover_response"] = "discover_response"
    capabilities: Capabilities
    public_key: PublicKey | None = Field(
        None,
        description="The responder's Ed25519 public key (`ed25519:<base64url>`): its messages are signed with it "
        "(RFC 9421), and `remote add` pins it.",
    )


class KeyRotationMessage(_Request):
    """POST /api/v1/federation/key: the sender's new public key, announced in a message signed with its old one
    (the key the receiver pinned); the receiver pins the new key."""

    type: Literal["key_rotation"] = "key_rotation"
    public_key: PublicKey = Field(description="The sender's new Ed25519 public key, `ed25519:<base64url>`.")


def parse_key_rotation(data: object) -> KeyRotationMessage:
    return _validate(KeyRotationMessage, data)


class QueryMetadata(_Wire):
    total: Annotated[int, Field(ge=0)]
    cached_at: Timestamp
    next_cursor: Text | None = Field(None, description="Absent on the last page.")
    limit: Annotated[int, Field(ge=1, le=500)] | None = None
    stale: bool | None = Field(
        None,
        description="True while the node cannot import one of its JSONL files (a merge conflict, say): the "
        "results come from its last good import. Absent otherwise.",
    )


class QueryResponse(_Response):
    type: Literal["query_response"] = "query_response"
    results: Annotated[list[dict[str, Any]], Field(max_length=500)]
    metadata: QueryMetadata


# Mutations (a request for work: create or update an issue or spec in the receiving repository)

# The markdown body of an entity: long, multi-line (newlines and tabs allowed, other control characters not).
LongText = Annotated[str, StringConstraints(max_length=100_000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
_REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_REQUEST_ID_PATTERN)]


def is_request_id(text: str) -> bool:
    """Whether `text` may be a request_id (RequestId: 1 to 64 letters, digits, '.', '_', ':' or '-', starting
    with a letter or digit)."""
    return len(text) <= 64 and re.fullmatch(_REQUEST_ID_PATTERN, text) is not None


_CANONICAL_REF_PATTERN = r"^[^\s#]+/[^\s#]+#[^\s#]+$"
_PATTERN_REASONS[_CANONICAL_REF_PATTERN] = (
    "is not a canonical ref (expected org/repo#id, like 'org/api-service#issue-042')"
)
CanonicalRef = Annotated[str, StringConstraints(max_length=600, pattern=_CANONICAL_REF_PATTERN)]
RelationshipType = Literal[
    "blocks", "blocked-by", "related", "implements", "depends-on", "parent-child", "discovered-from", "references"
]
Operation = Literal["create_issue", "create_spec", "update_issue"]


class MutateRelationship(_Wire):
    type: RelationshipType
    remote_ref: CanonicalRef = Field(description="The requester's entity, e.g. org/frontend#issue-100.")


class MutateData(_Wire):
    id: Text | None = Field(None, description="update_issue: the issue to change.")
    title: Text | None = Field(None, description="Required to create.")
    description: LongText | None = None
    priority: Priority | None = None
    status: Status | None = Field(None, description="update_issue only.")
    labels: Annotated[list[Text], Field(max_length=20)] | None = None
    relationships: Annotated[list[MutateRelationship], Field(max_length=20)] = []


class MutateMetadata(_Wire):
    request_id: RequestId = Field(description="The idempotency key: the same request_id is the same request.")
    requester: Text | None = Field(None, description="Who (person or agent) asked, for the approver.")
    auto_approve: bool = Field(False, description="A wish: the receiving node's policy decides.")


class MutateMessage(_Request):
    type: Literal["mutate"] = "mutate"
    operation: Operation
    data: MutateData
    metadata: MutateMetadata

    @model_validator(mode="after")
    def _fits_the_operation(self) -> MutateMessage:
        if self.operation.startswith("create_") and not self.data.title:
            raise _Problem(f"missing (required for {self.operation})", at=("data", "title"))
        if self.operation == "update_issue" and not self.data.id:
            raise _Problem("missing (required for update_issue)", at=("data", "id"))
        if self.operation != "update_issue" and self.data.status is not None:
            raise _Problem(f"not allowed for {self.operation}", at=("data", "status"))
        return self


class MutateCreated(_Wire):
    id: Text
    uuid: Text
    type: Entity = "issue"
    canonical_ref: Text
    url: HttpUrl | None = None


class Decision(_Wire):
    """How the receiving node's policy decided (requests_app.policy): who decides, by which rule, and why."""

    outcome: Literal["approve", "human"] = Field(description="approve: carried out at once; human: a maintainer")
    rule: Text | None = Field(
        None,
        description="The config path of the deciding rule, e.g. a2a_policies.mutate.require_human[0]; "
        "none when no rule matched (a human decides)",
    )
    condition: LongText | None = Field(None, description="That rule's condition, as written")
    reason: LongText


class RequestRecord(_Wire):
    """The request as the answering node keeps it (the seed's cross_repo_requests row), sent with a status poll
    (GET /api/v1/federation/requests/<id>) and a callback, so both sides hold the whole record. Lenient on
    purpose: a field added later, or a value this version does not know, never makes a poll fail."""

    model_config = ConfigDict(**{**_Wire.model_config, "extra": "allow"})

    request_id: str
    direction: str = Field(description="incoming or outgoing, as the answering node holds it")
    from_repo: str | None = None
    to_repo: str | None = None
    request_type: str | None = Field(None, description="create_issue, create_spec, update_issue or delegate")
    payload: dict[str, Any] | None = Field(None, description="The whole message, as received")
    status: str | None = Field(None, description="pending, approved, rejected, completed, failed or cancelled")
    requires_approval: bool | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    rejection_reason: str | None = None
    result: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    completed_at: str | None = None
    approval_url: str | None = Field(None, description="While pending: where a maintainer decides")
    requester: str | None = None
    decision: dict[str, Any] | None = None
    error: str | None = None


class MutateResponse(_Response):
    """The answer to a mutate message, and the callback the receiving node sends when a decision is made."""

    type: Literal["mutate_response"] = "mutate_response"
    status: Literal["pending_approval", "approved", "completed", "rejected", "failed", "cancelled"]
    request_id: RequestId
    approval_url: HttpUrl | None = None
    message: LongText | None = None
    created: MutateCreated | None = None
    reason: LongText | None = Field(None, description="Why it was rejected or failed.")
    decision: Decision | None = None
    record: RequestRecord | None = Field(None, description="The whole request (status polls and callbacks)")


# Delegation: hand a task (a spec or an issue to own) to another repository (seed: A2A message 5)

DEFAULT_HOP_LIMIT = 3


class DelegateContext(_Wire):
    """The seed's free-form `context`, plus our provenance: the chain of canonical refs the task passed through
    (the delegator's entity first) and how many more hands it may pass through."""

    model_config = ConfigDict(**{**_Wire.model_config, "extra": "allow"})

    triggered_by: CanonicalRef | None = Field(None, description="The delegator's entity, e.g. org/app#spec-025")
    chain: Annotated[list[CanonicalRef], Field(max_length=20)] = []
    hop_limit: Annotated[int, Field(ge=1, le=20)] = DEFAULT_HOP_LIMIT


class DelegateTask(_Wire):
    type: Entity
    title: Text
    description: LongText | None = None
    priority: Priority | None = None
    labels: Annotated[list[Text], Field(max_length=20)] | None = None
    requirements: dict[str, Any] = Field(default_factory=dict, description="Free-form, kept with the new entity")
    context: DelegateContext = Field(default_factory=DelegateContext)


class DelegateMessage(_Request):
    type: Literal["delegate"] = "delegate"
    task: DelegateTask
    metadata: MutateMetadata


class DelegateCreated(_Wire):
    type: Entity
    id: Text
    uuid: Text | None = None
    canonical_ref: Text
    url: HttpUrl | None = None


class DelegateResponse(_Response):
    """The answer to a delegate message, and the callback sent when the delegate accepts or rejects."""

    type: Literal["delegate_response"] = "delegate_response"
    status: Literal["pending_acceptance", "approved", "accepted", "rejected", "failed", "cancelled"]
    request_id: RequestId
    approval_url: HttpUrl | None = None
    message: LongText | None = None
    created: DelegateCreated | None = None
    assignee: Text | None = None
    estimated_completion: Timestamp | None = None
    reason: LongText | None = Field(None, description="Why it was rejected or failed.")
    decision: Decision | None = None
    record: RequestRecord | None = Field(None, description="The whole request (status polls and callbacks)")


# Subscriptions: watch another node's issues or specs, hear about each change by webhook (or WebSocket)

SubscriptionId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
Secret = Annotated[str, StringConstraints(min_length=32, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]
Seq = Annotated[int, Field(ge=0)]


class Watch(_Wire):
    entity_type: Entity
    filters: QueryFilters = Field(
        default_factory=QueryFilters,
        description="The query filters; an entity matches when it matched before the change or after it.",
    )

    @model_validator(mode="after")
    def _no_full_text(self) -> Watch:
        if self.filters.search is not None:
            raise _Problem(
                "a subscription cannot watch by full text: search is a query filter only", at=("filters", "search")
            )
        return self


class CallbackAuth(_Wire):
    type: Literal["bearer"] = "bearer"
    token: Token = Field(description="Sent back as `Authorization: Bearer <token>` with every webhook.")


class Callback(_Wire):
    url: HttpUrl = Field(description="Where events are POSTed, e.g. https://frontend.dev/api/v1/webhooks/cross-repo.")
    auth: CallbackAuth | None = None
    secret: Secret | None = Field(
        None,
        description="The HMAC-SHA256 key for this subscription's webhook signatures. Left out, the responder "
        "makes one and returns it in the subscribe_response.",
    )


class SubscribeMessage(_Request):
    type: Literal["subscribe"] = "subscribe"
    # None only through parse_subscribe (the REST endpoint, a WebSocket): the sender is known from authentication.
    from_: Identity | None = Field(alias="from", description=_FROM, json_schema_extra=_not_null_on_the_wire)
    watch: Watch
    callback: Callback | None = Field(None, description="Required over REST; absent on a WebSocket.")
    subscription_id: SubscriptionId | None = Field(
        None,
        description="Chosen by the subscriber to make subscribing idempotent: subscribing again with the same "
        "id replaces the watch and the callback of that subscription.",
    )
    since: Seq | None = Field(
        None, description="Deliver the matching events after this sequence number (default: from now on)."
    )

    @field_validator("from_")
    @classmethod
    def _sender_given(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and not (info.context or {}).get(_ANONYMOUS_SENDER):
            raise _Problem("expected a string, got null")
        return value


class SubscribeBody(_Wire):
    """The seed's bare REST body of POST /api/v1/federation/subscribe (parse_subscribe makes it a message)."""

    watch: Watch
    callback_url: HttpUrl
    callback_auth: CallbackAuth | None = None
    secret: Secret | None = None
    subscription_id: SubscriptionId | None = None
    since: Seq | None = None


class SubscribeResponse(_Response):
    type: Literal["subscribe_response"] = "subscribe_response"
    subscription_id: SubscriptionId
    status: Literal["active", "paused", "cancelled"]
    head_seq: Seq = Field(description="The responder's last sequence number when the subscription was made.")
    secret: Secret | None = Field(None, description="Only when the responder made the secret.")
    events_url: HttpUrl | None = Field(None, description="Where to catch up: GET ?after=<seq>.")


class FieldChange(_Wire):
    from_: Any = Field(alias="from")
    to: Any


EventType = Annotated[str, StringConstraints(max_length=40, pattern=r"^(issue|spec)_(created|updated|deleted)$")]


class EventEntity(_Wire):
    id: Text
    uuid: Text
    kind: Entity
    canonical_ref: CanonicalRef | None = None
    title: Text | None = None
    status: Status | None = None
    priority: Priority | None = None
    updated_at: Text | None = None
    deleted: bool | None = None


class EventBody(_Wire):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-fA-F-]+$")] = Field(
        description="The event id (a UUID), unique across the network: receivers drop a second copy."
    )
    seq: Annotated[int, Field(ge=1)] = Field(description="The sender's sequence number: strictly increasing.")
    type: EventType
    entity: EventEntity
    changes: Annotated[dict[Text, FieldChange], Field(max_length=200)] = {}
    timestamp: Timestamp


class EventMessage(_Request):
    """Not answered on the A2A endpoint: events arrive signed, at the subscriber's webhook."""

    type: Literal["event"] = "event"
    event: EventBody


Message = Annotated[
    DiscoverMessage | QueryMessage | MutateMessage | SubscribeMessage | DelegateMessage, Field(discriminator="type")
]
Response = Annotated[
    DiscoverResponse | QueryResponse | MutateResponse | SubscribeResponse | DelegateResponse,
    Field(discriminator="type"),
]


def _by_type(union: Any) -> dict[str, type[_Wire]]:
    models = get_args(get_args(union)[0])
    return {model.model_fields["type"].default: model for model in models}


_REQUESTS = _by_type(Message)
_RESPONSES = _by_type(Response)
SUPPORTED_TYPES: tuple[str, ...] = tuple(_REQUESTS)
RESPONSE_TYPES: tuple[str, ...] = tuple(_RESPONSES)
_MESSAGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(Message)
_RESPONSE_ADAPTER: TypeAdapter[Any] = TypeAdapter(Response)
_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(EventMessage)


# --- parsing -----------------------------------------------------------------------------------------------


def parse_message(data: object) -> Message:
    """A decoded request body (any JSON value) as its message model; MessageError for anything else."""
    return _validate(_model_for(data, _REQUESTS), data)


def parse_response(data: object) -> Response:
    """A remote's decoded answer as its response model; MessageError for anything else."""
    return _validate(_model_for(data, _RESPONSES), data)


def parse_event(data: object) -> EventMessage:
    """The body of a webhook delivery (after its signature was checked)."""
    return _validate(_model_for(data, {"event": EventMessage}), data)


def parse_query(data: object) -> QueryMessage:
    """The body of POST /api/v1/federation/query: a whole query message, or the seed's bare query body.

    A bare body (`{"entity", "filters", "include", "limit", "cursor"}`) is wrapped in a QueryMessage whose
    `from_` is None; its error paths are relative to the body (`filters.status`, not `query.filters.status`).
    """
    if isinstance(data, dict) and ("type" in data or "query" in data):
        return _validate(_model_for(data, {"query": QueryMessage}), data)
    body = _validate(QueryBody, data)
    return QueryMessage.model_validate(
        {"type": "query", "from": None, "query": body}, context={_ANONYMOUS_SENDER: True}
    )


def parse_subscribe(data: object) -> SubscribeMessage:
    """The body of POST /api/v1/federation/subscribe: a whole subscribe message, or the seed's bare body
    `{"watch", "callback_url", "callback_auth", "secret", "subscription_id", "since"}`. `from` may be left out
    (the sender is known from its key); a bare body's error paths are its own (`callback_url`, not
    `callback.url`)."""
    anonymous = {_ANONYMOUS_SENDER: True}
    if isinstance(data, dict) and "type" in data:
        model = _model_for(data, {"subscribe": SubscribeMessage})
        return _validate(model, {"from": None, **data}, context=anonymous)
    body = _validate(SubscribeBody, data)
    callback = Callback(url=body.callback_url, auth=body.callback_auth, secret=body.secret)
    return SubscribeMessage.model_validate(
        {
            "type": "subscribe",
            "from": None,
            "watch": body.watch,
            "callback": callback,
            "subscription_id": body.subscription_id,
            "since": body.since,
        },
        context=anonymous,
    )


def dump(model: BaseModel) -> dict[str, Any]:
    """A JSON-ready dict: keys by alias ("from"), date-times in UTC with a Z, None fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def message_json_schema(*, ref_template: str = DEFAULT_REF_TEMPLATE) -> dict[str, Any]:
    """JSON Schema (2020-12) of the requests (`Message`, the root) and the responses (`$defs/Response`).

    `ref_template` places the definitions elsewhere, e.g. "#/components/schemas/{model}" for OpenAPI.
    """
    keys = [
        ("Message", "validation", _MESSAGE_ADAPTER),
        ("Response", "validation", _RESPONSE_ADAPTER),
        ("Event", "validation", _EVENT_ADAPTER),
    ]
    mapping, top = TypeAdapter.json_schemas(keys, ref_template=ref_template)
    defs = dict(top.get("$defs", {}))
    for key, mode, _adapter in keys:
        defs[key] = mapping[(key, mode)]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"sudocode federation A2A messages (schemas_version {SCHEMAS_VERSION})",
        "description": "A request is a Message; its answer is a Response with type '<request type>_response'.",
        "$ref": ref_template.format(model="Message"),
        "$defs": defs,
    }


def json_schema_of(tp: Any) -> dict[str, Any]:
    """The JSON schema of one model (or of `Message`, `Response`) with every `$ref` inlined.

    Self-contained, so it can be embedded anywhere, e.g. as a request or response body in OpenAPI, where
    `#/$defs/...` would not resolve. (The discriminator's mapping names definitions, so it is left out; the
    `type` constant of each member still tells them apart.)
    """
    schema = TypeAdapter(tp).json_schema(mode="validation")
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {**target, **{key: inline(value) for key, value in node.items() if key != "$ref"}}
        return {key: inline(value) for key, value in node.items() if not (key == "discriminator" and "oneOf" in node)}

    return inline(schema)


def _model_for(data: object, models: dict[str, type[_Wire]]) -> type[_Wire]:
    supported = ", ".join(models)
    if not isinstance(data, dict):
        raise MessageError.at("", f"expected a JSON object, got {show(data)}")
    if "type" not in data:
        raise MessageError.at("type", f"missing (supported: {supported})")
    kind = data["type"]
    if not isinstance(kind, str):
        raise MessageError.at("type", f"expected a string, got {show(kind)}")
    if kind not in models:
        raise MessageError.at("type", f"{show(kind)} is not supported here (supported: {supported})")
    return models[kind]


def _validate(model: type[_Wire], data: object, *, context: dict[str, Any] | None = None) -> Any:
    if not isinstance(data, dict):
        raise MessageError.at("", f"expected a JSON object, got {show(data)}")
    try:
        return model.model_validate(data, by_alias=True, by_name=False, context=context)
    except ValidationError as exc:
        problems = [pair for error in exc.errors(include_url=False) for pair in _describe(error, model)]
        raise MessageError(
            [{"path": format_path(loc), "message": reason} for loc, reason in problems[:MAX_ERRORS]]
        ) from None


# --- decoding a request body -------------------------------------------------------------------------------


class _ObjectWithDuplicates(dict):
    duplicate: str = ""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    # json.loads would silently keep the last value; a message that means two things is refused.
    marked = _ObjectWithDuplicates(obj)
    seen: set[str] = set()
    marked.duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
    return marked


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int:
    if len(text) > MAX_DIGITS:
        raise ValueError(f"a number has more than {MAX_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


# A lone surrogate can only come from a \u escape (UTF-8 cannot carry one); only then are strings checked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_body(raw: bytes) -> object:
    """Decode a request body: size, UTF-8, JSON (no NaN, no duplicate keys) and nesting are checked here."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageError.at("", f"the message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES} bytes")
    try:
        text = bytes(raw).decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise MessageError.at("", f"not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(
            text, object_pairs_hook=_json_object, parse_constant=_no_constants, parse_int=_int, parse_float=_float
        )
    except json.JSONDecodeError as exc:
        raise MessageError.at("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise MessageError.at("", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # NaN/Infinity, or a number out of range
        raise MessageError.at("", f"invalid JSON: {exc}") from None
    _check_structure(data, check_strings=_SURROGATE_ESCAPE.search(text) is not None)
    return data


def _check_structure(data: object, *, check_strings: bool) -> None:
    stack: list[tuple[object, int, Loc]] = [(data, 1, ())]
    while stack:
        value, depth, loc = stack.pop()
        if check_strings and isinstance(value, str) and not _is_unicode(value):
            raise MessageError.at(format_path(loc), "not valid Unicode (a lone surrogate escape)")
        if check_strings and isinstance(value, dict):
            bad_key = next((key for key in value if not _is_unicode(key)), None)
            if bad_key is not None:
                raise MessageError.at(format_path(loc), "a key is not valid Unicode (a lone surrogate escape)")
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > MAX_DEPTH:
            raise MessageError.at("", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, _ObjectWithDuplicates):
            raise MessageError.at(format_path((*loc, value.duplicate)), "duplicate key")
        stack.extend((child, depth + 1, (*loc, key)) for key, child in items)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- turning pydantic errors into `path: message` ----------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "float_type": "a number",
    "list_type": "a list",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "datetime_type": f"an ISO 8601 date-time like {_TIMESTAMP_EXAMPLE}",
}


def _describe(error: Any, model: type[BaseModel]) -> list[tuple[Loc, str]]:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "value_error":
        problem = ctx.get("error")
        if isinstance(problem, _Nested):
            return [
                pair for inner in problem.errors for pair in _describe({**inner, "loc": (*loc, *inner["loc"])}, model)
            ]
        return [((*loc, *getattr(problem, "at", ())), str(problem))]
    if kind == "missing":
        return [(loc, "missing")]
    if kind == "extra_forbidden":
        return [(loc, _unknown_key_reason(model, loc))]
    return [(loc, _reason(kind, ctx, value, error.get("msg", kind)))]


def _reason(kind: str, ctx: dict[str, Any], value: Any, msg: str) -> str:
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {show(value)}"
    if kind == "literal_error":
        options = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return (
            f"{show(value)} is not one of {options}"
            if isinstance(value, str)
            else f"expected one of {options}, got {show(value)}"
        )
    if kind == "string_pattern_mismatch":
        reason = _PATTERN_REASONS.get(ctx.get("pattern", ""), "has the wrong format")
        return reason if reason.startswith("must") else f"{show(value)} {reason}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters (got {len(value)})"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must have at least {ctx['min_length']} items"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} items (got {ctx.get('actual_length', len(value))})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {show(value)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {show(value)}"
    if kind == "string_unicode":
        return "must be valid Unicode text"
    return f"{msg[:1].lower()}{msg[1:]}, got {show(value)}"


def _unknown_key_reason(model: type[BaseModel], loc: Loc) -> str:
    known = _known_keys(model, loc[:-1])
    if not known:
        return "unknown key"
    match = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if match:
        return f"unknown key (did you mean {match[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(known)})"


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str] | None:
    node: Any = model
    for part in loc:
        node = _unwrap(node)
        if isinstance(part, int):
            node = get_args(node)[0] if get_origin(node) is list else None
        elif isinstance(node, type) and issubclass(node, BaseModel):
            node = next((f.annotation for name, f in node.model_fields.items() if (f.alias or name) == part), None)
        else:
            node = None
        if node is None:
            return None
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [field.alias or name for name, field in node.model_fields.items()]
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `| None` to get at the model or list underneath."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if _unwrap(arg) is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
