"""The policy engine (issue 11): the condition language, config errors at load, and the decision function as a
table: trust level x operation x conditions x rules. In-process; the cross-node parts are test_delegation.py
and test_quotas.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation_site.conditions import VARIABLES, ConditionError, compile_condition, context
from federation_site.config import ConfigError, default_config, parse_config
from remotes.models import RemoteRepo
from remotes.policy import Caller, PermissionDenied
from requests_app.policy import APPROVE, HUMAN, check_may_mutate, decide, variables

SEED_REMOTE = {
    # The seed's Permission Model example, word for word.
    "url": "github.com/org/api-service",
    "display_name": "API Service",
    "trust_level": "trusted",
    "permissions": {
        "query": {"allowed": True, "entities": ["issue", "spec"], "filters": ["status", "labels", "priority"]},
        "mutate": {
            "allowed": True,
            "operations": ["create_issue"],
            "auto_approve_conditions": [
                "priority >= 2",
                "!labels.includes('breaking-change')",
                "!labels.includes('security')",
            ],
            "max_creates_per_day": 20,
        },
        "subscribe": {"allowed": True, "max_subscriptions": 10},
    },
}


def config_with(**changes) -> object:
    data = default_config(url="github.com/org/me", display_name="Me")
    data["remote_repos"] = [
        {"url": "github.com/org/friend", "trust_level": "trusted"},
        {"url": "github.com/org/partner", "trust_level": "verified"},
        {"url": "github.com/org/stranger", "trust_level": "untrusted"},
        SEED_REMOTE,
    ]
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return parse_config(json.dumps(data))


def caller(url: str, level: str) -> Caller:
    return Caller(RemoteRepo(url=url, trust_level=level))


FRIEND = caller("github.com/org/friend", "trusted")
PARTNER = caller("github.com/org/partner", "verified")
STRANGER = caller("github.com/org/stranger", "untrusted")
SEEDED = caller("github.com/org/api-service", "trusted")


def judge(who: Caller, config, operation: str = "create_issue", **data):
    data.setdefault("title", "Add an endpoint")
    check_may_mutate(who, f"create_{data.get('type')}" if operation == "delegate" else operation, config)
    return decide(who, variables(who, operation, data, metadata=data.pop("metadata", None)), config)


# --- the condition language -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        # The seed's own conditions.
        ("priority >= 2", {"priority": 3}, True),
        ("priority >= 2", {"priority": 1}, False),
        ("!labels.includes('breaking-change')", {"labels": ["api"]}, True),
        ("!labels.includes('breaking-change')", {"labels": ["breaking-change"]}, False),
        ("from_trusted_repo && labels.includes('auto-approve')", {"labels": ["auto-approve"]}, True),
        ("priority <= 1 || labels.includes('security')", {"priority": 3, "labels": ["security"]}, True),
        ("priority <= 1 || labels.includes('security')", {"priority": 3}, False),
        ("trust_level === 'trusted' && priority >= 2", {"priority": 2}, True),
        ("trust_level !== 'trusted'", {}, False),
        # CEL on its own.
        ("title.startsWith('Add') && size(labels) == 0", {}, True),
        ("labels.exists(l, l.startsWith('team-'))", {"labels": ["team-a"]}, True),
        ("title.includes('===')", {"title": "a === b"}, True),
        ("requests_today < 10 && hops == 0", {}, True),
    ],
)
def test_conditions_mean_what_the_seed_says(condition, values, expected):
    base = variables(FRIEND, "create_issue", {"title": "Add an endpoint"})
    assert compile_condition(condition).evaluate(context({**base, **values})) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("prio >= 2", "unknown name 'prio' at column 1 (did you mean 'priority'? known: operation, type, id,"),
        ("zzz > 1", "unknown name 'zzz' at column 1 (known: operation, type, id,"),
        ("priority >= 2 &&\n  lables.includes('x')", "unknown name 'lables' at line 2, column 3"),
        ("priority >=", "syntax error at column 12: the condition ends early"),
        ("priority >== 2", "syntax error at column"),
        ("shout(title)", "unknown function 'shout' at column 1"),
        ("priority >= '2'", "cannot be evaluated: the types do not fit"),
        ("prioriti >= 2", "unknown name 'prioriti' at column 1 (did you mean 'priority'? known:"),
        ("priority", "gives 2, not true or false"),
        ("'unterminated", "syntax error at column 1"),
    ],
)
def test_a_condition_that_cannot_be_used_says_where_and_why(condition, message):
    with pytest.raises(ConditionError) as info:
        compile_condition(condition)
    assert message in str(info.value)


def test_a_bad_condition_in_the_config_is_refused_at_load_with_its_key_path():
    data = default_config(url="github.com/org/me", display_name="Me")
    data["policies"]["incoming_requests"]["mutate"]["auto_approve"] = [{"condition": "prio >= 2"}]
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(data))
    assert str(info.value).startswith(
        "federation.config.json: policies.incoming_requests.mutate.auto_approve[0].condition: "
        "unknown name 'prio' at column 1 (did you mean 'priority'? known: operation, type,"
    )
    data["policies"]["incoming_requests"]["mutate"]["auto_approve"] = []
    data["remote_repos"] = [{**SEED_REMOTE, "permissions": {"mutate": {"auto_approve_conditions": ["1 +"]}}}]
    with pytest.raises(ConfigError, match=r"remote_repos\[0\]\.permissions\.mutate\.auto_approve_conditions\[0\]: "):
        parse_config(json.dumps(data))
    data["remote_repos"] = []
    data["a2a_policies"]["delegate"]["auto_accept"] = "hops <"
    with pytest.raises(ConfigError, match=r"a2a_policies\.delegate\.auto_accept: .*syntax error"):
        parse_config(json.dumps(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=60),
        st.lists(
            st.sampled_from(
                [
                    *VARIABLES,
                    "&&",
                    "||",
                    "!",
                    "==",
                    "===",
                    "!==",
                    ">=",
                    "<",
                    "(",
                    ")",
                    ".",
                    "includes",
                    "'x'",
                    '"',
                    "2",
                    "[",
                    "]",
                    ",",
                    "size",
                    "exists",
                    "?",
                    ":",
                    "in",
                    "true",
                    "null",
                    "1.5",
                    "\\",
                    "'''",
                    "//",
                ]
            ),
            max_size=12,
        ).map(" ".join),
    )
)
def test_any_string_is_a_condition_or_a_config_error_never_a_crash(text):
    try:
        condition = compile_condition(text)
    except ConditionError as exc:
        assert str(exc)
        return
    result = condition.evaluate(context(variables(FRIEND, "create_issue", {"title": "x"})))
    assert isinstance(result, bool)


# --- the decision table -----------------------------------------------------------------------------------


def test_the_seed_defaults_trusted_approved_verified_waits_untrusted_refused():
    config = config_with()
    decision = judge(FRIEND, config, priority=2)
    assert (decision.outcome, decision.rule) == (APPROVE, "policies.incoming_requests.mutate.auto_approve[0]")
    assert decision.condition == "from_trusted_repo"
    decision = judge(PARTNER, config, priority=3)
    assert (decision.outcome, decision.rule) == (HUMAN, "")
    assert "no auto-approve rule matched (verified caller)" in decision.reason
    with pytest.raises(PermissionDenied, match="trust level untrusted, which cannot request changes"):
        judge(STRANGER, config)
    with pytest.raises(PermissionDenied, match="anonymous caller"):
        judge(Caller(), config)


def test_require_rules_always_beat_auto_approval():
    config = config_with()
    for data in ({"priority": 1}, {"priority": 3, "labels": ["breaking-change"]}):
        decision = judge(FRIEND, config, **data)
        assert (decision.outcome, decision.rule) == (HUMAN, "policies.incoming_requests.mutate.require_approval[0]")
        assert "requires a human" in decision.reason
    config = config_with(a2a_policies__mutate__require_human=[{"condition": "labels.includes('security')"}])
    decision = judge(FRIEND, config, labels=["security"])
    assert (decision.outcome, decision.rule) == (HUMAN, "a2a_policies.mutate.require_human[0]")


def test_a_disabled_rule_is_ignored():
    rules = [{"condition": "priority <= 1", "enabled": False}]
    config = config_with(policies__incoming_requests__mutate__require_approval=rules)
    assert judge(FRIEND, config, priority=0).outcome == APPROVE
    config = config_with(policies__incoming_requests__mutate__auto_approve=[{"condition": "true", "enabled": False}])
    assert judge(FRIEND, config, priority=3).outcome == HUMAN


def test_max_priority_is_the_most_urgent_priority_a_rule_may_approve():
    rules = [{"condition": "from_verified_repo && labels.includes('auto-approve')", "max_priority": 2}]
    config = config_with(
        policies__incoming_requests__mutate__auto_approve=[],
        policies__incoming_requests__mutate__require_approval=[],
        a2a_policies__mutate__auto_approve=rules,
    )
    assert judge(PARTNER, config, priority=2, labels=["auto-approve"]).rule == "a2a_policies.mutate.auto_approve[0]"
    assert judge(PARTNER, config, priority=4, labels=["auto-approve"]).outcome == APPROVE
    urgent = judge(PARTNER, config, priority=1, labels=["auto-approve"])
    assert urgent.outcome == HUMAN and "priority 2 or lower urgency only" in urgent.reason
    assert judge(PARTNER, config, priority=3, labels=[]).outcome == HUMAN


def test_all_of_a_remotes_own_conditions_must_hold():
    config = config_with()
    path = "remote_repos[3].permissions.mutate.auto_approve_conditions"
    decision = judge(SEEDED, config, priority=3, labels=["api"])
    assert (decision.outcome, decision.rule) == (APPROVE, path)
    decision = judge(SEEDED, config, priority=3, labels=["security"])
    assert (decision.outcome, decision.rule) == (HUMAN, f"{path}[2]")
    assert "!labels.includes('security')" in decision.reason
    # A require rule still beats them (priority 1 here fails the remote's first condition anyway).
    assert judge(SEEDED, config, priority=1).rule == "policies.incoming_requests.mutate.require_approval[0]"


def test_the_permission_gate_names_what_is_missing():
    config = config_with()
    with pytest.raises(
        PermissionDenied, match=r"may not create_spec here \(remote_repos\[3\]\.permissions\.mutate\.operations"
    ):
        judge(SEEDED, config, "create_spec")
    config = config_with(
        remote_repos=[
            {"url": "github.com/org/friend", "trust_level": "trusted", "permissions": {"mutate": {"allowed": False}}}
        ]
    )
    with pytest.raises(PermissionDenied, match=r"remote_repos\[0\]\.permissions\.mutate\.allowed is false"):
        judge(FRIEND, config)
    config = config_with(
        remote_repos=[
            {"url": "github.com/org/stranger", "trust_level": "untrusted", "permissions": {"mutate": {"allowed": True}}}
        ]
    )
    assert judge(STRANGER, config).outcome == HUMAN  # allowed explicitly: it may ask; a human decides
    config = config_with(policies__incoming_requests__mutate__allowed=False)
    with pytest.raises(PermissionDenied, match="this node takes no requests"):
        judge(FRIEND, config)


def test_the_messages_own_auto_approve_is_a_wish_only_a_rule_grants():
    config = config_with()
    decision = judge(PARTNER, config, metadata={"auto_approve": True})
    assert decision.outcome == HUMAN and "only a rule grants it" in decision.reason
    config = config_with(a2a_policies__mutate__auto_approve=[{"condition": "auto_approve && from_verified_repo"}])
    assert judge(PARTNER, config, metadata={"auto_approve": True}).outcome == APPROVE


def test_a_rule_that_cannot_be_evaluated_for_a_message_fails_safe():
    config = config_with(a2a_policies__mutate__require_human=[{"condition": "requirements.replicas > 5"}])
    decision = judge(FRIEND, config, "delegate", type="spec")
    assert decision.outcome == HUMAN and "a human decides to be safe" in decision.reason


def test_delegations_follow_auto_accept_and_the_require_rules():
    config = config_with()
    decision = judge(FRIEND, config, "delegate", type="spec")
    assert (decision.outcome, decision.rule) == (HUMAN, "a2a_policies.delegate.auto_accept")
    config = config_with(a2a_policies__delegate={"auto_accept": True, "notify": ["@team-leads"]})
    decision = judge(PARTNER, config, "delegate", type="spec")
    assert decision.outcome == APPROVE and decision.notify == ("@team-leads",)
    assert judge(PARTNER, config, "delegate", type="spec", priority=0).outcome == HUMAN  # require beats it
    config = config_with(a2a_policies__delegate={"auto_accept": "from_trusted_repo && hops <= 1"})
    assert judge(FRIEND, config, "delegate", type="issue").outcome == APPROVE
    chained = {"chain": ["org/a#spec-1", "org/b#spec-2"]}
    assert judge(FRIEND, config, "delegate", type="issue", context=chained).outcome == HUMAN
    assert judge(PARTNER, config, "delegate", type="issue").outcome == HUMAN
