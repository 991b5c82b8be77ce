"""The soft-bounce policy: SOFT_BOUNCE_LIMIT soft bounces within SOFT_BOUNCE_WINDOW_DAYS suppress an
address for SOFT_BOUNCE_SUPPRESS_DAYS; then mail goes out again. Events through app.relay.feedback,
mail through the pipeline, on both databases."""

from datetime import timedelta

from sqlalchemy import select

from app.checkins.outgoing import create_reminder
from app.db import session
from app.models import Member, Team
from app.relay import feedback, suppressions
from app.relay.pipeline import deliver
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from tests.app.relay.test_feedback import ev, sent
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW
ADA = "ada@example.com"


def soft_bounce(n: int, at) -> feedback.Counts:
    mid = sent(f"m{n}", to=ADA)
    with session() as s:
        return feedback.apply_events(s, [ev("soft_bounce", f"sb{n}", mid, recipient=ADA)], now=at)


def reminder(day_offset: int) -> int:
    with session() as s:
        m = s.execute(select(Member).where(Member.email == ADA)).scalar_one()
        day = NOW.date() + timedelta(days=day_offset)
        mid, _ = create_reminder(s, m, s.get(Team, m.team_id), day, now=NOW, settings=get_settings())
    return mid


def entry():
    with session() as s:
        return suppressions.lookup(s, ADA)


def test_three_soft_bounces_within_the_window_suppress_the_address_until_it_expires(team):
    assert get_settings().soft_bounce_limit == 3 and get_settings().soft_bounce_suppress_days == 7
    assert soft_bounce(1, NOW).suppressed == 0
    assert soft_bounce(2, NOW + timedelta(days=2)).suppressed == 0
    third = NOW + timedelta(days=5)
    assert soft_bounce(3, third).suppressed == 1
    e = entry()
    assert (e.reason, e.expires_at, e.event_kind, e.event_id) == (
        "soft_bounce",
        third + timedelta(days=7),
        "soft_bounce",
        "sb3",
    )
    assert e.message_id is not None and "3 soft bounces within 7 days" in e.detail
    t = MemoryTransport()
    assert deliver(reminder(0), transport=t, now=third + timedelta(hours=1)) == "suppressed"
    assert deliver(reminder(1), transport=t, now=third + timedelta(days=7, seconds=1)) == "sent"
    assert [m["To"] for m in t.sent] == [ADA]


def test_two_soft_bounces_do_not_suppress(team):
    soft_bounce(1, NOW)
    soft_bounce(2, NOW + timedelta(days=1))
    assert entry() is None
    assert deliver(reminder(0), transport=MemoryTransport(), now=NOW + timedelta(days=1, hours=1)) == "sent"


def test_soft_bounces_older_than_the_window_do_not_count(team):
    soft_bounce(1, NOW)
    soft_bounce(2, NOW + timedelta(days=6))
    assert soft_bounce(3, NOW + timedelta(days=8)).suppressed == 0  # the first is 8 days old
    assert entry() is None
    assert soft_bounce(4, NOW + timedelta(days=9)).suppressed == 1


def test_after_an_expiry_it_takes_fresh_soft_bounces_and_a_hard_bounce_replaces_the_entry(team):
    for n in (1, 2, 3):
        soft_bounce(n, NOW + timedelta(hours=n))
    assert entry().reason == "soft_bounce"
    # expired (7 days on), one more soft bounce: the three before the entry no longer count
    assert soft_bounce(4, NOW + timedelta(days=7, hours=4)).suppressed == 0
    mid = sent("hard", to=ADA)
    with session() as s:
        feedback.apply_events(s, [ev("bounce", "hb", mid, recipient=ADA)], now=NOW + timedelta(days=8))
    e = entry()
    assert (e.reason, e.expires_at, e.event_id, e.message_id) == ("bounce", None, "hb", mid)


def test_a_soft_bounce_entry_does_not_replace_an_unsubscribe(team):
    with session() as s:
        suppressions.add(s, ADA, "unsubscribe", now=NOW)
    for n in (1, 2, 3):
        soft_bounce(n, NOW + timedelta(hours=n))
    e = entry()
    assert (e.reason, e.expires_at) == ("unsubscribe", None)
