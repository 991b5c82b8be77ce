"""The weekly participation summary: made by the tick with each admin's first digest of the week, in
their own time zone, once a week; judged by the text of the email the relay sends.

The week counted is Monday 16 to Sunday 22 November 2026, computed by hand below. The clock is
fixed: the tick runs at chosen instants and the relay delivers to the memory transport.
"""

from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy

from sqlalchemy import select

from app.checkins import teams
from app.checkins.schedules import add_pause, schedule_member
from app.checkins.summary import key
from app.db import session
from app.models import Entry, Member, OutboundMessage, Team
from app.relay import suppressions
from app.settings import get_settings
from jobs.broker import drain
from jobs.scheduler import tick

AUCKLAND = "Pacific/Auckland"  # UTC+13 in November (daylight saving)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def d(n: int) -> date:
    return date(2026, 11, n)


START = utc(2026, 11, 22, 12, 0)  # Sunday noon: every member scheduled from here
KAI_MONDAY = utc(2026, 11, 22, 19, 0)  # 08:00 on Monday 23 in Auckland: Kai's first digest of the week
ADA_MONDAY = utc(2026, 11, 23, 8, 0)  # 08:00 on Monday 23 in UTC: Ada's (the team's zone)
WEEK = [d(n) for n in range(16, 21)]  # the weekdays asked

# Every member's reminder of each weekday 16-20 reached them at 17:00 UTC.
# Ada (admin, UTC) answers every day 30 minutes after it; she also writes on Saturday 21 (not asked).
# Bob answers 1 hour after it, but misses Wednesday 18.
# Cy answers nothing that week (he answered Friday 13, the week before: not counted).
# Kai (admin, in Auckland) answers every day 2 hours after it.
# Olga observes: never asked, never listed, and gets no summary.
# Team: 20 days asked, 14 answered (70%); reply time (5 x 30 min + 4 x 1 h + 5 x 2 h) / 14 = 70.7 min.
EXPECTED_LINES = [
    "The team answered 14 of 20 days asked (70%); average reply time 1 h 10 min.",
    "  Ada: asked 5, answered 5 (100%), streak 5, reply 30 min",
    "  Bob: asked 5, answered 4 (80%), streak 2, reply 1 h 0 min",
    "  Cy: asked 5, answered 0 (0%), streak 0, reply -",
    "  Kai: asked 5, answered 5 (100%), streak 5, reply 2 h 0 min",
    "No answer at all from: Cy",
]


def _reminder(s, m: Member, day: date) -> None:
    at = datetime.combine(day, time(17), tzinfo=UTC)
    s.add(
        OutboundMessage(
            idempotency_key=f"reminder:{m.id}:{day.isoformat()}",
            kind="reminder",
            team_id=m.team_id,
            member_id=m.id,
            to_addr=m.email,
            message_id=f"<r{m.id}.{day.isoformat()}@t>",
            state="sent",
            sent_at=at,
            created_at=at,
        )
    )


def _entry(s, m: Member, day: date, after: timedelta) -> None:
    at = datetime.combine(day, time(17), tzinfo=UTC) + after
    s.add(Entry(team_id=m.team_id, member_id=m.id, day=day, text="did a thing", created_at=at))


def week(*, summary: bool = True) -> dict[str, int]:
    """The team above, scheduled from START, with the summary on (through update_team) or left as
    a new team has it; {name: member id, 'team': team id}."""
    with session() as s:
        t = Team(name="Tally", timezone="UTC", created_at=utc(2026, 11, 1))
        s.add(t)
        s.flush()
        people = {}
        for name, role, tz in (
            ("Ada", "admin", None),
            ("Bob", "member", None),
            ("Cy", "member", None),
            ("Kai", "admin", AUCKLAND),
            ("Olga", "observer", None),
        ):
            m = Member(team_id=t.id, email=f"{name.lower()}@tally.example", name=name, role=role, timezone=tz)
            s.add(m)
            s.flush()
            schedule_member(s, m, t, START)
            people[name] = m
        ada, bob, cy, kai = (people[n] for n in ("Ada", "Bob", "Cy", "Kai"))
        for day in WEEK:
            for m in (ada, bob, cy, kai):
                _reminder(s, m, day)
            _entry(s, ada, day, timedelta(minutes=30))
            if day != d(18):
                _entry(s, bob, day, timedelta(hours=1))
            _entry(s, kai, day, timedelta(hours=2))
        _entry(s, ada, d(21), timedelta(hours=-5))  # Saturday: not asked, not counted
        _reminder(s, cy, d(13))
        _entry(s, cy, d(13), timedelta(minutes=10))  # the week before
        if summary:
            teams.update_team(s, t.id, now=START, participation_summary=True)
        return {"team": t.id, **{n: m.id for n, m in people.items()}}


def summaries(at: datetime) -> dict[str, list[tuple[str, str]]]:
    """Tick at ``at``, deliver, and return {recipient: [(subject, text body)]} of the participation
    summaries that went out."""
    from app.relay.transports import _MEMORY

    _MEMORY.sent.clear()
    tick(now=at, settings=get_settings())
    drain()
    out: dict[str, list[tuple[str, str]]] = {}
    for m in _MEMORY.sent:
        msg = message_from_bytes(m.as_bytes(), policy=policy.default)
        if msg["X-Donebox-Kind"] == "participation":
            body = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
            out.setdefault(msg["To"], []).append((msg["Subject"], body))
    return out


def test_each_admin_gets_one_summary_of_the_week_at_their_own_monday_digest(db, sent):
    w = week()
    assert summaries(KAI_MONDAY - timedelta(minutes=1)) == {}
    # 19:00 UTC on Sunday is Monday 08:00 in Auckland: Kai's week ended on his Sunday 22
    kai = summaries(KAI_MONDAY)
    assert list(kai) == ["kai@tally.example"]
    (subject, text), *more = kai["kai@tally.example"]
    assert not more and subject == "Tally: participation, 16 Nov to 22 Nov"
    assert text.startswith("Tally: participation from Monday 16 November to Sunday 22 November 2026\n")
    for line in EXPECTED_LINES:
        assert line + "\n" in text, line
    assert "Olga" not in text
    assert f"http://donebox.test/teams/{w['team']}/participation?from=2026-11-16&to=2026-11-22" in text

    assert summaries(ADA_MONDAY - timedelta(minutes=1)) == {}
    ada = summaries(ADA_MONDAY)  # everyone's digest goes now; only the other admin's summary
    assert list(ada) == ["ada@tally.example"] and len(ada["ada@tally.example"]) == 1
    assert ada["ada@tally.example"][0] == (subject, text)  # the same week, the same figures

    assert summaries(ADA_MONDAY + timedelta(minutes=15)) == {}  # another tick
    assert summaries(KAI_MONDAY + timedelta(days=1)) == {}  # Kai's Tuesday digest
    assert summaries(ADA_MONDAY + timedelta(days=1)) == {}  # Ada's
    with session() as s:
        made = s.execute(
            select(OutboundMessage.idempotency_key)
            .where(OutboundMessage.kind == "participation")
            .order_by(OutboundMessage.id)
        ).scalars()
        assert list(made) == [key(w["Kai"], d(23)), key(w["Ada"], d(23))]
        assert key(w["Ada"], d(23)) == f"participation:{w['Ada']}:2026-W48"
        for m in s.execute(select(Member).where(Member.team_id == w["team"])).scalars():
            schedule_member(s, m, s.get(Team, w["team"]), START + timedelta(days=7))
            s.add(m)
    following = summaries(ADA_MONDAY + timedelta(days=7))  # the next Monday: the next week
    assert [subj for subj, _ in following["ada@tally.example"]] == ["Tally: participation, 23 Nov to 29 Nov"]


def test_a_team_that_never_turned_it_on_sends_no_summary(db, sent):
    week(summary=False)
    assert summaries(KAI_MONDAY) == {}
    assert summaries(ADA_MONDAY) == {}
    with session() as s:
        kinds = set(s.execute(select(OutboundMessage.kind).where(OutboundMessage.state == "sent")).scalars())
    assert "digest" in kinds and "participation" not in kinds  # the digests went, as always


def test_a_paused_admin_gets_none_until_back_and_an_unsubscribed_one_none_at_all(db, sent):
    w = week()
    with session() as s:
        add_pause(s, w["Ada"], d(23), d(23), now=START)
        suppressions.add(s, "kai@tally.example", "unsubscribe", now=START)
    assert summaries(KAI_MONDAY) == {}
    assert summaries(ADA_MONDAY) == {}
    with session() as s:
        kai = s.execute(
            select(OutboundMessage.state).where(OutboundMessage.kind == "participation")
        ).scalar_one()
    assert kai == "suppressed"  # the relay's list: an unsubscribe holds for every check-in mail
    # back on Tuesday: her first digest of the week brings it, the 7 days before that day
    back = summaries(ADA_MONDAY + timedelta(days=1))
    assert [subj for subj, _ in back["ada@tally.example"]] == ["Tally: participation, 17 Nov to 23 Nov"]
    assert summaries(KAI_MONDAY + timedelta(days=1)) == {}


def test_a_team_with_its_digest_off_still_summarizes_and_turning_it_off_stops_it(db, sent):
    w = week()
    with session() as s:
        teams.update_team(s, w["team"], now=START, digest_enabled=False)
    assert list(summaries(KAI_MONDAY)) == ["kai@tally.example"]
    with session() as s:
        teams.update_team(s, w["team"], now=START, participation_summary=False)
    assert summaries(ADA_MONDAY) == {}
