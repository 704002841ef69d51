"""The circuit breaker per remote (remotes/breaker.py): the state machine with a clock the tests hold, then
the breaker in the calls and deliveries of one node (a remote on a closed port: refused at once)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditLog
from federation_site.config import ConfigError, default_config, parse_config, write_config
from remotes import services
from remotes.breaker import (
    BreakerSettings,
    CircuitOpen,
    breaker_admit,
    breaker_record,
    breaker_resting,
    counts_as_failure,
)
from remotes.client import RemoteBadResponse, RemoteRejected, RemoteUnreachable
from remotes.models import RemoteRepo
from remotes.selectors import breaker_states, remote_summary
from remotes.sync import remote_query

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = BreakerSettings(failures=3, cool_down=timedelta(seconds=60))
CLOSED_PORT = "http://127.0.0.1:9/api/v1"  # nothing listens on the discard port: connection refused


@pytest.fixture
def remote(node_repo) -> RemoteRepo:
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    config["http"] = {"retries": 0, "connect_timeout_seconds": 1, "circuit_breaker": {"failures": 2,
                      "cool_down_seconds": 30}}  # fmt: skip
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    remote, _ = services.remote_add(
        url="github.com/org/api", actor="t", trust_level="verified", endpoint=CLOSED_PORT, discover=False
    )
    return remote


def fail(remote: RemoteRepo, now, times: int = 1) -> None:
    for _ in range(times):
        breaker_admit(remote, now=now, settings=SETTINGS)
        breaker_record(remote, ok=False, now=now, settings=SETTINGS)


# --- the state machine ----------------------------------------------------------------------------------------


def test_it_opens_after_n_failures_in_a_row_and_calls_fail_fast(remote):
    now = timezone.now()
    fail(remote, now, times=2)
    assert (remote.breaker_state, remote.breaker_failures) == ("closed", 2)
    assert breaker_admit(remote, now=now, settings=SETTINGS) is False  # still going
    breaker_record(remote, ok=False, now=now, settings=SETTINGS)
    assert remote.breaker_state == "open"
    with pytest.raises(CircuitOpen) as caught:
        breaker_admit(remote, now=now + timedelta(seconds=59), settings=SETTINGS)
    assert isinstance(caught.value, RemoteUnreachable)  # transient to every caller's retry logic
    assert caught.value.retry_at == now + timedelta(seconds=60)
    when = timezone.localtime(now + timedelta(seconds=60)).strftime("%H:%M:%S")
    assert str(caught.value) == (
        f"github.com/org/api is paused after 3 failures in a row; next try at {when} (circuit breaker)"
    )


def test_a_success_resets_the_count(remote):
    now = timezone.now()
    fail(remote, now, times=2)
    breaker_record(remote, ok=True, now=now, settings=SETTINGS)
    fail(remote, now, times=2)
    assert (remote.breaker_state, remote.breaker_failures) == ("closed", 2)


def test_after_the_cool_down_one_probe_goes_and_its_success_closes_it(remote):
    now = timezone.now()
    fail(remote, now, times=3)
    later = now + timedelta(seconds=61)
    assert breaker_admit(remote, now=later, settings=SETTINGS) is True  # the probe
    assert RemoteRepo.objects.get(pk=remote.pk).breaker_state == "half_open"
    other = RemoteRepo.objects.get(pk=remote.pk)  # another process, same moment
    with pytest.raises(CircuitOpen, match="a probe call is under way") as caught:
        breaker_admit(other, now=later, settings=SETTINGS)
    assert caught.value.retry_at == later + timedelta(seconds=5)
    breaker_record(remote, ok=True, now=later, settings=SETTINGS)
    row = RemoteRepo.objects.get(pk=remote.pk)
    assert (row.breaker_state, row.breaker_failures, row.breaker_next_try_at) == ("closed", 0, None)
    assert breaker_admit(other, now=later, settings=SETTINGS) is False


def test_a_failed_probe_opens_it_for_another_cool_down(remote):
    now = timezone.now()
    fail(remote, now, times=3)
    later = now + timedelta(seconds=61)
    assert breaker_admit(remote, now=later, settings=SETTINGS) is True
    breaker_record(remote, ok=False, now=later, settings=SETTINGS)
    row = RemoteRepo.objects.get(pk=remote.pk)
    assert (row.breaker_state, row.breaker_failures) == ("open", 4)
    assert row.breaker_next_try_at == later + timedelta(seconds=60)
    with pytest.raises(CircuitOpen):
        breaker_admit(row, now=later + timedelta(seconds=30), settings=SETTINGS)


def test_a_probe_that_never_reports_back_is_replaced_after_a_cool_down(remote):
    now = timezone.now()
    fail(remote, now, times=3)
    assert breaker_admit(remote, now=now + timedelta(seconds=61), settings=SETTINGS) is True  # then its process dies
    with pytest.raises(CircuitOpen):
        breaker_admit(remote, now=now + timedelta(seconds=100), settings=SETTINGS)
    assert breaker_admit(remote, now=now + timedelta(seconds=122), settings=SETTINGS) is True


def test_only_no_answer_counts_as_a_failure():
    url = "http://b"
    assert counts_as_failure(RemoteUnreachable("refused", url=url))
    assert counts_as_failure(RemoteUnreachable("HTTP 503", url=url, status=503))
    assert counts_as_failure(RemoteUnreachable("HTTP 408", url=url, status=408))
    assert not counts_as_failure(RemoteUnreachable("HTTP 429", url=url, status=429))
    assert not counts_as_failure(RemoteRejected("HTTP 403", url=url, status=403))
    assert not counts_as_failure(RemoteBadResponse("not JSON", url=url, status=200))
    assert not counts_as_failure(CircuitOpen(url, failures=5, retry_at=timezone.now()))


def test_lazy_refreshes_rest_after_one_failure_for_the_cool_down(remote):
    now = timezone.now()
    assert not breaker_resting(remote, now=now, settings=SETTINGS)
    fail(remote, now)
    remote.last_attempt_at = now
    assert breaker_resting(remote, now=now + timedelta(seconds=59), settings=SETTINGS)
    assert not breaker_resting(remote, now=now + timedelta(seconds=61), settings=SETTINGS)


def test_the_config_takes_n_and_the_cool_down():
    config = default_config(url="github.com/org/frontend", display_name="Frontend")
    assert parse_config_json(config).http.circuit_breaker.failures == 5
    config["http"]["circuit_breaker"] = {"failures": 0}
    with pytest.raises(ConfigError):
        parse_config_json(config)


def parse_config_json(config: dict):
    import json

    return parse_config(json.dumps(config))


# --- in the calls and deliveries of a node ------------------------------------------------------------------------


def test_calls_to_a_dead_remote_are_paused_after_n_failures_without_an_audit_row(remote):
    for _ in range(2):  # http.circuit_breaker.failures is 2 here
        with pytest.raises(RemoteUnreachable) as caught:
            remote_query(remote=remote, query={"entity": "issue"})
        assert not isinstance(caught.value, CircuitOpen)
    audited = AuditLog.objects.count()
    with pytest.raises(CircuitOpen, match="paused after 2 failures in a row"):
        remote_query(remote=remote, query={"entity": "issue"})
    assert AuditLog.objects.count() == audited  # nothing went out
    # The cool-down is over (moved back, not waited for): the next call is the probe, which fails again.
    RemoteRepo.objects.filter(pk=remote.pk).update(breaker_next_try_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(RemoteUnreachable) as caught:
        remote_query(remote=remote, query={"entity": "issue"})
    assert not isinstance(caught.value, CircuitOpen) and AuditLog.objects.count() == audited + 1
    row = RemoteRepo.objects.get(pk=remote.pk)
    assert (row.breaker_state, row.breaker_failures) == ("open", 3)
    assert timedelta(seconds=25) < row.breaker_next_try_at - timezone.now() <= timedelta(seconds=30)


def test_a_callback_to_a_paused_remote_waits_for_the_probe_without_counting_an_attempt(remote):
    from requests_app.delivery import deliver
    from requests_app.models import CrossRepoRequest, Delivery

    now = timezone.now()
    request = CrossRepoRequest.objects.create(
        request_id="req-1", direction="incoming", from_repo=remote.url, to_repo="github.com/org/frontend",
        request_type="mutate", payload={}, status="completed", created_at=now, updated_at=now,
    )  # fmt: skip
    row = Delivery.objects.create(
        request=request, kind="callback", event="request_completed", target=remote.url,
        body={"status": "completed"}, next_attempt_at=now, created_at=now,
    )  # fmt: skip
    assert deliver(row.pk) == "retry"
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert deliver(row.pk) == "retry"  # the second failure in a row opens the breaker
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert deliver(row.pk) == "paused"
    row.refresh_from_db()
    probe_at = RemoteRepo.objects.get(pk=remote.pk).breaker_next_try_at
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 2, probe_at)
    assert "(circuit breaker)" in row.last_error


def test_a_request_send_to_a_paused_remote_is_polled_again_at_the_probe_time(remote):
    from requests_app.models import CrossRepoRequest
    from requests_app.services import _retry_later

    retry_at = timezone.now() + timedelta(seconds=42)
    request = CrossRepoRequest(request_id="req-later", created_at=timezone.now())
    error, when = _retry_later(request, CircuitOpen(remote.url, failures=5, retry_at=retry_at))
    assert when == retry_at and "(circuit breaker)" in error


def test_the_state_shows_in_the_summary_the_selector_and_the_remotes_page(remote, admin_user):
    fail(remote, timezone.now(), times=3)
    summary = remote_summary(RemoteRepo.objects.get(pk=remote.pk))["circuit_breaker"]
    assert (summary["state"], summary["failures"]) == ("open", 3) and summary["next_try_at"]
    assert breaker_states() == [{"url": remote.url, **summary}]
    client = Client()
    client.force_login(admin_user)
    page = client.get("/remotes/").content.decode()
    assert "paused</strong> after 3 failures in a row" in page and "(circuit breaker open)" in page


def test_a_remote_without_an_endpoint_is_not_counted_as_down(remote):
    RemoteRepo.objects.filter(pk=remote.pk).update(rest_endpoint="")
    bare = RemoteRepo.objects.get(pk=remote.pk)
    for _ in range(3):
        with pytest.raises(RemoteUnreachable, match="has no REST endpoint"):
            remote_query(remote=bare, query={"entity": "issue"})
    assert (bare.breaker_state, bare.breaker_failures) == ("closed", 0)
