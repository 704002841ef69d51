"""Who may subscribe, to how many subscriptions, and which fields of an event each subscriber hears: the one
place where trust levels and `permissions.subscribe` decide, for webhooks and WebSocket alike.

Seed (Trust and Security Model): untrusted remotes cannot subscribe; verified ones hear public events (the
public fields); trusted ones hear everything their query permissions let them see. `permissions.subscribe`
in federation.config.json overrides the trust level's yes or no per remote, and caps the number of
subscriptions (`max_subscriptions`, else `rate_limits.per_repo.subscriptions_max`).
"""

from __future__ import annotations

from remotes.models import TrustLevel
from remotes.policy import PUBLIC_FIELDS, Caller, PermissionDenied, query_grant


def subscribe_fields(caller: Caller, config) -> frozenset[str]:
    """The fields of an event `caller` may hear about, or PermissionDenied if it may not subscribe at all."""
    remote_config = config.remote(caller.identity) if (config is not None and caller.remote) else None
    allowed = remote_config.permissions.subscribe.allowed if remote_config is not None else None
    if allowed is False:
        raise PermissionDenied(f"{caller} may not subscribe to this node (permissions.subscribe.allowed is false)")
    if allowed is None and caller.trust_level == TrustLevel.UNTRUSTED:
        raise PermissionDenied(
            f"{caller} is untrusted and may not subscribe; the maintainers of this node can raise its trust level "
            "or set permissions.subscribe.allowed"
        )
    try:
        fields = query_grant(caller, config).fields
    except PermissionDenied:
        fields = PUBLIC_FIELDS | {"id", "uuid", "canonical_ref"}
    if caller.trust_level != TrustLevel.TRUSTED and allowed is not True:
        fields = fields & (PUBLIC_FIELDS | {"id", "uuid", "canonical_ref"})
    return frozenset(fields)


def subscriptions_max(caller: Caller, config) -> int:
    remote_config = config.remote(caller.identity) if (config is not None and caller.remote) else None
    if remote_config is not None and remote_config.permissions.subscribe.max_subscriptions is not None:
        return remote_config.permissions.subscribe.max_subscriptions
    return config.rate_limits.per_repo.subscriptions_max if config is not None else 20
