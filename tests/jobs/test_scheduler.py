from datetime import timedelta

from sqlalchemy import func, select

from app.checkins.schedules import due_times
from app.db import session
from app.models import Member, OutboundMessage
from app.settings import get_settings
from jobs.scheduler import tick
from tests.conftest import FIXED_NOW


def count(kind):
    with session() as s:
        return s.execute(select(func.count()).where(OutboundMessage.kind == kind)).scalar()


def test_the_tick_creates_each_due_reminder_once_and_advances_the_schedule(team, sent):
    # Berlin 17:00 on Monday 2026-11-23 is 16:00 UTC
    at = FIXED_NOW.replace(hour=16, minute=0, second=5)
    first = tick(now=at, settings=get_settings())
    assert len(first["created"]) == 2  # the observer is not asked
    assert tick(now=at + timedelta(seconds=5), settings=get_settings())["created"].tolist() == []
    assert count("reminder") == 2
    with session() as s:
        nxt = {m.email: due_times(s, m.id)["reminder"] for m in s.execute(select(Member)).scalars()}
    assert nxt["ada@example.com"] == FIXED_NOW.replace(day=24, hour=16, minute=0)


def test_the_morning_digest_covers_the_previous_workday_for_everyone(team, sent):
    at = FIXED_NOW.replace(day=24, hour=7, minute=0, second=1)  # Tuesday 08:00 Berlin
    result = tick(now=at, settings=get_settings())
    assert count("digest") == 3  # observers get digests
    with session() as s:
        keys = sorted(s.execute(select(OutboundMessage.idempotency_key)).scalars())
    assert keys[0].startswith("digest:") and keys[0].endswith(":2026-11-23")
    assert len(result["created"]) == 3


def test_two_schedulers_ticking_at_once_send_nothing_twice(team, sent):
    import threading

    at = FIXED_NOW.replace(hour=16, minute=0, second=5)
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        tick(now=at, settings=get_settings())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count("reminder") == 2


def test_a_reminder_missed_by_more_than_the_late_window_is_skipped_not_sent_at_night(team, sent):
    # the scheduler was down from Monday 16:00 to Tuesday 01:00 UTC (02:00 in Berlin)
    at = FIXED_NOW.replace(day=24, hour=1, minute=0)
    assert tick(now=at, settings=get_settings())["created"].tolist() == []
    assert count("reminder") == 0
    with session() as s:
        nxt = {m.email: due_times(s, m.id)["reminder"] for m in s.execute(select(Member)).scalars()}
    assert nxt["bob@example.com"] == FIXED_NOW.replace(day=24, hour=16, minute=0)


def test_a_reminder_a_little_late_is_still_sent(team, sent):
    at = FIXED_NOW.replace(hour=18, minute=30)  # 2.5 hours late
    assert len(tick(now=at, settings=get_settings())["created"]) == 2


def test_inbound_mail_stored_but_never_processed_is_processed_by_a_later_tick(team, sent):
    from app.inbound.accept import accept
    from app.models import InboundMessage
    from jobs.broker import drain

    raws = [
        f"From: someone@example.org\r\nMessage-ID: <stuck-{i}@example.org>\r\n\r\nhello\r\n".encode()
        for i in range(3)
    ]
    with session() as s:  # committed, but their broker message was lost
        ids = [
            accept(s, provider="raw", raw=raw, key=f"stuck{i}", now=FIXED_NOW)[0]
            for i, raw in enumerate(raws)
        ]
    lease = timedelta(seconds=get_settings().lease_s)
    tick(now=FIXED_NOW + lease / 2, settings=get_settings())
    drain()
    with session() as s:
        assert set(s.execute(select(InboundMessage.state)).scalars()) == {"received"}  # not yet stuck
    tick(now=FIXED_NOW + lease * 2, settings=get_settings())
    drain()
    with session() as s:
        states = s.execute(select(InboundMessage.state).where(InboundMessage.id.in_(ids))).scalars().all()
    assert states == ["unverified"] * 3
