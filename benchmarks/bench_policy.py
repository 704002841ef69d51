"""How long the policy engine takes to decide (issue 11: under 50 µs per decision with 20 rules, so policy is
never what limits a request).

Times `requests_app.policy.decide` in this process, with a config of 20 rules (10 require rules none of which
match, 10 auto-approve rules of which only the last matches: the worst case, every rule evaluated), for a
create_issue message from a verified remote. A decision is: building the policy variables of the message, the
CEL context, and evaluating the rules. The gate and the quotas (a few database counts) are timed apart, as
`evaluate_with_database_us`, on a fresh SQLite database.

Prints one JSON document on stdout; progress goes to stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_policy.py [--decisions N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, django_in_new_repo, percentile, progress

sys.path.insert(0, str(REPO_ROOT))

REQUIRE = [
    "priority <= 0",
    "labels.includes('breaking-change')",
    "labels.includes('security') && priority <= 2",
    "title.startsWith('URGENT')",
    "requests_today > 500",
    "trust_level == 'untrusted' && auto_approve",
    "size(labels) > 15",
    "description.contains('DROP TABLE')",
    "from.endsWith('.invalid')",
    "operation == 'update_issue' && status == 'closed' && !from_trusted_repo",
]
APPROVE = [
    "from_trusted_repo && priority >= 3",
    "labels.includes('auto-approve') && from_trusted_repo",
    "requests_this_hour < 0",
    "type == 'spec' && from_trusted_repo",
    "labels.exists(l, l.startsWith('team-')) && from_trusted_repo",
    "priority == 4 && labels.includes('docs')",
    "title.size() > 400",
    "hops > 2",
    "trust_level === 'trusted' && priority >= 2",
    "from_verified_repo && !labels.includes('breaking-change') && priority >= 2",
]


def config_data() -> dict:
    from federation_site.config import default_config

    data = default_config(url="github.com/org/bench", display_name="Bench")
    mutate = data["policies"]["incoming_requests"]["mutate"]
    mutate["require_approval"] = [{"condition": c} for c in REQUIRE]
    mutate["auto_approve"] = [{"condition": c} for c in APPROVE]
    data["remote_repos"] = [{"url": "github.com/org/caller", "trust_level": "verified"}]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2_000, help="decisions per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds; the best and the median are reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        django_in_new_repo(Path(tmp))

        from federation_site.config import parse_config
        from remotes.models import RemoteRepo
        from remotes.policy import Caller
        from requests_app import policy

        started = time.perf_counter()
        config = parse_config(json.dumps(config_data()))
        load_ms = (time.perf_counter() - started) * 1000
        remote = RemoteRepo.objects.create(
            url="github.com/org/caller",
            trust_level="verified",
            display_name="caller",
            added_by="bench",
            added_at=_now(),
        )
        caller = Caller(remote)
        data = {"title": "Add user profile endpoint", "description": "Frontend needs it", "priority": 2,
                "labels": ["api", "frontend-request"]}  # fmt: skip
        metadata = {"request_id": "req-bench", "requester": "bench", "auto_approve": False}
        rules = policy.rules_of(config)
        assert len(rules.require) + len(rules.approve) == 20
        decision = policy.decide(caller, policy.variables(caller, "create_issue", data, metadata=metadata), config)
        assert decision.rule == "policies.incoming_requests.mutate.auto_approve[9]", decision

        def one() -> None:
            policy.decide(caller, policy.variables(caller, "create_issue", data, metadata=metadata), config)

        progress(f"{args.rounds} rounds of {args.decisions} decisions, 20 rules each")
        rounds = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for _ in range(args.decisions):
                one()
            rounds.append((time.perf_counter() - started) / args.decisions * 1e6)
        singles = []
        for _ in range(2000):
            started = time.perf_counter()
            one()
            singles.append((time.perf_counter() - started) * 1e6)
        with_db = []
        for _ in range(300):
            started = time.perf_counter()
            policy.evaluate(caller, "create_issue", data, config, metadata=metadata)
            with_db.append((time.perf_counter() - started) * 1e6)

    print(
        json.dumps(
            {
                "benchmark": "policy_decision",
                "rules": 20,
                "rules_evaluated_per_decision": 20,
                "target_us": 50,
                "decision_us": {
                    "median_of_rounds": round(statistics.median(rounds), 2),
                    "best_round": round(min(rounds), 2),
                    "single_p50": round(percentile(singles, 0.5), 2),
                    "single_p99": round(percentile(singles, 0.99), 2),
                },
                "evaluate_with_database_us": {
                    "p50": round(percentile(with_db, 0.5), 1),
                    "p90": round(percentile(with_db, 0.9), 1),
                },
                "config_load_with_20_rules_ms": round(load_ms, 2),
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            },
            indent=2,
        )
    )


def _now():
    from django.utils import timezone

    return timezone.now()


if __name__ == "__main__":
    main()
