"""Sending failed, deferred and suppressed messages again (app.relay.redrive), on SQLite and PostgreSQL."""

import json
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import session
from app.errors import PermanentSendError, RequestError
from app.models import MessageEvent, OutboundMessage, Team, utcnow
from app.relay import outbox, redrive, suppressions
from app.relay.pipeline import deliver_many
from app.relay.redrive import Filter
from app.relay.transports.memory import MemoryTransport
from jobs.broker import drain
from jobs.enqueue import enqueue_deliveries


class Broken:
    """A sender refusing every message for good (a wrong password, a closed account)."""

    name = "broken"

    def send(self, message):
        raise PermanentSendError("554 5.7.1 relay access denied", smtp_code=554)


def make(n, *, team_id=None, domain="example.com", prefix="m", now=None) -> list[int]:
    now = now or utcnow()
    rows = [
        {
            "idempotency_key": f"{prefix}:{i}",
            "kind": "api",
            "team_id": team_id,
            "member_id": None,
            "to_addr": f"{prefix}{i}@{domain}",
            "subject": f"Hello {i}",
            "template": "api",
            "context": json.dumps({"text": f"message {i}", "html": ""}),
            "message_id": outbox.new_message_id("mail.test"),
            "expires_at": None,
        }
        for i in range(n)
    ]
    with session() as s:
        return sorted(outbox.create_many(s, rows, now=now, lease_until=now + timedelta(seconds=60)))


def fail(ids):
    for i in range(0, len(ids), 100):
        states = deliver_many(ids[i : i + 100], transport=Broken(), now=utcnow())
        assert set(states.values()) == {"failed"}


def run(flt, **kw) -> redrive.Result:
    with session() as s:
        return redrive.redrive(
            s, flt, actor=kw.pop("actor", "ops@example.com"), now=utcnow(), lease_s=60, **kw
        )


def states(ids) -> Counter:
    with session() as s:
        return Counter(s.execute(select(OutboundMessage.state).where(OutboundMessage.id.in_(ids))).scalars())


def team_ids(*names) -> list[int]:
    with session() as s:
        teams = [Team(name=n) for n in names]
        s.add_all(teams)
        s.flush()
        return [t.id for t in teams]


def test_a_thousand_failed_messages_are_each_sent_once_after_the_sender_is_fixed(db, sent):
    ids = make(1000)
    fail(ids)
    assert states(ids) == {"failed": 1000}
    result = run(Filter(), after_batch=enqueue_deliveries)  # the workers send with MAIL_TRANSPORT=memory
    drain()
    assert sorted(result.redriven) == ids and result.skipped == {}
    assert states(ids) == {"sent": 1000}
    per_message = Counter(m["Message-ID"] for m in sent)
    with session() as s:
        ours = set(s.execute(select(OutboundMessage.message_id).where(OutboundMessage.id.in_(ids))).scalars())
        m = s.get(OutboundMessage, ids[0])
        timeline = [(e.kind, e.from_state, e.detail) for e in outbox.events(s, ids[0])]
    assert set(per_message) == ours and set(per_message.values()) == {1}
    assert m.attempts == 1 and m.error == ""
    assert timeline[2][0] == "failed" and timeline[3:] == [
        ("queued", "failed", "sent again by ops@example.com"),
        ("sending", "queued", ""),
        ("sent", "sending", ""),
    ]


def test_a_redrive_goes_in_bounded_batches_each_committed_then_handed_on(db, monkeypatch):
    monkeypatch.setattr(redrive, "BATCH", 7)
    ids = make(30)
    fail(ids)
    handed = []
    result = run(Filter(), after_batch=handed.append)
    assert [len(b) for b in handed] == [7, 7, 7, 7, 2] and sorted(sum(handed, [])) == ids
    assert sorted(result.redriven) == ids and states(ids) == {"queued": 30}


def test_the_filter_selects_by_team_state_domain_sender_and_time(db):
    rocket, other = team_ids("Rocket", "Other")
    t0 = utcnow() - timedelta(days=3)
    old = make(3, team_id=rocket, prefix="old", now=t0)
    mine = make(4, team_id=rocket, prefix="mine")
    theirs = make(2, team_id=other, prefix="theirs")
    elsewhere = make(2, team_id=rocket, prefix="far", domain="Elsewhere.test")
    fail(old + mine + theirs + elsewhere)
    deferred = make(2, team_id=rocket, prefix="late")
    with session() as s:
        for mid in deferred:
            outbox.claim(s, mid, now=utcnow(), lease_s=60)
            outbox.finish(s, mid, "deferred", now=utcnow(), error="421 busy", next_attempt_at=utcnow())
    everything = old + mine + theirs + elsewhere + deferred

    def picked(**criteria):
        return sorted(run(Filter(**criteria), dry_run=True).redriven)

    assert picked(team_id=other) == theirs
    assert picked(scope=(other,)) == theirs and picked(scope=(other,), team_id=rocket) == []
    assert picked(states=("deferred",)) == deferred
    assert picked(states=("failed",), team_id=rocket) == sorted(old + mine + elsewhere)
    assert picked(domain="elsewhere.TEST") == elsewhere and picked(domain="@elsewhere.test") == elsewhere
    assert picked(domain="test") == []  # a domain, not a suffix of one
    assert picked(until=t0 + timedelta(hours=1)) == old
    assert picked(since=t0 + timedelta(hours=1), team_id=rocket, states=("failed",)) == sorted(
        mine + elsewhere
    )
    # the failure happened now for every one of them: updated_at bounds the last change
    assert picked(since=t0 + timedelta(hours=1), time_field="updated") == sorted(everything)
    assert picked(sender="broken") == [] and picked(ids=(mine[0], theirs[0])) == sorted([mine[0], theirs[0]])
    assert states(everything) == {"failed": 11, "deferred": 2}  # dry runs change nothing


def test_bad_criteria_are_refused_with_the_reason():
    with pytest.raises(RequestError, match="state must be one of failed, deferred, suppressed"):
        Filter(states=("sent",))
    with pytest.raises(RequestError, match="time must be"):
        Filter(time_field="sent")
    with pytest.raises(RequestError, match="UTC offset"):
        Filter(since=utcnow().replace(tzinfo=None))


def test_a_sent_message_is_not_sent_again(db):
    [mid] = make(1)
    assert deliver_many([mid], transport=MemoryTransport(), now=utcnow()) == {mid: "sent"}
    result = run(Filter(ids=(mid,)))
    assert result.redriven == [] and "it is sent" in result.skipped[mid]
    assert run(Filter(ids=(mid + 1000,))).not_found == [mid + 1000]
    assert states([mid]) == {"sent": 1}


def test_a_recipient_still_suppressed_is_skipped_and_one_lifted_is_sent_again(db):
    lifted, kept, failed_kept = make(3)
    with session() as s:
        for mid in (lifted, kept):
            suppressions.add(s, s.get(OutboundMessage, mid).to_addr, "manual", now=utcnow())
    # the pipeline suppresses the first two; the third fails, and its address is suppressed since
    assert deliver_many([lifted, kept], transport=MemoryTransport(), now=utcnow()) == {
        lifted: "suppressed",
        kept: "suppressed",
    }
    fail([failed_kept])
    with session() as s:
        suppressions.add(s, s.get(OutboundMessage, failed_kept).to_addr, "complaint", now=utcnow())
        suppressions.remove(s, s.get(OutboundMessage, lifted).to_addr)
    result = run(Filter())
    assert result.redriven == [lifted]
    assert result.skipped == {
        kept: "m1@example.com is still suppressed (manual)",
        failed_kept: "m2@example.com is still suppressed (complaint)",
    }
    assert states([lifted]) == {"queued": 1} and states([kept]) == {"suppressed": 1}


def test_an_expired_message_is_not_sent_again(db):
    [mid] = make(1)
    fail([mid])
    with session() as s:
        s.get(OutboundMessage, mid).expires_at = utcnow() - timedelta(minutes=1)
    assert "it expired at" in run(Filter(ids=(mid,))).skipped[mid]


def test_two_concurrent_redrives_move_and_send_each_message_once(db, sent):
    ids = make(300)
    fail(ids)
    results, errors = [], []

    def one(name):
        try:
            results.append(run(Filter(), actor=name, after_batch=enqueue_deliveries))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(f"ops{i}@example.com",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    drain()
    moved = [r.redriven for r in results]
    assert sorted(moved[0] + moved[1]) == ids  # between them every message, none twice
    assert set(results[0].skipped) | set(results[1].skipped) <= set(ids)
    assert Counter(Counter(m["Message-ID"] for m in sent).values()) == {1: 300}
    with session() as s:
        requeued = s.execute(
            select(func.count()).where(
                MessageEvent.message_id.in_(ids),
                MessageEvent.kind == "queued",
                MessageEvent.from_state == "failed",
            )
        ).scalar()
    assert requeued == 300
