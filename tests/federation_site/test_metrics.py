"""federation_site.metrics in one process (no PROMETHEUS_MULTIPROC_DIR: the in-memory registry): every audit row
counts once, with its duration in the right latency buckets; cache lookups and decisions likewise. The values
are global to the process, so each test compares a scrape after with one before."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit.services import audit_record
from federation_site import metrics

pytestmark = pytest.mark.django_db


def samples() -> dict[tuple[str, frozenset], float]:
    body, content_type = metrics.scrape()
    assert content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_each_audited_call_counts_once_and_its_duration_lands_in_exact_buckets():
    before = samples()
    for duration_ms in (0.5, 1.0, 3.0, 40.0, 2000.0, 20000.0):
        audit_record(
            operation="query-test",
            direction="outgoing",
            local_repo="github.com/org/here",
            remote_repo="github.com/org/not-configured",
            status="success",
            duration_ms=duration_ms,
        )
    audit_record(
        operation="query-test", direction="outgoing", local_repo="x", remote_repo="", status="failed", duration_ms=None
    )
    after = samples()

    calls = "sudocode_cross_repo_calls_total"
    common = {"operation": "query-test", "direction": "outgoing"}
    # A remote that is not configured is "other", none at all "anonymous": callers cannot mint series.
    assert delta(before, after, calls, **common, remote="other", outcome="success") == 6
    assert delta(before, after, calls, **common, remote="anonymous", outcome="failed") == 1

    bucket = "sudocode_cross_repo_call_duration_seconds_bucket"
    expected = {  # le is inclusive: 1 ms lands in the 1 ms bucket; 20 s only in +Inf
        "0.001": 2, "0.0025": 2, "0.005": 3, "0.01": 3, "0.025": 3, "0.05": 4, "0.1": 4, "0.25": 4, "0.5": 4,
        "1.0": 4, "2.5": 5, "5.0": 5, "10.0": 5, "+Inf": 6,
    }  # fmt: skip
    got = {le: delta(before, after, bucket, **common, remote="other", le=le) for le in expected}
    assert got == expected
    assert delta(before, after, "sudocode_cross_repo_call_duration_seconds_count", **common, remote="other") == 6
    total = delta(before, after, "sudocode_cross_repo_call_duration_seconds_sum", **common, remote="other")
    assert total == pytest.approx(22.0445)
    # The call without a duration is counted but not timed.
    assert delta(before, after, "sudocode_cross_repo_call_duration_seconds_count", **common, remote="anonymous") == 0


def test_cache_lookups_and_decisions_are_counted():
    before = samples()
    metrics.reference_cache_observe(hits=3, misses=2)
    metrics.reference_cache_observe(hits=0, misses=0)
    metrics.decision_observe(decision="approved", seconds=42)
    metrics.decision_observe(decision="rejected", seconds=2 * 86400)
    after = samples()

    assert delta(before, after, "sudocode_reference_cache_lookups_total", result="hit") == 3
    assert delta(before, after, "sudocode_reference_cache_lookups_total", result="miss") == 2
    decided = "sudocode_approval_decision_seconds_bucket"
    assert delta(before, after, decided, decision="approved", le="15.0") == 0
    assert delta(before, after, decided, decision="approved", le="60.0") == 1
    assert delta(before, after, decided, decision="rejected", le="86400.0") == 0
    assert delta(before, after, decided, decision="rejected", le="259200.0") == 1


def test_the_cli_records_nothing(settings):
    settings.CLI_PROFILE = True
    before = samples()
    audit_record(operation="cli-test", direction="outgoing", local_repo="x", remote_repo="", status="success")
    after = samples()
    assert delta(before, after, "sudocode_cross_repo_calls_total", operation="cli-test", direction="outgoing",
                 remote="anonymous", outcome="success") == 0  # fmt: skip


def test_multiprocess_prepare_empties_the_folder_and_points_the_environment_at_it(tmp_path, monkeypatch):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_12345.db").write_bytes(b"from an earlier run")
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    metrics.multiprocess_prepare(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert metrics.multiprocess_dir() == folder
