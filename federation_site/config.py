"""The node's typed configuration: `.sudocode/federation.config.json`.

This module is pure (no Django): settings.py imports it. A bad file fails with one line that names the file,
the key path and what is wrong, e.g.
`federation.config.json: remote_repos[1].trust_level: 'trustd' is not one of trusted, verified, untrusted`.

Unknown keys are errors: a typo in trust configuration must never pass silently. Values are checked strictly
(JSON `"5"` is not an integer, `"false"` is not a boolean).
"""

import difflib
import json
import re
import stat
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from federation_site.files import write_atomic
from federation_site.jsontext import format_path, show
from federation_site.node import GIT_WRITE_DEFAULTS

CONFIG_FILENAME = "federation.config.json"


class ConfigError(Exception):
    """A federation.config.json that cannot be used; `str()` is the one-line message for the operator.

    `key_path` is the part before the reason (`remote_repos[1].trust_level`, or "" for the whole file);
    `problems` lists every (key_path, reason) found, the first being this one.
    """

    def __init__(
        self,
        reason: str,
        *,
        key_path: str = "",
        source: str = CONFIG_FILENAME,
        path: Path | None = None,
        line: int | None = None,
        column: int | None = None,
        problems: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.reason = reason
        self.key_path = key_path
        self.source = source
        self.path = path if path is not None else Path(source)
        self.line = line
        self.column = column
        self.problems = problems or ((key_path, reason),)
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.source, self.key_path, self.reason] if self.key_path else [self.source, self.reason]
        return ": ".join(parts)


class ConfigNotFoundError(ConfigError):
    """No config file: federation is not set up on this node (as opposed to a broken file)."""

    def __init__(self, path: Path, *, source: str | None = None) -> None:
        super().__init__("not found", source=source or path.name, path=path)

    def _message(self) -> str:
        return f"{self.source} not found at {self.path}: run `sudocode-fed init`"


class _Problem(ValueError):
    """Raised by validators; `at` extends the error location (e.g. to name the second of two duplicates)."""

    def __init__(self, reason: str, *, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(reason)
        self.at = at


# --- field types -------------------------------------------------------------------------------------------

# "github.com/org/repo": a host (port allowed) and at least one path segment, no scheme, no whitespace.
_IDENTITY_RE = re.compile(r"[^\s/]+(?:/[^\s/]+)+")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _identity(value: str) -> str:
    if not _IDENTITY_RE.fullmatch(value) or "://" in value:
        raise _Problem(f"{show(value)} is not a repo identity (expected host/path like 'github.com/org/repo')")
    return value


def _url_checker(*schemes: str):
    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            raise _Problem(f"expected a {'/'.join(schemes)} URL, got {show(value)}")
        return value

    return check


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise _Problem(
            f"expected an origin like 'https://app.example.com' (scheme, host, port: no path), got {show(value)}"
        )
    return value.rstrip("/")


def _email(value: str) -> str:
    if not _EMAIL_RE.fullmatch(value):
        raise _Problem(f"expected an email address, got {show(value)}")
    return value


NonEmptyStr = Annotated[str, Field(min_length=1)]
Identity = Annotated[str, AfterValidator(_identity)]
HttpUrl = Annotated[str, AfterValidator(_url_checker("http", "https"))]
WebSocketUrl = Annotated[str, AfterValidator(_url_checker("ws", "wss"))]
Email = Annotated[str, AfterValidator(_email)]
Origin = Annotated[str, AfterValidator(_origin)]


def _condition(value: str) -> str:
    from federation_site.conditions import ConditionError, compile_condition

    try:
        compile_condition(value)
    except ConditionError as exc:
        raise _Problem(str(exc)) from None
    return value


# Policy conditions (seed syntax: "priority >= 2", "!labels.includes('breaking-change')"): CEL, compiled and
# checked here, at load (federation_site.conditions); kept as the text the maintainer wrote.
Condition = Annotated[str, Field(min_length=1), AfterValidator(_condition)]


def _bool_or_condition(value: bool | str) -> bool | str:
    return _condition(value) if isinstance(value, str) else value


BoolOrCondition = Annotated[bool | Annotated[str, Field(min_length=1)], AfterValidator(_bool_or_condition)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Priority = Annotated[int, Field(ge=0, le=4)]  # sudocode priorities: 0 (highest) .. 4

TrustLevel = Literal["trusted", "verified", "untrusted"]
Entity = Literal["issue", "spec"]
Operation = Literal["create_issue", "create_spec", "update_issue"]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# --- node identity ------------------------------------------------------------------------------------------


def _public_key(value: str) -> str:
    from federation_site.keys import KeyFormatError, parse_public_key

    try:
        parse_public_key(value)
    except KeyFormatError as exc:
        raise _Problem(str(exc)) from None
    return value


PublicKey = Annotated[str, AfterValidator(_public_key)]


class LocalIdentity(_Model):
    url: Identity
    display_name: str | None = None
    description: str = ""
    # This node's Ed25519 public key (federation_site/keys.py; the private key is in secrets.env), written by
    # `init` or the first `serve`; shown in discover and the agent card.
    public_key: PublicKey | None = None


class Endpoints(_Model):
    rest: HttpUrl | None = None
    websocket: WebSocketUrl | None = None
    git: NonEmptyStr | None = None


# --- remote repos and their permissions (seed: Trust and Security Model) -----------------------------------

# Per-remote permissions: `allowed` left out (None) means the trust level decides (remotes.policy,
# subscriptions.policy); true or false overrides it. Mutations are granted explicitly.


class QueryPermission(_Model):
    allowed: bool | None = None
    entities: list[Entity] = ["issue", "spec"]
    filters: list[NonEmptyStr] = []  # fields the remote may filter on; empty means no restriction
    exclude_fields: list[NonEmptyStr] = []


class MutatePermission(_Model):
    # The gate: None leaves it to the trust level (verified and trusted may ask, untrusted may not); true or
    # false overrides it. `operations` narrows it. Whether a human must approve is the rules' business.
    allowed: bool | None = None
    operations: list[Operation] = ["create_issue", "create_spec", "update_issue"]
    # When given, this remote's own auto-approval rule (all must hold), in place of the global auto_approve
    # rules; require rules still beat it.
    auto_approve_conditions: list[Condition] = []
    max_creates_per_day: NonNegativeInt | None = None
    mutations_per_hour: PositiveInt | None = None  # None: rate_limits.per_repo.mutations_per_hour


class SubscribePermission(_Model):
    allowed: bool | None = None  # None: verified and trusted remotes may subscribe, untrusted ones may not
    max_subscriptions: NonNegativeInt | None = None  # None: rate_limits.per_repo.subscriptions_max


class Permissions(_Model):
    query: QueryPermission = Field(default_factory=QueryPermission)
    mutate: MutatePermission = Field(default_factory=MutatePermission)
    subscribe: SubscribePermission = Field(default_factory=SubscribePermission)


class SyncSettings(_Model):
    auto_sync: bool = False
    interval_minutes: PositiveInt = 60


class RemoteRepoConfig(_Model):
    url: Identity
    display_name: str | None = None
    trust_level: TrustLevel = "untrusted"
    permissions: Permissions = Field(default_factory=Permissions)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    endpoint: HttpUrl | None = None  # REST base URL when it cannot be derived from the identity
    # It agreed to be listed in this node's directory (GET /federation/directory, remote discover).
    listed: bool = False
    # How we call it: our REST endpoints, or A2A 1.0 (then `endpoint` is where its Agent Card is served:
    # <endpoint>/.well-known/agent-card.json; remotes/a2a_client.py).
    transport: Literal["rest", "a2a"] = "rest"
    # Hosts a URL this remote hands us (a callback, a push config) may name when it is not on the origin of
    # `endpoint`; empty: any host with only public addresses (remotes/urlguard.py).
    allowed_hosts: list[NonEmptyStr] = []
    # Its Ed25519 public key, pinned at `remote add` (from its discover answer, or given), and whether its
    # messages must be signed with it (RFC 9421; remotes/signatures.py): unsigned or wrongly signed ones get 401.
    public_key: PublicKey | None = None
    require_signatures: bool = False


# --- incoming-request policies (global switches; per-remote permissions still apply) ------------------------


class PolicyRule(_Model):
    """A rule of the policy engine (requests_app.policy), in any of the four rule lists."""

    condition: Condition
    notify: list[NonEmptyStr] = []
    # Auto-approve rules: the most urgent priority the rule may approve (0 is the most urgent): with 2, a
    # request of priority 2, 3 or 4 qualifies, one of 0 or 1 does not.
    max_priority: Priority | None = None
    enabled: bool = True
    description: str = ""


class RequestRateLimit(_Model):
    requests_per_minute: PositiveInt = 60


class IncomingQueryPolicy(_Model):
    allowed: bool = True
    rate_limit: RequestRateLimit = Field(default_factory=RequestRateLimit)


class IncomingMutatePolicy(_Model):
    allowed: bool = True
    auto_approve: list[PolicyRule] = []
    require_approval: list[PolicyRule] = []


class IncomingRequestPolicies(_Model):
    query: IncomingQueryPolicy = Field(default_factory=IncomingQueryPolicy)
    mutate: IncomingMutatePolicy = Field(default_factory=IncomingMutatePolicy)


class Policies(_Model):
    incoming_requests: IncomingRequestPolicies = Field(default_factory=IncomingRequestPolicies)


# --- A2A agent behaviour (seed section 3); autonomy is opt-in ----------------------------------------------


class A2AQueryPolicy(_Model):
    auto_respond: bool = False
    allowed_filters: list[NonEmptyStr] = []


class A2AMutatePolicy(_Model):
    auto_approve: list[PolicyRule] = []
    require_human: list[PolicyRule] = []


class A2ADelegatePolicy(_Model):
    # true, false, or a condition ("from_trusted_repo && hops == 0"); require rules still beat it.
    auto_accept: BoolOrCondition = False
    notify: list[NonEmptyStr] = []
    hop_limit: Annotated[int, Field(ge=1, le=20)] = 3  # the most hands a task we delegate may pass through


class A2APolicies(_Model):
    query: A2AQueryPolicy = Field(default_factory=A2AQueryPolicy)
    mutate: A2AMutatePolicy = Field(default_factory=A2AMutatePolicy)
    delegate: A2ADelegatePolicy = Field(default_factory=A2ADelegatePolicy)


# --- rate limits, cache, notifications, git, http --------------------------------------------------------


class PerRepoRateLimits(_Model):
    queries_per_minute: PositiveInt = 60
    mutations_per_hour: PositiveInt = 10
    subscriptions_max: NonNegativeInt = 20


class GlobalRateLimits(_Model):
    cross_repo_bandwidth_mb_per_day: PositiveInt | None = 1000
    max_remote_repos: NonNegativeInt = 50


class RateLimits(_Model):
    per_repo: PerRepoRateLimits = Field(default_factory=PerRepoRateLimits)
    # `global` is a Python keyword: the attribute is `global_`, the JSON key "global".
    global_: GlobalRateLimits = Field(default_factory=GlobalRateLimits, alias="global")


class CacheSettings(_Model):
    ttl_seconds: PositiveInt = 300
    max_size_mb: PositiveInt = 100
    eviction_policy: Literal["lru"] = "lru"


class NotificationChannel(_Model):
    type: Literal["slack", "email", "webhook"]
    webhook_url: HttpUrl | None = None
    to: list[Email] = []
    events: list[NonEmptyStr] = []

    @model_validator(mode="after")
    def _check_destination(self) -> "NotificationChannel":
        if self.type in ("slack", "webhook") and not self.webhook_url:
            raise _Problem(f"missing key 'webhook_url' (required for a {self.type} channel)")
        if self.type == "email" and not self.to:
            raise _Problem("missing key 'to' (required for an email channel)")
        return self


class Notifications(_Model):
    channels: list[NotificationChannel] = []


class AlertSettings(_Model):
    """The seed's three alerts (alerts/services.py), evaluated every 30 s by the worker's beat: a remote
    unreachable (its breaker open or its last call failed) for more than `remote_unreachable_minutes` since its
    last successful call; more than `approval_backlog` incoming requests waiting for a human; more than
    `error_rate_percent` of a remote's calls failed over the last `error_rate_window_minutes`, once it made at
    least `error_rate_min_calls` calls in that window (so one failed call of two is not an alert)."""

    enabled: bool = True
    remote_unreachable_minutes: PositiveFloat = 10.0
    approval_backlog: NonNegativeInt = 20
    error_rate_percent: Annotated[float, Field(ge=0, lt=100)] = 5.0
    error_rate_window_minutes: PositiveFloat = 5.0
    error_rate_min_calls: PositiveInt = 10


class GitSettings(_Model):
    # Commit changes made here (the CLI, the dashboard): off, as sudocode itself leaves committing to you.
    # (These three defaults live in federation_site.node.GitWriteSettings, which a write reads without pydantic.)
    auto_commit: bool = GIT_WRITE_DEFAULTS.auto_commit
    # Commit changes that come from other repositories (an approved request, an issue unblocked by a remote
    # event): on, so what another repository made us do is in git's history (the seed's HTTP request -> local
    # mutation -> git commit). Only the .sudocode files; mid-merge, mid-rebase or detached, the commit waits.
    commit_remote_changes: bool = GIT_WRITE_DEFAULTS.commit_remote_changes
    push: bool = GIT_WRITE_DEFAULTS.push
    author_name: NonEmptyStr | None = None
    author_email: Email | None = None


class CircuitBreakerSettings(_Model):
    """When calls to one remote are paused (remotes/breaker.py): after `failures` failed calls in a row (no
    answer, a timeout, a 5xx), for `cool_down_seconds`; then one probe call decides whether they resume."""

    failures: Annotated[int, Field(ge=1, le=1000)] = 5
    cool_down_seconds: PositiveFloat = 60.0


class HttpSettings(_Model):
    """Outgoing calls to remotes (our addition to the seed)."""

    timeout_seconds: PositiveFloat = 10.0
    connect_timeout_seconds: PositiveFloat = 3.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    # Read timeout per operation ("discover", "query", ...); timeout_seconds for the others.
    operation_timeouts: dict[
        Literal["discover", "query", "mutate", "subscribe", "delegate", "callback"], PositiveFloat
    ] = {}
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)

    def timeout_for(self, operation: str) -> float:
        return self.operation_timeouts.get(operation, self.timeout_seconds)


class LoggingSettings(_Model):
    """What `serve` logs (federation_site/logs.py) beyond its command line (our addition to the seed)."""

    debug_a2a: bool = False  # every A2A message in and out in full, secrets redacted (as `serve --debug-a2a`)


class RetentionSettings(_Model):
    """How long rows are kept before the periodic prune (subscriptions/retention.py; `audit prune`) removes
    them (our addition to the seed). Outbox events also wait until every active subscription has passed them."""

    audit_days: PositiveInt = 90  # audit rows older than this go, archived first to .sudocode/audit-archive/
    events_days: PositiveInt = 30  # outbox events older than this and behind every active subscription's cursor
    received_events_days: PositiveInt = 30  # events received from remotes (duplicate detection) older than this


def _identity_key(url: str) -> str:
    return url.strip().rstrip("/").lower()


class DiscoverySettings(_Model):
    """The directory (issue 13, Use Case 3): which repositories this node lists for others' `remote discover`,
    to whom, and which directories its own `remote discover` reads."""

    listed: bool = False  # list this node itself
    list_to: TrustLevel = "verified"  # the least trust level a caller needs to read the directory
    sources: list[HttpUrl] = []  # REST bases of nodes whose directories `remote discover` reads


class CorsSettings(_Model):
    # Browser origins (`https://app.example.com`) whose scripts may call this node's API (/api/...); none by
    # default (the seed's "CORS configuration for the API"; django-cors-headers, federation.apps).
    allowed_origins: list[Origin] = []


class WebSettings(_Model):
    """The dashboard's pages (issue 14). Pages that reveal the federation's configuration (remotes,
    subscriptions, approvals, audit, the graph) always need a staff login; the issue and spec pages too,
    unless `public_read` is true."""

    public_read: bool = False


class FederationConfig(_Model):
    enabled: bool = False  # seed: federation is opt-in
    local_identity: LocalIdentity | None = None
    endpoints: Endpoints = Field(default_factory=Endpoints)
    remote_repos: list[RemoteRepoConfig] = []
    policies: Policies = Field(default_factory=Policies)
    a2a_policies: A2APolicies = Field(default_factory=A2APolicies)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    notifications: Notifications = Field(default_factory=Notifications)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    git: GitSettings = Field(default_factory=GitSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @field_validator("remote_repos")
    @classmethod
    def _no_duplicate_remotes(cls, remotes: list[RemoteRepoConfig]) -> list[RemoteRepoConfig]:
        first_index: dict[str, int] = {}
        for index, remote in enumerate(remotes):
            key = _identity_key(remote.url)
            if key in first_index:
                first = first_index[key]
                raise _Problem(
                    f"duplicate of remote_repos[{first}].url ({show(remotes[first].url)})", at=(index, "url")
                )
            first_index[key] = index
        return remotes

    @model_validator(mode="after")
    def _check_node(self) -> "FederationConfig":
        if self.enabled and self.local_identity is None:
            raise _Problem("missing key 'local_identity' (required when enabled is true)")
        limit = self.rate_limits.global_.max_remote_repos
        if len(self.remote_repos) > limit:
            raise _Problem(
                f"{len(self.remote_repos)} remotes configured, rate_limits.global.max_remote_repos allows {limit}",
                at=("remote_repos",),
            )
        return self

    def remote(self, url: str) -> RemoteRepoConfig | None:
        return self.remote_index(url)[0]

    def remote_index(self, url: str) -> tuple[RemoteRepoConfig, int] | tuple[None, None]:
        """The remote declared for `url` and its index in remote_repos (for key paths), or (None, None)."""
        key = _identity_key(url)
        for index, remote in enumerate(self.remote_repos):
            if _identity_key(remote.url) == key:
                return remote, index
        return None, None


# --- loading ------------------------------------------------------------------------------------------------


def load_config(path: Path, *, source: str | None = None) -> FederationConfig:
    """Read and validate the config file; messages are prefixed with `source` (default: the file's name)."""
    path = Path(path)
    source = source or path.name
    try:
        # utf-8-sig: tolerate the BOM some editors write.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigNotFoundError(path, source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (byte {exc.start})", source=source, path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read ({exc.strerror})", source=source, path=path) from None
    return _parse(text, source=source, path=path)


def parse_config(text: str, *, source: str = CONFIG_FILENAME) -> FederationConfig:
    return _parse(text, source=source, path=None)


def _parse(text: str, *, source: str, path: Path | None) -> FederationConfig:
    try:
        data = json.loads(text, object_pairs_hook=_JsonObject.from_pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})",
            source=source,
            path=path,
            line=exc.lineno,
            column=exc.colno,
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object at the top level, got {show(data)}", source=source, path=path)
    duplicate = _find_duplicate_key(data, ())
    if duplicate:
        loc, key = duplicate
        raise ConfigError(f"duplicate key {key!r}", key_path=format_path(loc), source=source, path=path)
    try:
        return FederationConfig.model_validate(data)
    except ValidationError as exc:
        problems = tuple(_describe(error) for error in exc.errors())
        key_path, reason = problems[0]
        raise ConfigError(reason, key_path=key_path, source=source, path=path, problems=problems) from None


class _JsonObject(dict):
    """A JSON object that remembers keys given twice (json.loads silently keeps the last one)."""

    duplicates: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, Any]]) -> "_JsonObject":
        obj = cls()
        duplicates = []
        for key, value in pairs:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        obj.duplicates = tuple(duplicates)
        return obj


def _find_duplicate_key(value: Any, loc: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
    if isinstance(value, _JsonObject):
        if value.duplicates:
            return loc, value.duplicates[0]
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, child in items:
        found = _find_duplicate_key(child, (*loc, key))
        if found:
            return found
    return None


# --- turning pydantic errors into one line each -------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
}


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return format_path(loc[:-1]), f"missing key {loc[-1]!r}"
    if kind == "extra_forbidden":
        return format_path(loc), _unknown_key_reason(loc)
    if kind == "value_error":
        problem = ctx.get("error")
        at = getattr(problem, "at", ())
        return format_path((*loc, *at)), str(problem)
    if kind in _EXPECTED:
        return format_path(loc), f"expected {_EXPECTED[kind]}, got {show(value)}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", ""))) or [str(ctx.get("expected"))]
        return format_path(loc), f"{show(value)} is not one of {', '.join(options)}"
    if kind == "greater_than":
        return format_path(loc), f"must be greater than {_number(ctx['gt'])}, got {show(value)}"
    if kind == "greater_than_equal":
        return format_path(loc), f"must be at least {_number(ctx['ge'])}, got {show(value)}"
    if kind == "less_than_equal":
        return format_path(loc), f"must be at most {_number(ctx['le'])}, got {show(value)}"
    if kind == "string_too_short":
        return format_path(loc), "must not be empty"
    if kind == "finite_number":
        return format_path(loc), f"must be a finite number, got {show(value)}"
    message = str(error.get("msg", kind))
    return format_path(loc), f"{message[:1].lower()}{message[1:]}, got {show(value)}"


def _unknown_key_reason(loc: tuple[str | int, ...]) -> str:
    known = _known_keys(loc[:-1])
    if not known:
        return "unknown key"
    match = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if match:
        return f"unknown key (did you mean {match[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(known)})"


def _known_keys(loc: tuple[str | int, ...]) -> list[str] | None:
    node: Any = FederationConfig
    for part in loc:
        node = _child_type(_unwrap(node), part)
        if node is None:
            return None
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [field.alias or name for name, field in node.model_fields.items()]
    return None


def _child_type(node: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return get_args(node)[0] if get_origin(node) in (list, tuple) else None
    if isinstance(node, type) and issubclass(node, BaseModel):
        for name, field in node.model_fields.items():
            if (field.alias or name) == part:
                return field.annotation
        return None
    return get_args(node)[1] if get_origin(node) is dict else None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] to get at the model, list or dict underneath."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --- writing ------------------------------------------------------------------------------------------------


def default_config(*, url: str, display_name: str, description: str = "") -> dict[str, Any]:
    """The file `sudocode-fed init` writes: enabled, no remotes, every mutation waits for a human."""
    data: dict[str, Any] = {
        "enabled": True,
        "local_identity": {"url": url, "display_name": display_name, "description": description},
        "remote_repos": [],
        "policies": {
            "incoming_requests": {
                "query": {"allowed": True, "rate_limit": {"requests_per_minute": 60}},
                "mutate": {
                    "allowed": True,
                    # The seed's trust model, as rules a maintainer can read and change (requests_app.policy):
                    # trusted remotes are auto-approved within these limits; verified ones wait for a human
                    # (no rule approves them); untrusted ones cannot ask (the gate, not a rule).
                    "auto_approve": [
                        {
                            "condition": "from_trusted_repo",
                            "description": "seed default: trusted remotes are auto-approved within policy limits",
                            "notify": [],
                        }
                    ],
                    "require_approval": [
                        {
                            "condition": "priority <= 1 || labels.includes('breaking-change')",
                            "description": "urgent or breaking work always waits for a maintainer",
                            "notify": [],
                        }
                    ],
                },
            }
        },
        "a2a_policies": {
            "query": {
                "auto_respond": True,
                "allowed_filters": ["status", "labels", "priority", "ids", "spec_refs", "updated_since", "search"],
            },
            "mutate": {"auto_approve": [], "require_human": []},
            "delegate": {"auto_accept": False, "notify": [], "hop_limit": 3},
        },
        "rate_limits": {
            "per_repo": {"queries_per_minute": 60, "mutations_per_hour": 10, "subscriptions_max": 20},
            "global": {"cross_repo_bandwidth_mb_per_day": 1000, "max_remote_repos": 50},
        },
        "cache": {"ttl_seconds": 300, "max_size_mb": 100, "eviction_policy": "lru"},
        "notifications": {"channels": []},
        "git": {"auto_commit": False, "commit_remote_changes": True, "push": False},
        "http": {"timeout_seconds": 10, "connect_timeout_seconds": 3, "retries": 3},
    }
    parse_config(json.dumps(data))  # a bad url fails here, before anything is written
    return data


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Validate `data`, then replace the file atomically; an invalid config is never written."""
    path = Path(path)
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot be written as JSON ({exc})", source=path.name, path=path) from None
    _parse(text, source=path.name, path=path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    write_atomic(path, text.encode("utf-8"), mode=mode)


# --- identity -----------------------------------------------------------------------------------------------

_SCP_LIKE_RE = re.compile(r"(?:[^@/:\s]+@)?(?P<host>[^@/:\s]{2,}):(?P<path>[^\s]+)")


def identity_from_git_remote(remote_url: str) -> str:
    """The repo identity for a git remote, independent of transport, user, credentials and port.

    git@github.com:org/repo.git, https://github.com/org/repo.git and ssh://git@github.com:22/org/repo all give
    github.com/org/repo. Raises ValueError for local paths and anything else without a host.
    """
    raw = remote_url.strip()
    if "://" in raw:
        parts = urlsplit(raw)
        host, path = parts.hostname or "", parts.path
        if parts.scheme == "file":
            host = ""
    else:
        match = _SCP_LIKE_RE.fullmatch(raw)
        if not match or "\\" in raw:
            raise ValueError(f"cannot derive a repo identity from git remote {remote_url!r}: no host")
        host, path = match["host"], match["path"]
    path = path.strip("/").removesuffix(".git").strip("/")
    if not host or not path:
        raise ValueError(f"cannot derive a repo identity from git remote {remote_url!r}: no host or path")
    return f"{host.lower()}/{path}"
