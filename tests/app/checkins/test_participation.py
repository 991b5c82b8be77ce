"""Participation: streak arithmetic by itself, and every figure of a hand-computed three weeks."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import delete

from app.checkins.participation import (
    ANSWERED,
    MISSED,
    OFF,
    PENDING,
    SpanError,
    by_week,
    day_state,
    report,
    span,
    streaks,
    team_state,
)
from app.db import get_engine, session
from app.models import Entry, Member, MemberPause, OutboundMessage, Team
from tests.conftest import statements_seen

A, M, X, P = ANSWERED, MISSED, OFF, PENDING  # X: off

# --- the pure arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "states, current, best",
    [
        ([], 0, 0),
        ([A, A, A], 3, 3),
        ([A, A, M, A], 1, 2),
        ([A, A, X, X, A], 3, 3),  # a weekend (not asked) does not break a streak
        ([A, X, X, X, A, A, M], 0, 3),  # nor does a pause; a missed day does
        ([M, M, M], 0, 0),
        ([A, A, A, M, A, X, A, P], 2, 3),  # today still open counts for nothing either way
        ([X, X, X], 0, 0),
        ([A, M, A, A, A, A, M, A, A], 2, 4),
    ],
)
def test_streaks_count_answered_days_and_only_a_missed_day_breaks_one(states, current, best):
    assert streaks(states) == (current, best)


def test_a_day_is_answered_only_when_asked_and_written_and_a_pause_or_an_open_day_never_misses():
    assert day_state(asked=True, wrote=True, paused=False, open_=False) == A
    assert day_state(asked=True, wrote=True, paused=True, open_=True) == A  # wrote on a paused day
    assert day_state(asked=True, wrote=False, paused=False, open_=False) == M
    assert day_state(asked=True, wrote=False, paused=True, open_=False) == X  # paused after the reminder
    assert day_state(asked=True, wrote=False, paused=False, open_=True) == P  # today, not yet
    assert day_state(asked=False, wrote=True, paused=False, open_=False) == X  # a weekend entry
    assert day_state(asked=False, wrote=False, paused=False, open_=False) == X


def test_the_team_misses_a_day_when_anyone_asked_missed_it():
    assert team_state([A, A, X]) == A
    assert team_state([A, M]) == M
    assert team_state([X, P]) == X
    assert team_state([]) == X


def test_a_span_defaults_to_the_last_30_days_and_refuses_a_reversed_or_too_long_one():
    today = date(2026, 11, 23)
    assert span(None, None, today) == (date(2026, 10, 25), today)
    assert span(None, date(2026, 1, 31), today) == (date(2026, 1, 2), date(2026, 1, 31))
    assert span(date(2025, 11, 23), today, today) == (date(2025, 11, 23), today)  # 366 days
    with pytest.raises(SpanError, match="367 days; at most 366") as e:
        span(date(2025, 11, 22), today, today)
    assert e.value.field == "to"
    with pytest.raises(SpanError, match="after") as e:
        span(date(2026, 11, 24), today, today)
    assert e.value.field == "from"


def test_weeks_sum_their_days_and_start_on_monday():
    from app.checkins.participation import DayTotal

    days = [DayTotal(date(2026, 11, 5) + timedelta(days=i), 2, 1) for i in range(6)]  # Thu..Tue
    assert by_week(days) == [DayTotal(date(2026, 11, 5), 8, 4), DayTotal(date(2026, 11, 9), 4, 2)]


# --- three weeks, computed by hand -----------------------------------------------------------------

FIRST, LAST = date(2026, 11, 2), date(2026, 11, 22)  # Monday 2 to Sunday 22 November
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the Monday after: every day of the span is over
REMINDER = time(17, 0)  # the team is on UTC


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=UTC)


def d(n: int) -> date:
    return date(2026, 11, n)


WEEKDAYS = [d(n) for n in range(2, 23) if d(n).isoweekday() <= 5]

# Ada answers every weekday but Thursday 5, 30 minutes after the reminder, except Tuesday 17 (2.5 h);
# she also writes on Saturday 7 (not asked: not counted).
# Bob is paused Wednesday 11 to Friday 13 (no reminders) and writes on Thursday 12 anyway; he wrote
# Monday 2's entry at 9:00, before the reminder; on Wednesday 4 he posts at 17:30 and 19:00; he
# misses Tuesday 17; Friday 20's reply comes at 2:00 the next night. Otherwise 1 h after.
# Cy misses Thursday 5, Friday 6, Wednesday 18 and Thursday 19; Monday 16's reminder bounced (not
# asked); his replies come 10 minutes after the reminder.
ADA_MISSED = {d(5)}
BOB_PAUSE = (d(11), d(13))
BOB_MISSED = {d(17)}
CY_MISSED = {d(5), d(6), d(18), d(19)}
CY_BOUNCED = d(16)


def _reminder(s, member, day, state="sent"):
    s.add(
        OutboundMessage(
            idempotency_key=f"reminder:{member.id}:{day.isoformat()}",
            kind="reminder",
            team_id=member.team_id,
            member_id=member.id,
            to_addr=member.email,
            message_id=f"<r{member.id}.{day.isoformat()}@t>",
            state=state,
            sent_at=at(day, 17) if state == "sent" else None,
            created_at=at(day, 17),
        )
    )


def _entry(s, member, day, written, text="did a thing"):
    s.add(Entry(team_id=member.team_id, member_id=member.id, day=day, text=text, created_at=written))


def three_weeks() -> dict:
    """The team above, committed; {name: member id, 'team': team id}."""
    with session() as s:
        t = Team(name="Tally", timezone="UTC", reminder_time="17:00", created_at=at(d(1), 8))
        s.add(t)
        s.flush()
        people = {}
        for name, role in (("Ada", "admin"), ("Bob", "member"), ("Cy", "member"), ("Olga", "observer")):
            m = Member(team_id=t.id, email=f"{name.lower()}@tally.example", name=name, role=role)
            s.add(m)
            s.flush()
            people[name] = m
        ada, bob, cy = people["Ada"], people["Bob"], people["Cy"]
        s.add(MemberPause(member_id=bob.id, first_day=BOB_PAUSE[0], last_day=BOB_PAUSE[1]))
        for day in WEEKDAYS:
            _reminder(s, ada, day)
            if day not in ADA_MISSED:
                _entry(s, ada, day, at(day, 19, 30) if day == d(17) else at(day, 17, 30))
            if not BOB_PAUSE[0] <= day <= BOB_PAUSE[1]:
                _reminder(s, bob, day)
                if day == d(2):
                    _entry(s, bob, day, at(day, 9))
                elif day == d(4):
                    _entry(s, bob, day, at(day, 17, 30))
                    _entry(s, bob, day, at(day, 19), "and another")
                elif day == d(20):
                    _entry(s, bob, day, at(d(21), 2))
                elif day not in BOB_MISSED:
                    _entry(s, bob, day, at(day, 18))
            _reminder(s, cy, day, "bounced" if day == CY_BOUNCED else "sent")
            if day not in CY_MISSED and day != CY_BOUNCED:
                _entry(s, cy, day, at(day, 17, 10))
        _entry(s, ada, d(7), at(d(7), 11), "weekend work")
        _entry(s, bob, d(12), at(d(12), 10), "a paused day's note")
        return {"team": t.id, **{n: m.id for n, m in people.items()}}


def test_every_figure_of_three_weeks_matches_the_hand_count(db):
    w = three_weeks()
    with session() as s:
        t = s.get(Team, w["team"])
        with statements_seen(get_engine()) as statements:
            r = report(s, t, FIRST, LAST, now=NOW)
            assert len(statements) <= 4  # members, reminders, entries, pauses
            statements.clear()
            year = report(s, t, LAST - timedelta(days=365), LAST, now=NOW)  # the longest span
            assert len(statements) <= 4  # the same statements, whatever the span
    assert (year.team.asked, year.team.answered) == (41, 35)

    rows = {row.member.name: row.figures for row in r.members}
    assert list(rows) == ["Ada", "Bob", "Cy"]  # Olga observes: never asked, not listed

    ada, bob, cy = rows["Ada"], rows["Bob"], rows["Cy"]
    # Ada: asked on 15 weekdays, missed Thursday 5; Friday 6 + 5 + 5 days since (the weekends between)
    assert (ada.asked, ada.answered, ada.current_streak, ada.best_streak) == (15, 14, 11, 11)
    assert ada.answer_rate == pytest.approx(14 / 15)
    assert ada.replies == 14 and ada.average_reply_s == pytest.approx((13 * 1800 + 9000) / 14)
    # Bob: 12 days asked (3 paused); 7 answered before the pause, Monday 16 after it (8: the pause
    # broke nothing), missed Tuesday 17, then Wednesday to Friday (3)
    assert (bob.asked, bob.answered, bob.current_streak, bob.best_streak) == (12, 11, 3, 8)
    assert bob.answer_rate == pytest.approx(11 / 12)
    # Monday 2 was written before the reminder (no reply time), Wednesday 4's first post after it
    # counts (30 min), Friday 20 at 2:00 the next night (9 h), the others 1 h
    assert bob.replies == 10 and bob.average_reply_s == pytest.approx((8 * 3600 + 1800 + 9 * 3600) / 10)
    # Cy: 14 asked (Monday 16 bounced), 10 answered: Mon-Wed, a full week 2 and Tuesday 17 (6),
    # missed Wednesday 18 and Thursday 19, answered Friday 20 (1)
    assert (cy.asked, cy.answered, cy.current_streak, cy.best_streak) == (14, 10, 1, 6)
    assert cy.average_reply_s == pytest.approx(600)

    team = r.team
    assert (team.asked, team.answered) == (41, 35)
    assert team.answer_rate == pytest.approx(35 / 41)
    # the team's days: 2-4 answered by all, 5 and 6 missed, 9-16 answered by everyone asked (6),
    # 17-19 missed by someone, 20 answered
    assert (team.current_streak, team.best_streak) == (1, 6)
    assert team.replies == 34
    assert team.average_reply_s == pytest.approx(
        (13 * 1800 + 9000 + 8 * 3600 + 1800 + 9 * 3600 + 10 * 600) / 34
    )

    days = {t.day: (t.asked, t.answered) for t in r.days}
    assert len(days) == 21
    assert days[d(2)] == (3, 3)
    assert days[d(5)] == (3, 1)  # Ada and Cy missed it
    assert days[d(6)] == (3, 2)
    assert days[d(7)] == (0, 0)  # Saturday: Ada's entry is not an answer
    assert days[d(11)] == (2, 2)  # Bob paused
    assert days[d(12)] == (2, 2)  # his note that day is not counted
    assert days[d(16)] == (2, 2)  # Cy's reminder bounced
    assert days[d(17)] == (3, 2)
    assert days[d(19)] == (3, 2)
    assert days[d(20)] == (3, 3)
    assert sum(a for a, _ in days.values()) == team.asked
    assert sum(b for _, b in days.values()) == team.answered


def test_today_counts_once_answered_and_a_span_before_everything_is_empty(db):
    w = three_weeks()
    with session() as s:
        t = s.get(Team, w["team"])
        on_friday = at(d(20), 17, 20)  # Cy has replied (17:10), Ada and Bob not yet
        s.execute(delete(Entry).where(Entry.day == d(20), Entry.member_id.in_([w["Ada"], w["Bob"]])))
        r = report(s, t, d(20), d(20), now=on_friday)
        states = {row.member.name: row.states for row in r.members}
        assert states == {"Ada": (P,), "Bob": (P,), "Cy": (A,)}
        assert (r.team.asked, r.team.answered, r.team.current_streak) == (1, 1, 1)
        empty = report(s, t, d(1) - timedelta(days=40), d(1), now=NOW)
        assert (empty.team.asked, empty.team.answer_rate, empty.team.average_reply_s) == (0, None, None)
        assert [row.figures.asked for row in empty.members] == [0, 0, 0]
