"""Fixed-window quotas counted in this process and written in batches far from the limit (remotes.quotas.take),
and in the database at once near it, so the limit holds with other processes counting too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from remotes import quotas
from remotes.models import QuotaUsage
from remotes.policy import RateLimited

pytestmark = pytest.mark.django_db(transaction=True)

MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _fresh_counts():
    quotas._slots.clear()
    yield
    quotas._slots.clear()


def _in_database(key: str) -> int:
    return sum(QuotaUsage.objects.filter(key=key).values_list("amount", flat=True))


def test_far_from_the_limit_uses_are_written_in_batches_and_none_is_lost():
    for _ in range(120):
        quotas.take("q:far", limit=100_000, window=MINUTE, what="far")
    written = _in_database("q:far")
    assert written < 120  # some are still counted only here
    assert written >= 120 - quotas.LOCAL_BATCH
    quotas.uses_flush()
    assert _in_database("q:far") == 120


def test_a_small_limit_is_counted_in_the_database_at_every_use():
    for n in range(1, 6):
        quotas.take("q:small", limit=quotas.LOCAL_HEADROOM, window=MINUTE, what="small")
        assert _in_database("q:small") == n
    for _ in range(quotas.LOCAL_HEADROOM - 5):
        quotas.take("q:small", limit=quotas.LOCAL_HEADROOM, window=MINUTE, what="small")
    with pytest.raises(RateLimited) as refused:
        quotas.take("q:small", limit=quotas.LOCAL_HEADROOM, window=MINUTE, what="small")
    assert refused.value.retry_after >= 1


def test_uses_counted_by_another_process_stop_this_one_at_the_limit(monkeypatch):
    limit = quotas.LOCAL_HEADROOM + 100
    quotas.take("q:shared", limit=limit, window=MINUTE, what="shared")  # read: 1 used
    # Another web process used all but one since; this one has not read the count again yet.
    QuotaUsage.objects.filter(key="q:shared").update(amount=limit - 1)
    quotas.take("q:shared", limit=limit, window=MINUTE, what="shared")  # counted here: the last one left
    monkeypatch.setattr(quotas, "FLUSH_SECONDS", 0.0)  # the count is read again at the next use
    with pytest.raises(RateLimited):
        quotas.take("q:shared", limit=limit, window=MINUTE, what="shared")
    assert _in_database("q:shared") == limit


def test_near_the_limit_every_use_is_checked_in_the_database():
    limit = quotas.LOCAL_HEADROOM + 10
    for _ in range(limit):
        quotas.take("q:near", limit=limit, window=MINUTE, what="near")
    with pytest.raises(RateLimited):
        quotas.take("q:near", limit=limit, window=MINUTE, what="near")
    quotas.uses_flush()
    assert _in_database("q:near") == limit
