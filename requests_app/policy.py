"""Who may ask this node for work, and whether a human must say yes: the one decision function the policy
engine will replace.

Until the condition language of `auto_approve_conditions` / `require_human` exists, the seed's trust-level
defaults decide: untrusted callers cannot mutate; verified callers always wait for a human; trusted callers
whose `permissions.mutate.allowed` is true are completed at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from remotes.models import TrustLevel
from remotes.policy import Caller, PermissionDenied
from requests_app.models import CrossRepoRequest, Direction


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Decision:
    auto: bool
    reason: str


def check_may_mutate(caller: Caller, operation: str, config) -> None:
    if config is not None and not config.policies.incoming_requests.mutate.allowed:
        raise PermissionDenied("this node takes no requests (policies.incoming_requests.mutate.allowed)")
    if caller.remote is None:
        raise PermissionDenied("an anonymous caller (trust level untrusted) cannot request changes")
    if caller.trust_level == TrustLevel.UNTRUSTED:
        raise PermissionDenied(f"{caller} has trust level untrusted, which cannot request changes")
    declared = config.remote(caller.identity) if config is not None else None
    if declared is not None and operation not in declared.permissions.mutate.operations:
        raise PermissionDenied(f"{caller} may not {operation} here (permissions.mutate.operations)")


def decide(caller: Caller, operation: str, config) -> Decision:
    declared = config.remote(caller.identity) if config is not None else None
    if caller.trust_level == TrustLevel.TRUSTED and declared is not None and declared.permissions.mutate.allowed:
        return Decision(True, "trusted remote with permissions.mutate.allowed")
    return Decision(False, f"{caller.trust_level} remote: a maintainer decides")


def check_rate(caller: Caller, operation: str, config) -> None:
    """`max_creates_per_day` and `mutations_per_hour` for the caller's remote (429 with Retry-After)."""
    declared = config.remote(caller.identity) if config is not None else None
    per_hour = (declared.permissions.mutate.mutations_per_hour if declared else None) or (
        config.rate_limits.per_repo.mutations_per_hour if config is not None else None
    )
    per_day = declared.permissions.mutate.max_creates_per_day if declared else None
    now = timezone.now()
    mine = CrossRepoRequest.objects.filter(direction=Direction.INCOMING, from_repo=caller.identity)
    limits = [(per_hour, timedelta(hours=1), mine, "mutations_per_hour")]
    if operation.startswith("create_"):
        limits.append(
            (per_day, timedelta(days=1), mine.filter(request_type__startswith="create_"), "max_creates_per_day")
        )
    for limit, window, qs, name in limits:
        if limit is None:
            continue
        recent = qs.filter(created_at__gte=now - window).order_by("created_at")
        if recent.count() >= limit:
            oldest = recent.values_list("created_at", flat=True)[0]
            retry = max(1, math.ceil((oldest + window - now).total_seconds()))
            raise RateLimited(f"{caller} reached {name} ({limit}); try again in {retry} s", retry)
