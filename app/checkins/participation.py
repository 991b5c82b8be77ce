"""Participation: per member and for the team over a span of days, how many days they were asked,
how many they answered, their streaks and how long they took to reply after the reminder.

A day of a member is in one of four states (``day_state``):

    answered  asked that day (app/checkins/asked.py: the reminder reached them) and wrote an entry
    missed    asked, and wrote nothing for that day
    pending   asked today and nothing written yet: the day is still open, it is not counted yet
    off       not asked (not one of their days, paused, the reminder never reached them), or paused
              and silent; an entry written on such a day is not counted either

Only answered and missed days count: the answer rate is answered / asked, and a streak is a run
of answered days that off and pending days do not break (``streaks``, pure arithmetic). The team's
day is answered when everyone asked answered, missed when someone asked did not. The reply time
is from the reminder's ``sent_at`` to the first entry of that day written at or after it; an
entry written before the reminder answers the day without a reply time. Streaks count within the
span only.

``report`` reads a team's span in a few statements whatever its size: the members, their pauses,
the reminders that reached them (one per KEYS_PER_QUERY member-days) and the team's entries
grouped by member, day and time written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select
from sqlmodel import Session

from app.checkins.asked import reached
from app.checkins.schedules import effective, pauses_of
from app.checkins.times import local_date
from app.models import Entry, Member, Team

ANSWERED, MISSED, PENDING, OFF = "answered", "missed", "pending", "off"
DEFAULT_DAYS = 30  # the span when none is given: the last 30 days, today included
MAX_DAYS = 366  # the longest span one report reads


class SpanError(ValueError):
    """Raised when a span of days cannot be reported on; ``field`` names the parameter at fault."""

    def __init__(self, reason: str, field: str):
        super().__init__(reason)
        self.field = field


def span(
    first: date | None, last: date | None, today: date, *, most: int | None = MAX_DAYS
) -> tuple[date, date]:
    """(first, last) with the defaults filled: ``last`` today, ``first`` DEFAULT_DAYS - 1 days
    before ``last``; SpanError when first is after last or the span passes ``most`` days."""
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise SpanError(f"from ({first}) is after to ({last})", "from")
    days = (last - first).days + 1
    if most is not None and days > most:
        raise SpanError(f"the span from {first} to {last} is {days} days; at most {most}", "to")
    return first, last


def day_state(*, asked: bool, wrote: bool, paused: bool, open_: bool) -> str:
    """The state of one day of a member (see the module docstring)."""
    if asked and wrote:
        return ANSWERED
    if not asked or paused:
        return OFF
    return PENDING if open_ else MISSED


class Streaks(NamedTuple):
    """The run of answered days reaching the last counted day (``current``) and the longest one."""

    current: int
    best: int


def streaks(states: Iterable[str]) -> Streaks:
    """Streaks of a sequence of day states, oldest first: answered days add one, a missed day ends
    the run, off and pending days leave it as it is."""
    run = best = 0
    for state in states:
        if state == ANSWERED:
            run += 1
            best = max(best, run)
        elif state == MISSED:
            run = 0
    return Streaks(run, best)


def team_state(states: Iterable[str]) -> str:
    """The team's state of a day from its members': missed if anyone asked missed it, answered if
    everyone asked answered, off when nobody counts (nobody asked, or only pending)."""
    seen = set(states)
    if MISSED in seen:
        return MISSED
    return ANSWERED if ANSWERED in seen else OFF


@dataclass(frozen=True)
class Figures:
    """What a member (or the team) did over a span."""

    asked: int
    answered: int
    current_streak: int
    best_streak: int
    replies: int  # answered days with a reply time
    reply_s_total: float

    @property
    def answer_rate(self) -> float | None:
        """answered / asked, None when never asked."""
        return self.answered / self.asked if self.asked else None

    @property
    def average_reply_s(self) -> float | None:
        """Mean seconds from the reminder to the reply, None without a reply time."""
        return self.reply_s_total / self.replies if self.replies else None


def figures(states: Sequence[str], reply_s: Sequence[float]) -> Figures:
    """Figures of one sequence of day states (oldest first) and the reply times of its days."""
    run = streaks(states)
    return Figures(
        asked=sum(1 for x in states if x in (ANSWERED, MISSED)),
        answered=sum(1 for x in states if x == ANSWERED),
        current_streak=run.current,
        best_streak=run.best,
        replies=len(reply_s),
        reply_s_total=float(sum(reply_s)),
    )


class MemberRow(NamedTuple):
    """One member's line of a report: the member, their figures and their state of each day."""

    member: Member
    figures: Figures
    states: tuple[str, ...]


class DayTotal(NamedTuple):
    """The team on one day: members asked (counted) and members who answered."""

    day: date
    asked: int
    answered: int

    @property
    def answer_rate(self) -> float | None:
        """answered / asked, None when nobody was asked."""
        return self.answered / self.asked if self.asked else None


@dataclass(frozen=True)
class Report:
    """The participation of a team from ``first`` to ``last``."""

    first: date
    last: date
    members: list[MemberRow]
    team: Figures
    days: list[DayTotal]


def _written(s: Session, team_id: int, first: date, last: date) -> dict[tuple[int, date], list[datetime]]:
    """{(member id, day): the times entries were written, in order}: one grouped statement (the
    entries of one reply or post share their time)."""
    rows = s.execute(
        select(Entry.member_id, Entry.day, Entry.created_at)
        .where(Entry.team_id == team_id, Entry.day >= first, Entry.day <= last)
        .group_by(Entry.member_id, Entry.day, Entry.created_at)
        .order_by(Entry.member_id, Entry.day, Entry.created_at)
    )
    out: dict[tuple[int, date], list[datetime]] = {}
    for mid, day, at in rows:
        out.setdefault((mid, day), []).append(at)
    return out


def _reply_s(sent_at: datetime, written: list[datetime]) -> float | None:
    """Seconds from the reminder to the first entry written at or after it; None if none was."""
    after = [w for w in written if w >= sent_at]
    return (after[0] - sent_at).total_seconds() if after else None


def report(s: Session, team: Team, first: date, last: date, *, now: datetime) -> Report:
    """The participation of ``team``'s members from ``first`` to ``last`` (see the module docstring).

    The members are those who can be asked (not observers) and are active, and anyone who was
    asked in the span; in order of name."""
    members = list(s.execute(select(Member).where(Member.team_id == team.id).order_by(Member.id)).scalars())
    ids = [m.id for m in members]
    sent = reached(s, ids, first, last) if ids else {}
    written = _written(s, team.id, first, last)
    pauses = pauses_of(s, ids, first)
    was_asked = {mid for mid, _ in sent}
    members = [m for m in members if m.id in was_asked or (m.active and m.role != "observer")]
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    rows, all_reply_s = [], []
    by_day: dict[date, list[str]] = {d: [] for d in days}
    for m in members:
        today = local_date(now, effective(m, team).tz)
        own_pauses = pauses.get(m.id, ())
        states, reply_s = [], []
        for d in days:
            at = sent.get((m.id, d))
            wrote = written.get((m.id, d), [])
            state = day_state(
                asked=at is not None,
                wrote=bool(wrote),
                paused=any(p.start <= d <= p.end for p in own_pauses),
                open_=d >= today,
            )
            if state == ANSWERED:
                r = _reply_s(at, wrote)
                if r is not None:
                    reply_s.append(r)
            states.append(state)
            by_day[d].append(state)
        rows.append(MemberRow(m, figures(states, reply_s), tuple(states)))
        all_reply_s += reply_s
    team_days = [team_state(by_day[d]) for d in days]
    run = streaks(team_days)
    total = Figures(
        asked=sum(r.figures.asked for r in rows),
        answered=sum(r.figures.answered for r in rows),
        current_streak=run.current,
        best_streak=run.best,
        replies=len(all_reply_s),
        reply_s_total=float(sum(all_reply_s)),
    )
    totals = [
        DayTotal(d, sum(1 for x in by_day[d] if x in (ANSWERED, MISSED)), by_day[d].count(ANSWERED))
        for d in days
    ]
    rows.sort(key=lambda r: ((r.member.name or r.member.email).lower(), r.member.id))
    return Report(first, last, rows, total, totals)


def percent(rate: float | None) -> str:
    """A rate as a whole percentage ('93%'); '-' for None."""
    return "-" if rate is None else f"{round(rate * 100)}%"


def duration(seconds: float | None) -> str:
    """'2 h 5 min', '12 min', '40 s'; '-' for None."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    h, m = divmod(s // 60, 60)
    return f"{h} h {m} min" if h else f"{m} min"


def by_week(days: Sequence[DayTotal]) -> list[DayTotal]:
    """The day totals summed by ISO week (each dated by its Monday, or the span's first day)."""
    out: dict[date, list[int]] = {}
    for t in days:
        monday = max(t.day - timedelta(days=t.day.weekday()), days[0].day)
        got = out.setdefault(monday, [0, 0])
        got[0] += t.asked
        got[1] += t.answered
    return [DayTotal(d, a, b) for d, (a, b) in out.items()]
