"""The policy engine: whether a caller may ask this node for work, and whether a human must say yes. One
decision for every door (REST, the A2A endpoint, later MCP), for mutate and delegate messages alike.

Order (seed: Trust and Security Model, A2A Agent Behavior; issue 11):
1. the permission gate (`check_may_mutate`): the node takes requests at all, the caller is known and its trust
   level or `permissions.mutate.allowed` lets it ask, the operation is in `permissions.mutate.operations`
   -> PermissionDenied (403) naming what is missing;
2. quotas (`check_rate`): `mutations_per_hour`, `max_creates_per_day` -> RateLimited (429 with Retry-After);
3. the rules (`decide`): a matching `require_approval` / `require_human` rule means a human decides (it always
   beats auto-approval; a rule that cannot be evaluated for this message counts as matching). Then, for a
   delegation, `a2a_policies.delegate.auto_accept`; for a mutation, the remote's own
   `auto_approve_conditions` when it declares any (all must hold), else the first enabled `auto_approve` rule
   whose condition holds and whose `max_priority` admits the priority. No rule: a human decides.

Conditions are CEL (federation_site.conditions), compiled when the config is loaded. The trust-level defaults of
the seed are rules `sudocode-fed init` writes into the config, not code here. The message's own
`metadata.auto_approve` is a wish a rule may read (`auto_approve`), never a grant.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from federation_site import conditions
from remotes.models import TrustLevel
from remotes.policy import Caller, PermissionDenied, RateLimited
from requests_app.models import CrossRepoRequest, Direction, RequestType

APPROVE = "approve"
HUMAN = "human"

__all__ = ["APPROVE", "HUMAN", "Decision", "PermissionDenied", "RateLimited", "evaluate"]


@dataclass(frozen=True)
class Decision:
    """What the rules decided: `outcome` APPROVE (carry it out now) or HUMAN (a maintainer decides), the config
    path of the `rule` that decided ("" when none did), its `condition` as written, the `reason` in words, and
    whom the rule asks to be told (`notify`, e.g. ["@team-leads"])."""

    outcome: str
    rule: str
    reason: str
    condition: str = ""
    notify: tuple[str, ...] = ()

    @property
    def auto(self) -> bool:
        return self.outcome == APPROVE

    def as_json(self) -> dict[str, Any]:
        """The wire shape (protocol.messages.Decision)."""
        body = {"outcome": self.outcome, "reason": self.reason}
        if self.rule:
            body["rule"] = self.rule
        if self.condition:
            body["condition"] = self.condition
        return body


# --- 1. the gate ---------------------------------------------------------------------------------------------


def check_may_mutate(caller: Caller, operation: str, config) -> None:
    """PermissionDenied naming what is missing. `operation` is create_issue, create_spec or update_issue; a
    delegation of a spec is gated as create_spec (it creates one here)."""
    if config is not None and not config.policies.incoming_requests.mutate.allowed:
        raise PermissionDenied("this node takes no requests (policies.incoming_requests.mutate.allowed is false)")
    if caller.remote is None:
        raise PermissionDenied("an anonymous caller (trust level untrusted) cannot request changes: ask for an API key")
    declared, index = _declared(caller, config)
    where = f"remote_repos[{index}].permissions.mutate" if declared is not None else ""
    allowed = declared.permissions.mutate.allowed if declared is not None else None
    if allowed is False:
        raise PermissionDenied(f"{caller} may not request changes here ({where}.allowed is false)")
    if allowed is None and caller.trust_level == TrustLevel.UNTRUSTED:
        raise PermissionDenied(
            f"{caller} has trust level untrusted, which cannot request changes "
            "(raise its trust level, or set permissions.mutate.allowed)"
        )
    if declared is not None and operation not in declared.permissions.mutate.operations:
        allowed_ops = ", ".join(declared.permissions.mutate.operations) or "none"
        raise PermissionDenied(f"{caller} may not {operation} here ({where}.operations allows: {allowed_ops})")


# --- 2. quotas -----------------------------------------------------------------------------------------------


def check_rate(caller: Caller, operation: str, config) -> None:
    """`max_creates_per_day` and `mutations_per_hour` for the caller's remote: RateLimited (429, Retry-After)."""
    declared, _ = _declared(caller, config)
    per_hour = (declared.permissions.mutate.mutations_per_hour if declared else None) or (
        config.rate_limits.per_repo.mutations_per_hour if config is not None else None
    )
    per_day = declared.permissions.mutate.max_creates_per_day if declared else None
    now = timezone.now()
    mine = CrossRepoRequest.objects.filter(direction=Direction.INCOMING, from_repo=caller.identity)
    limits = [(per_hour, timedelta(hours=1), mine, "mutations_per_hour")]
    if operation.startswith("create_"):
        creates = mine.filter(request_type__in=[RequestType.CREATE_ISSUE, RequestType.CREATE_SPEC, "delegate"])
        limits.append((per_day, timedelta(days=1), creates, "max_creates_per_day"))
    for limit, window, qs, name in limits:
        if limit is None:
            continue
        recent = qs.filter(created_at__gte=now - window).order_by("created_at")
        if recent.count() >= limit:
            oldest = recent.values_list("created_at", flat=True)[0]
            retry = max(1, math.ceil((oldest + window - now).total_seconds()))
            raise RateLimited(f"{caller} reached {name} ({limit}); try again in {retry} s", retry)


_COUNTS = frozenset({"requests_today", "requests_this_hour"})


def recent_counts(caller: Caller) -> dict[str, int]:
    """requests_today and requests_this_hour: the caller's incoming requests in the last 24 hours and hour."""
    if not caller.identity:
        return {"requests_today": 0, "requests_this_hour": 0}
    now = timezone.now()
    mine = CrossRepoRequest.objects.filter(
        direction=Direction.INCOMING, from_repo=caller.identity, created_at__gte=now - timedelta(days=1)
    )
    return {
        "requests_today": mine.count(),
        "requests_this_hour": mine.filter(created_at__gte=now - timedelta(hours=1)).count(),
    }


# --- 3. the rules --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One rule of the config, at its path: `kind` is "require" (a human decides) or "approve"."""

    path: str
    kind: str
    condition: conditions.Condition
    max_priority: int | None = None
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Rules:
    require: tuple[Rule, ...]
    approve: tuple[Rule, ...]
    delegate: Rule | None  # auto_accept as a rule ("true" when it is simply true)
    delegate_notify: tuple[str, ...]
    by_remote: dict[int, tuple[str, tuple[Rule, ...]]] = field(default_factory=dict)  # by remote_repos index
    names: frozenset[str] = frozenset()  # the variables any rule reads


_rules_cache: dict[int, tuple[Any, _Rules]] = {}


def rules_of(config) -> _Rules:
    """The config's rules, compiled (conditions were compiled and checked when the config loaded; this finds
    them in the cache). Cached per config object: a reload makes a new one."""
    cached = _rules_cache.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    rules = _collect(config) if config is not None else _Rules((), (), None, ())
    _rules_cache.clear()
    _rules_cache[id(config)] = (config, rules)
    return rules


def _collect(config) -> _Rules:
    def listed(path: str, entries, kind: str) -> Iterator[Rule]:
        for i, entry in enumerate(entries):
            if entry.enabled:
                yield Rule(
                    f"{path}[{i}]",
                    kind,
                    conditions.compile_condition(entry.condition),
                    entry.max_priority,
                    tuple(entry.notify),
                )

    incoming, a2a = config.policies.incoming_requests.mutate, config.a2a_policies.mutate
    require = (
        *listed("policies.incoming_requests.mutate.require_approval", incoming.require_approval, "require"),
        *listed("a2a_policies.mutate.require_human", a2a.require_human, "require"),
    )
    approve = (
        *listed("policies.incoming_requests.mutate.auto_approve", incoming.auto_approve, "approve"),
        *listed("a2a_policies.mutate.auto_approve", a2a.auto_approve, "approve"),
    )
    accept = config.a2a_policies.delegate.auto_accept
    delegate = None
    if accept is not False:
        delegate = Rule(
            "a2a_policies.delegate.auto_accept",
            "approve",
            conditions.compile_condition("true" if accept is True else accept),
        )
    by_remote = {}
    for index, remote in enumerate(config.remote_repos):
        own = remote.permissions.mutate.auto_approve_conditions
        if own:
            path = f"remote_repos[{index}].permissions.mutate.auto_approve_conditions"
            by_remote[index] = (
                path,
                tuple(Rule(f"{path}[{j}]", "approve", conditions.compile_condition(c)) for j, c in enumerate(own)),
            )
    every = [*require, *approve, *([delegate] if delegate else []), *(r for _, own in by_remote.values() for r in own)]
    names = frozenset().union(*(rule.condition.names for rule in every))
    return _Rules(require, approve, delegate, tuple(config.a2a_policies.delegate.notify), by_remote, names)


def variables(
    caller: Caller, operation: str, data: dict[str, Any], *, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The policy variables (federation_site.conditions.VARIABLES) for one message. `data` is a mutate's
    `data` or a delegation's `task`."""
    metadata = metadata or {}
    context = data.get("context") or {}
    chain = list(context.get("chain") or [])
    kind = data.get("type") if operation == "delegate" else operation.partition("_")[2]
    return {
        "operation": operation,
        "type": kind or "issue",
        "id": data.get("id") or "",
        "title": data.get("title") or "",
        "description": data.get("description") or "",
        "priority": 2 if data.get("priority") is None else data["priority"],
        "labels": list(data.get("labels") or []),
        "status": data.get("status") or "",
        "from": caller.identity,
        "requester": metadata.get("requester") or "",
        "trust_level": str(caller.trust_level),
        "from_trusted_repo": caller.trust_level == TrustLevel.TRUSTED,
        "from_verified_repo": caller.trust_level in (TrustLevel.TRUSTED, TrustLevel.VERIFIED),
        "auto_approve": bool(metadata.get("auto_approve")),
        "requests_today": 0,
        "requests_this_hour": 0,
        "requirements": dict(data.get("requirements") or {}),
        "context": dict(context),
        "chain": chain,
        "hops": len(chain),
    }


def decide(caller: Caller, variables: dict[str, Any], config) -> Decision:
    """The rules' decision for one message whose gate and quotas passed (steps 3 of the module docstring)."""
    rules = rules_of(config)
    ctx = conditions.context(variables, rules.names)
    for rule in rules.require:
        try:
            matched = rule.condition.evaluate(ctx)
        except conditions.ConditionFailed as exc:
            return _decision(HUMAN, rule, f"{exc}; a human decides to be safe", variables)
        if matched:
            return _decision(HUMAN, rule, f"{rule.path} requires a human: {rule.condition} holds", variables)
    if variables["operation"] == "delegate":
        notify = rules.delegate_notify
        rule = rules.delegate
        if rule is None:
            reason = "a2a_policies.delegate.auto_accept is false: a maintainer accepts"
            if variables.get("auto_approve"):
                reason += " (the delegation asked for auto_approve; only a rule grants it)"
            return Decision(HUMAN, "a2a_policies.delegate.auto_accept", reason, "", notify)
        return _first_approving((rule,), ctx, variables, otherwise="its condition does not hold", notify=notify)
    _, index = _declared(caller, config)
    declared = rules.by_remote.get(index) if index is not None else None
    if declared is not None:
        path, own = declared
        for rule in own:
            try:
                holds = rule.condition.evaluate(ctx)
            except conditions.ConditionFailed as exc:
                return _decision(HUMAN, rule, f"{exc}; a human decides", variables)
            if not holds:
                return _decision(
                    HUMAN, rule, f"{rule.path} ({rule.condition}) does not hold: a maintainer decides", variables
                )
        return Decision(APPROVE, path, f"every condition of {path} holds", " && ".join(str(r.condition) for r in own))
    return _first_approving(rules.approve, ctx, variables, otherwise=f"{caller.trust_level} caller")


def _first_approving(
    rules: tuple[Rule, ...], ctx, variables: dict[str, Any], *, otherwise: str, notify: tuple[str, ...] = ()
) -> Decision:
    skipped = []
    for rule in rules:
        if rule.max_priority is not None and variables["priority"] < rule.max_priority:
            skipped.append(f"{rule.path} approves priority {rule.max_priority} or lower urgency only")
            continue
        try:
            holds = rule.condition.evaluate(ctx)
        except conditions.ConditionFailed as exc:
            skipped.append(str(exc))
            continue
        if holds:
            return Decision(APPROVE, rule.path, f"{rule.path}: {rule.condition} holds", str(rule.condition), notify)
    reason = f"no auto-approve rule matched ({otherwise}): a maintainer decides"
    if skipped:
        reason += "; " + "; ".join(skipped)
    return _decision(HUMAN, None, reason, variables, notify=notify)


def _decision(
    outcome: str, rule: Rule | None, reason: str, variables: dict[str, Any], *, notify: tuple[str, ...] = ()
) -> Decision:
    if outcome == HUMAN and variables.get("auto_approve"):
        reason += " (the request asked for auto_approve; only a rule grants it)"
    if rule is None:
        return Decision(outcome, "", reason, "", notify)
    return Decision(outcome, rule.path, reason, str(rule.condition), rule.notify or notify)


def evaluate(
    caller: Caller,
    operation: str,
    data: dict[str, Any],
    config,
    *,
    metadata: dict[str, Any] | None = None,
    check_quotas: bool = True,
) -> Decision:
    """The whole decision for one mutate or delegate message: gate -> quotas -> rules. Raises PermissionDenied
    or RateLimited; returns the Decision. `data` is the mutate's data or the delegation's task."""
    gated = f"create_{data.get('type')}" if operation == "delegate" else operation
    check_may_mutate(caller, gated, config)
    if check_quotas:
        check_rate(caller, gated, config)
    values = variables(caller, operation, data, metadata=metadata)
    if _COUNTS & rules_of(config).names:  # two queries, only when a rule reads them
        values.update(recent_counts(caller))
    return decide(caller, values, config)


def _declared(caller: Caller, config):
    """(the caller's remote_repos entry, its index) or (None, None)."""
    if config is None or caller.remote is None:
        return None, None
    return config.remote_index(caller.identity)
