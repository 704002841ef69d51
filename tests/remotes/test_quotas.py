"""Fixed-window quotas (remotes.quotas.take): far from the limit a process reserves uses in batches and grants
them without a write; nearer the limit every use is counted in the database first, so the limit holds exactly
with several processes counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from remotes import quotas
from remotes.models import QuotaUsage
from remotes.policy import RateLimited

pytestmark = pytest.mark.django_db(transaction=True)

MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _fresh_counts():
    # One minute's window throughout: hundreds of takes on a slow database could otherwise cross into the next
    # minute, whose fresh count grants more (seen once on PostgreSQL in CI as "granted past the limit").
    with time_machine.travel(datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC), tick=False):
        quotas._slots.clear()
        yield
        quotas._slots.clear()


def _in_database(key: str) -> int:
    return sum(QuotaUsage.objects.filter(key=key).values_list("amount", flat=True))


def _take_until_refused(key: str, limit: int) -> int:
    granted = 0
    while True:
        try:
            quotas.take(key, limit=limit, window=MINUTE, what=key)
        except RateLimited as refused:
            assert refused.retry_after >= 1
            return granted
        granted += 1
        assert granted <= limit, "granted past the limit"


def test_far_from_the_limit_uses_are_reserved_in_batches_and_unused_ones_given_back():
    for _ in range(120):
        quotas.take("q:far", limit=100_000, window=MINUTE, what="far")
    assert _in_database("q:far") == 3 * quotas.LOCAL_BATCH  # three writes for 120 uses, none lost
    quotas.uses_release()
    assert _in_database("q:far") == 120


def test_a_small_limit_is_counted_in_the_database_at_every_use():
    for n in range(1, 6):
        quotas.take("q:small", limit=quotas.LOCAL_HEADROOM, window=MINUTE, what="small")
        assert _in_database("q:small") == n
    assert _take_until_refused("q:small", quotas.LOCAL_HEADROOM) == quotas.LOCAL_HEADROOM - 5


def test_near_the_limit_every_use_is_counted_and_the_limit_is_exact():
    limit = quotas.LOCAL_HEADROOM + 60
    assert _take_until_refused("q:near", limit) == limit
    assert _in_database("q:near") == limit


def test_two_processes_together_never_pass_the_limit():
    limit = quotas.LOCAL_HEADROOM + 3 * quotas.LOCAL_BATCH
    quotas.take("q:shared", limit=limit, window=MINUTE, what="shared")  # the first process reserves a batch
    first = dict(quotas._slots)
    quotas._slots.clear()  # the second process: no reservation of its own
    second = _take_until_refused("q:shared", limit)
    quotas._slots.clear()
    quotas._slots.update(first)  # the first one grants what it reserved, then is refused too
    first_granted = 1 + _take_until_refused("q:shared", limit)
    assert first_granted + second == limit
    assert _in_database("q:shared") == limit
