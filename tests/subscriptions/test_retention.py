"""Retention (subscriptions/retention.py, audit.services.audit_prune, events.services.events_prune): what goes,
what a lagging subscription keeps, the audit archive. The clock is time-machine's or an explicit `now`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from audit.models import AuditLog
from audit.services import audit_record
from events.models import Event, EventCounter
from subscriptions.models import Direction, ReceivedEvent, Subscription, SubscriptionStatus
from subscriptions.retention import retention_prune

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def outbox(*ages_in_days: float) -> None:
    """Events seq 1, 2, ... created that many days before NOW."""
    for seq, age in enumerate(ages_in_days, 1):
        Event.objects.create(
            seq=seq,
            event_id=uuid.uuid4(),
            type="issue_updated",
            entity_kind="issue",
            entity_uuid=f"uuid-{seq}",
            entity_id=f"issue-{seq}",
            created_at=days_ago(age),
        )
    EventCounter.objects.update_or_create(pk=1, defaults={"last_seq": len(ages_in_days)})


def subscription(name: str, *, cursor: int, status: str = SubscriptionStatus.ACTIVE, **fields) -> Subscription:
    return Subscription.objects.create(
        subscription_id=name,
        direction=fields.pop("direction", Direction.INCOMING),
        from_repo=f"github.com/org/{name}",
        to_repo="github.com/org/here",
        watch_config={"entity_type": "issue"},
        status=status,
        secret="s" * 32,
        cursor_seq=cursor,
        created_at=days_ago(60),
        updated_at=days_ago(60),
        **fields,
    )


def audit_rows(*ages_in_days: float) -> list[str]:
    """Audit rows written by the real service at those ages (time-machine moves the clock); their log ids."""
    ids = []
    for n, age in enumerate(ages_in_days):
        with time_machine.travel(days_ago(age), tick=False):
            row = audit_record(
                operation="query",
                direction="incoming",
                local_repo="github.com/org/here",
                remote_repo="github.com/org/there",
                status="success",
                payload={"entity": "issue", "n": n},
                result={"total": n},
                correlation_id=f"corr-{n}",
                duration_ms=3.4,
            )
        ids.append(row.log_id)
    return ids


def seqs() -> list[int]:
    return list(Event.objects.order_by("seq").values_list("seq", flat=True))


def test_a_lagging_subscription_keeps_the_events_it_has_not_been_sent(node_repo):
    outbox(40, 40, 40, 40, 40, 40, 40, 40, 1, 0)  # seq 1-8 old, 9 and 10 recent
    subscription("ahead", cursor=10)
    subscription("lagging", cursor=4, delivery_status="dead")  # dead deliveries still count: it may be redelivered
    subscription("paused", cursor=6, status=SubscriptionStatus.PAUSED)
    subscription("cancelled", cursor=0, status=SubscriptionStatus.CANCELLED)
    subscription("watching", cursor=0, direction=Direction.OUTGOING)  # our own subscriptions read no outbox

    result = retention_prune(now=NOW)

    assert result["events"]["count"] == 4 and result["events"]["up_to_seq"] == 4
    assert seqs() == [5, 6, 7, 8, 9, 10]
    Subscription.objects.filter(pk="lagging").update(cursor_seq=10)
    assert retention_prune(now=NOW)["events"]["count"] == 2  # 5 and 6: the paused one has passed 6
    Subscription.objects.filter(pk="paused").update(status=SubscriptionStatus.CANCELLED)
    retention_prune(now=NOW)
    assert seqs() == [9, 10]  # passed by all, but younger than 30 days


def test_without_subscriptions_age_alone_decides_and_the_newest_event_stays(node_repo):
    outbox(50, 50, 50)
    assert retention_prune(now=NOW)["events"]["count"] == 2
    assert seqs() == [3]  # the outbox head: new subscriptions start after it, it never goes back


def test_the_audit_archive_holds_exactly_the_pruned_rows(node_repo):
    old = audit_rows(200, 120, 91)
    kept = audit_rows(89, 1)

    result = retention_prune(now=NOW)

    audit = result["audit"]
    assert audit["count"] == 3
    assert sorted(AuditLog.objects.values_list("log_id", flat=True)) == sorted(kept)
    archive_dir = node_repo / ".sudocode" / "audit-archive"
    [archive] = list(archive_dir.iterdir())  # no temp file left beside it
    assert audit["archive"] == str(archive) and archive.name.endswith(".jsonl")
    lines = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [line["log_id"] for line in lines] == old  # oldest first
    first = lines[0]
    assert first["timestamp"] == days_ago(200).isoformat() and audit["oldest"] == days_ago(200).isoformat()
    assert first["payload"] == {"entity": "issue", "n": 0} and first["result"] == {"total": 0}
    assert (first["correlation_id"], first["duration_ms"], first["status"]) == ("corr-0", 3, "success")
    assert "audit-archive/" in (node_repo / ".sudocode" / ".gitignore").read_text().splitlines()

    again = retention_prune(now=NOW)
    assert again["audit"]["count"] == 0 and again["audit"]["archive"] is None
    assert len(list(archive_dir.iterdir())) == 1  # nothing pruned, no empty archive


def test_a_failed_archive_deletes_nothing_and_leaves_no_file(node_repo, monkeypatch):
    from audit import services

    audit_rows(100, 100, 100)
    real = services._archive_lines

    def breaks_after_one(rows, pruned):
        lines = real(rows, pruned)
        yield next(lines)
        raise OSError("disk full")

    monkeypatch.setattr(services, "_archive_lines", breaks_after_one)
    with pytest.raises(OSError, match="disk full"):
        retention_prune(now=NOW)
    assert AuditLog.objects.count() == 3
    archive_dir = node_repo / ".sudocode" / "audit-archive"
    assert not archive_dir.exists() or not list(archive_dir.iterdir())


def test_dry_run_deletes_nothing_and_counts_what_the_real_run_then_removes(node_repo):
    outbox(40, 40, 40)
    subscription("lagging", cursor=1)
    audit_rows(100, 5)
    with time_machine.travel(days_ago(31), tick=False):
        ReceivedEvent.objects.create(
            event_id=uuid.uuid4(),
            subscription=subscription("watching", cursor=0, direction=Direction.OUTGOING),
            from_repo="github.com/org/there",
            seq=1,
            event={},
            received_at=days_ago(31),
        )

    dry = retention_prune(now=NOW, dry_run=True)

    assert (dry["events"]["count"], dry["received_events"]["count"], dry["audit"]["count"]) == (1, 1, 1)
    assert dry["dry_run"] and dry["audit"]["archive"] is None
    assert (Event.objects.count(), ReceivedEvent.objects.count(), AuditLog.objects.count()) == (3, 1, 2)
    assert not (node_repo / ".sudocode" / "audit-archive").exists()

    done = retention_prune(now=NOW)
    assert (done["events"]["count"], done["received_events"]["count"], done["audit"]["count"]) == (1, 1, 1)
    assert (Event.objects.count(), ReceivedEvent.objects.count(), AuditLog.objects.count()) == (2, 0, 1)


def test_the_periods_come_from_the_config(node_repo):
    from federation_site import node
    from federation_site.config import default_config, write_config

    config = default_config(url="github.com/org/here", display_name="here")
    config["retention"] = {"audit_days": 10, "events_days": 2, "received_events_days": 1}
    write_config(node_repo / ".sudocode" / "federation.config.json", config)
    node.config()  # read now
    outbox(3, 1, 0)
    audit_rows(11, 9)
    result = retention_prune(now=NOW)
    assert (result["events"]["count"], result["audit"]["count"]) == (1, 1)
    assert result["audit"]["before"] == days_ago(10).isoformat()
    assert result["received_events"]["before"] == days_ago(1).isoformat()
