import threading
from datetime import timedelta

import pytest

from app.db import session
from app.models import OutboundMessage
from app.relay import outbox
from tests.conftest import FIXED_NOW, query_plan, statements_seen

NOW = FIXED_NOW


def make(s, key="k1", **kw):
    fields = dict(
        idempotency_key=key,
        kind="api",
        to_addr="x@example.com",
        subject="Hi",
        template="t",
        message_id=outbox.new_message_id("mail.test"),
    )
    fields.update(kw)
    return outbox.create(s, now=NOW, **fields)


def state(mid):
    with session() as s:
        return s.get(OutboundMessage, mid).state


def test_creating_the_same_key_twice_makes_one_message(db):
    with session() as s:
        first, created = make(s)
        again, created_again = make(s)
    assert created and not created_again and first == again
    with session() as s:
        assert len(outbox.events(s, first)) == 1


def test_every_transition_appends_an_event_with_where_it_came_from(db):
    with session() as s:
        mid, _ = make(s)
        assert outbox.claim(s, mid, now=NOW, lease_s=60).state == "sending"
        assert outbox.transition(s, mid, "sent", expected="sending", now=NOW, detail="250 ok")
    with session() as s:
        timeline = [(e.from_state, e.kind) for e in outbox.events(s, mid)]
    assert timeline == [("", "queued"), ("queued", "sending"), ("sending", "sent")]


def test_a_transition_outside_the_table_is_refused(db):
    with session() as s:
        mid, _ = make(s)
        with pytest.raises(outbox.TransitionError):
            outbox.transition(s, mid, "delivered", expected="queued", now=NOW)


def test_a_late_event_cannot_move_a_message_backwards(db):
    with session() as s:
        mid, _ = make(s)
        outbox.claim(s, mid, now=NOW, lease_s=60)
        outbox.transition(s, mid, "sent", expected="sending", now=NOW)
        outbox.transition(s, mid, "delivered", expected="sent", now=NOW)
        # a retried "sent" notification arrives after "delivered": not in the expected state, no change
        assert not outbox.transition(s, mid, "delivered", expected="sent", now=NOW)
    assert state(mid) == "delivered"


def test_only_one_of_many_concurrent_claims_wins(db):
    with session() as s:
        mid, _ = make(s)
    wins = []
    barrier = threading.Barrier(6)

    def claim():
        barrier.wait()
        with session() as s:
            wins.append(outbox.claim(s, mid, now=NOW, lease_s=60) is not None)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]


def test_the_sweeper_recovers_a_message_whose_worker_died(db):
    with session() as s:
        mid, _ = make(s, lease_until=NOW + timedelta(seconds=60))
        outbox.claim(s, mid, now=NOW, lease_s=60)
    later = NOW + timedelta(seconds=61)
    with session() as s:
        ids = outbox.sweep(s, now=later, lease_s=60)
    assert ids == [mid] and state(mid) == "queued"
    with session() as s:
        kinds = [e.kind for e in outbox.events(s, mid)]
    assert kinds == ["queued", "sending", "deferred", "queued"]


def test_the_sweeper_enqueues_again_a_queued_message_nobody_claimed(db):
    with session() as s:
        mid, _ = make(s, lease_until=NOW + timedelta(seconds=60))
        assert outbox.sweep(s, now=NOW, lease_s=60) == []
        assert outbox.sweep(s, now=NOW + timedelta(seconds=61), lease_s=60) == [mid]
        assert outbox.sweep(s, now=NOW + timedelta(seconds=62), lease_s=60) == []  # lease bumped


def test_the_sweeper_cancels_what_expired_before_it_was_sent(db):
    with session() as s:
        mid, _ = make(s, expires_at=NOW + timedelta(hours=1))
        outbox.sweep(s, now=NOW + timedelta(hours=2), lease_s=60)
    assert state(mid) == "cancelled"


def test_a_scheduled_message_is_queued_when_due(db):
    with session() as s:
        mid, _ = make(s, state="scheduled", send_at=NOW + timedelta(minutes=5))
        assert outbox.sweep(s, now=NOW, lease_s=60) == []
        assert outbox.sweep(s, now=NOW + timedelta(minutes=5), lease_s=60) == [mid]
    assert state(mid) == "queued"


def test_a_batch_claim_takes_only_the_queued_messages_and_logs_each(db):
    with session() as s:
        ids = [make(s, key=f"b{i}")[0] for i in range(4)]
        outbox.transition(s, ids[1], "cancelled", expected="queued", now=NOW)
    with session() as s:
        claimed = outbox.claim_many(s, [ids[3], ids[0], ids[1], ids[2], ids[0]], now=NOW, lease_s=60)
        assert [(m.id, m.state, m.attempts) for m in claimed] == [
            (ids[0], "sending", 1),
            (ids[2], "sending", 1),
            (ids[3], "sending", 1),
        ]
        assert all(m.lease_until == NOW + timedelta(seconds=60) for m in claimed)
        assert outbox.claim_many(s, ids, now=NOW, lease_s=60) == []  # nothing queued any more
        assert [e.kind for e in outbox.events(s, ids[0])] == ["queued", "sending"]


def test_overlapping_batch_claims_split_the_messages_between_them(db):
    with session() as s:
        ids = [make(s, key=f"o{i}")[0] for i in range(60)]
    won: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claim(part):
        barrier.wait()
        with session() as s:
            won.append([m.id for m in outbox.claim_many(s, part, now=NOW, lease_s=60)])

    # each id in two overlapping batches, in opposite orders
    parts = [ids[:40], list(reversed(ids[20:])), ids[10:50], list(reversed(ids))]
    threads = [threading.Thread(target=claim, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = sorted(i for w in won for i in w)
    assert taken == ids  # every message claimed, none twice
    with session() as s:
        assert all(len(outbox.events(s, i)) == 2 for i in ids)


def test_finishing_an_attempt_records_its_outcome_once_and_only_from_sending(db):
    with session() as s:
        mid, _ = make(s)
        with pytest.raises(outbox.TransitionError):
            outbox.finish(s, mid, "delivered", now=NOW)
        assert not outbox.finish(s, mid, "sent", now=NOW)  # still queued: not this worker's
        outbox.claim(s, mid, now=NOW, lease_s=60)
    with session() as s:
        assert outbox.finish(s, mid, "sent", now=NOW, sender="relay", provider_id="p1", sent_at=NOW)
        assert not outbox.finish(s, mid, "deferred", now=NOW, error="late")
    with session() as s:
        m = s.get(OutboundMessage, mid)
        assert (m.state, m.sender, m.provider_id, m.sent_at, m.lease_until) == (
            "sent",
            "relay",
            "p1",
            NOW,
            None,
        )
        assert m.next_attempt_at is None and m.error == ""
        assert [(e.from_state, e.kind) for e in outbox.events(s, mid)][-1] == ("sending", "sent")


def test_a_claimed_row_holds_every_column_of_the_message(db):
    with session() as s:
        mid, _ = make(
            s,
            key="full",
            batch_id="nl-7",
            expires_at=NOW + timedelta(hours=3),
            context='{"text": "hi"}',
            team_id=None,
        )
    with session() as s:
        (row,) = outbox.claim_many(s, [mid], now=NOW, lease_s=60)
    with session() as s:
        stored = s.get(OutboundMessage, mid)
        expected = {c.name: getattr(stored, c.name) for c in OutboundMessage.__table__.c}
    assert row._asdict() == expected
    assert (row.batch_id, row.expires_at, row.state) == ("nl-7", NOW + timedelta(hours=3), "sending")


def test_a_claim_and_an_outcome_find_their_rows_by_key_whatever_the_statistics_say(db):
    """Statistics read while no message was queued (the planner then expects next to none) must not
    make the claim or the outcome walk every queued or sending row through ix_outbound_due: each
    finds its rows through the primary key."""
    from sqlalchemy import update

    with session() as s:
        rows = [
            dict(
                idempotency_key=f"old{i}",
                kind="api",
                to_addr=f"x{i}@example.com",
                subject="Hi",
                template="t",
                context="{}",
                message_id=outbox.new_message_id("mail.test"),
            )
            for i in range(2000)
        ]
        old = outbox.create_many(s, rows, now=NOW, lease_until=NOW + timedelta(minutes=5))
        s.execute(update(OutboundMessage).where(OutboundMessage.id.in_(old)).values(state="sent"))
    if db.dialect.name == "postgresql":
        with db.begin() as conn:
            conn.exec_driver_sql("ANALYZE outboundmessage")
    with session() as s:  # a burst made after the statistics were read
        ids = [make(s, key=f"new{i}")[0] for i in range(300)]
    with statements_seen(db) as seen:
        with session() as s:
            claimed = outbox.claim_many(s, ids[:20], now=NOW, lease_s=60)
        with session() as s:
            assert outbox.finish(s, claimed[0].id, "sent", now=NOW, sent_at=NOW)
    writes = [q for q in seen if q[0].lstrip().upper().startswith(("UPDATE", "WITH"))]
    if db.dialect.name == "postgresql":  # the outcome goes to psycopg as it is, unseen by SQLAlchemy
        params = outbox.pg_finish_params(claimed[1].id, "sent", now=NOW, error="", raw_zlib=None)
        writes.append((outbox._PG_FINISH_SQL, params))
    assert len(writes) == 2, [w[0][:60] for w in writes]
    for statement, parameters in writes:
        plan = query_plan(db, statement, parameters)
        assert "ix_outbound_due" not in plan, plan
        assert ("outboundmessage_pkey" if db.dialect.name == "postgresql" else "PRIMARY KEY") in plan, plan


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_kept_copy_stays_in_its_row_not_in_a_toast_table(db):
    """Migration 0035: a packed copy of a few kilobytes (here 6 KB of hex digits and random bytes,
    which Zstandard shrinks little) is written into outboundcontent's own row, not moved out to its
    TOAST table, and reads back whole."""
    import os

    from sqlalchemy import text

    raw = os.urandom(4000).hex().encode()[:4000] + os.urandom(2000)  # hex digits and random bytes
    with session() as s:
        mid, _ = make(s)
        outbox.claim(s, mid, now=NOW, lease_s=60)
    with session() as s:
        assert outbox.finish(s, mid, "sent", now=NOW, raw=raw)
    with session() as s:
        assert outbox.content(s, mid) == raw
        toast = "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'outboundcontent'"
        stored = "SELECT octet_length(raw_zlib) FROM outboundcontent WHERE message_id = :m"
        assert s.execute(text(stored), {"m": mid}).scalar() > 2100  # past the default's 2 KB
        assert s.execute(text(toast)).scalar() == 0
