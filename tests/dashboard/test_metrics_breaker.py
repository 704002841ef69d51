"""The circuit breaker of each remote is in the metrics (issue 15): one sample per remote and state."""

from __future__ import annotations

import pytest
from django.utils import timezone

from dashboard.metrics import DatabaseCollector
from remotes.models import RemoteRepo

pytestmark = pytest.mark.django_db


def test_each_remotes_breaker_state_is_a_gauge(node_repo):
    now = timezone.now()
    RemoteRepo.objects.create(url="github.com/org/up", added_at=now)
    RemoteRepo.objects.create(url="github.com/org/down", added_at=now, breaker_state="open", breaker_failures=5)
    [family] = [f for f in DatabaseCollector().collect() if f.name == "sudocode_remote_circuit_state"]
    samples = {(s.labels["remote"], s.labels["state"]): s.value for s in family.samples}
    assert samples[("github.com/org/down", "open")] == 1 and samples[("github.com/org/down", "closed")] == 0
    assert samples[("github.com/org/up", "closed")] == 1 and samples[("github.com/org/up", "open")] == 0
