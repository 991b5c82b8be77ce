"""Nudges: a second reminder to who has not replied, hours before the digest, made by the tick.

The clock is fixed: the tick runs at chosen instants (every quarter of an hour over two days) and each
reminder it makes is taken as accepted by the transport right after (the outbox row moves to
``sent``, as a worker would), so what the nudges see is what a real day would give them.
"""

from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from app.checkins import teams
from app.checkins.schedules import add_pause, due_times, schedule_member
from app.checkins.times import nudge_instant
from app.db import session
from app.models import Entry, InboundMessage, Member, OutboundMessage, Team
from app.settings import get_settings
from jobs.broker import drain
from jobs.scheduler import tick
from tests.app.checkins.test_loop import reply_to
from tests.app.web.conftest import AUTH
from tests.conftest import FIXED_NOW, make_due

NY, TOKYO = "America/New_York", "Asia/Tokyo"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "tz", "hours", "expected"),
    [
        # the night of 8 March is 23 hours long in New York: 12 hours before Sunday's 08:00 EDT
        # digest is 19:00 EST on Saturday, not 20:00
        (date(2026, 3, 7), NY, 12, utc(2026, 3, 8, 0, 0)),
        # the night of 1 November is 25 hours long: 12 hours before 08:00 EST is 21:00 EDT, the
        # cut-off itself, so no nudge that day; 13 hours before is 20:00
        (date(2026, 10, 31), NY, 12, None),
        (date(2026, 10, 31), NY, 13, utc(2026, 11, 1, 0, 0)),
        (date(2026, 11, 23), TOKYO, 12, utc(2026, 11, 23, 11, 0)),  # 20:00 JST, no DST
        (date(2026, 11, 23), TOKYO, 10, None),  # 22:00: after the cut-off
        (date(2026, 11, 23), TOKYO, 16, None),  # 16:00: before the reminder itself
        (date(2026, 11, 23), TOKYO, 0, None),  # off
    ],
)
def test_the_nudge_falls_hours_before_the_digest_on_the_day_and_before_the_cutoff(day, tz, hours, expected):
    from app.checkins.times import local_instant, parse_hhmm, zone

    reminder = local_instant(day, parse_hhmm("17:00"), zone(tz))
    got = nudge_instant(
        day, tz, reminder=reminder, hours=hours, cutoff="21:00", digest_time="08:00", digest_days="1234567"
    )
    assert got == expected


def nudging_team(tz: str, hours: int = 12, cutoff: str = "21:00") -> Team:
    """A team in ``tz`` asked and sent its digest every day (17:00, digest 08:00) with nudges on,
    set through update_team; members Quiet and Wrote in the team's zone, Tokio in Tokyo's."""
    with session() as s:
        t = Team(
            name="Nudged",
            timezone=tz,
            workdays="1234567",
            digest_workdays="1234567",
            created_at=FIXED_NOW - timedelta(days=400),
        )
        s.add(t)
        s.flush()
        for name, zone_ in (("Quiet", None), ("Wrote", None), ("Tokio", TOKYO)):
            m = Member(team_id=t.id, email=f"{name.lower()}@example.com", name=name, timezone=zone_)
            s.add(m)
        s.flush()
        teams.update_team(s, t.id, now=FIXED_NOW, nudge_hours=hours, nudge_cutoff=cutoff)
        return t


@pytest.fixture
def held(monkeypatch):
    """The tick's rows are not handed to the in-process workers (another test may have left them
    running): ``run_day`` plays the transport, and a worker on the real clock would cancel these
    reminders of past days as expired."""
    import jobs.scheduler

    monkeypatch.setattr(jobs.scheduler, "enqueue_deliveries", lambda ids: None)


def nudges_of(s, *where) -> list:
    """The next nudge of each member (matching ``where``), None where none is due."""
    return [
        due_times(s, m)["nudge"]
        for m in s.execute(select(Member.id).where(*where).order_by(Member.id)).scalars()
    ]


def start(at: datetime) -> None:
    """Every member's schedule as of ``at`` (the team was made long before)."""
    with session() as s:
        for m, t in s.execute(select(Member, Team).join(Team, Team.id == Member.team_id)).all():
            schedule_member(s, m, t, at)
            s.add(m)


def run_day(first: datetime, last: datetime, *, each=None) -> dict[int, datetime]:
    """Tick every quarter of an hour from ``first`` to ``last``; each reminder made is then ``sent`` (the
    transport accepted it). Returns {outbox id: the tick that made it}. ``each(now)`` runs before
    every tick."""
    made: dict[int, datetime] = {}
    now = first
    while now <= last:
        if each:
            each(now)
        for i in tick(now=now, settings=get_settings())["created"]:
            made[i] = now
        with session() as s:
            s.execute(
                update(OutboundMessage)
                .where(OutboundMessage.kind == "reminder", OutboundMessage.state == "queued")
                .values(state="sent")
            )
        now += timedelta(minutes=15)
    return made


def nudges(made: dict[int, datetime]) -> list[tuple[str, datetime, str]]:
    with session() as s:
        rows = s.execute(
            select(OutboundMessage.id, OutboundMessage.to_addr, OutboundMessage.idempotency_key).where(
                OutboundMessage.kind == "nudge"
            )
        ).all()
    return sorted((to, made[i], key.rsplit(":", 1)[1]) for i, to, key in rows if i in made)


def wrote_on(day: date) -> None:
    with session() as s:
        m = s.execute(select(Member).where(Member.email == "wrote@example.com")).scalar_one()
        s.add(Entry(team_id=m.team_id, member_id=m.id, day=day, text="Shipped it", created_at=FIXED_NOW))


@pytest.mark.parametrize(
    ("day", "hours", "expected_ny"),
    [
        (date(2026, 3, 7), 12, [("quiet@example.com", utc(2026, 3, 8, 0, 0), "2026-03-07")]),  # 19:00 EST
        (date(2026, 10, 31), 12, []),  # 21:00 EDT: the cut-off
        (date(2026, 10, 31), 13, [("quiet@example.com", utc(2026, 11, 1, 0, 0), "2026-10-31")]),  # 20:00 EDT
    ],
)
def test_the_tick_nudges_who_has_not_replied_once_across_dst_and_zones(
    db, sent, held, day, hours, expected_ny
):
    nudging_team(NY, hours)
    first = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(hours=12)
    start(first)
    wrote_on(day)
    made = run_day(first, first + timedelta(hours=48))
    tokyo_day = day.isoformat()
    # Tokyo has no DST: 12 hours before 08:00 JST is 20:00 JST (11:00 UTC), 13 hours 19:00 JST
    tokyo = [("tokio@example.com", utc(day.year, day.month, day.day, 11 - (hours - 12), 0), tokyo_day)]
    got = [n for n in nudges(made) if n[2] == tokyo_day]
    assert got == sorted(expected_ny + tokyo)
    # every day has its own nudge, at most one each: no key twice, none for who wrote that day
    wrote = _ids("wrote@example.com")[0]
    with session() as s:
        keys = list(
            s.execute(
                select(OutboundMessage.idempotency_key).where(OutboundMessage.kind == "nudge")
            ).scalars()
        )
    assert len(keys) == len(set(keys)) and f"nudge:{wrote}:{tokyo_day}" not in keys
    assert f"nudge:{wrote}:{day - timedelta(days=1)}" in keys  # the day before, Wrote had not written


def _ids(email: str) -> list[int]:
    with session() as s:
        return list(s.execute(select(Member.id).where(Member.email == email)).scalars())


def test_no_nudge_in_a_pause_taken_after_the_reminder_nor_past_the_cutoff_when_the_tick_is_late(
    db, sent, held
):
    t = nudging_team(TOKYO, 12)
    day = date(2026, 11, 23)  # reminder 08:00 UTC, nudge 11:00 UTC (20:00 JST)
    start(utc(2026, 11, 23, 0, 0))
    run_day(utc(2026, 11, 23, 8, 0), utc(2026, 11, 23, 8, 0))
    with session() as s:
        members = {m.email: m for m in s.execute(select(Member).where(Member.team_id == t.id)).scalars()}
        assert {e: due_times(s, m.id)["nudge"] for e, m in members.items()} == dict.fromkeys(
            members, utc(2026, 11, 23, 11)
        )
        add_pause(s, members["quiet@example.com"].id, day, day + timedelta(days=2), now=utc(2026, 11, 23, 9))
    # the next tick comes late: 21:00 JST, the cut-off (within REMINDER_LATE_S of the nudge's
    # time); nothing goes, and the day's nudges are done
    made = run_day(utc(2026, 11, 23, 12, 0), utc(2026, 11, 23, 12, 0))
    assert nudges(made) == []
    with session() as s:
        assert nudges_of(s, Member.team_id == t.id) == [None] * 3
        # on time, the paused member alone is left out
        make_due(s, "nudge", utc(2026, 11, 23, 11))
    made = run_day(utc(2026, 11, 23, 11, 0), utc(2026, 11, 23, 11, 0))
    assert [n[0] for n in nudges(made)] == ["tokio@example.com", "wrote@example.com"]
    # set again behind the scheduler's back: still one nudge a day each
    with session() as s:
        make_due(s, "nudge", utc(2026, 11, 23, 11))
    again = run_day(utc(2026, 11, 23, 11, 5), utc(2026, 11, 23, 11, 5))
    assert again == {}


def test_a_team_without_nudges_and_a_reminder_that_never_arrived_get_none(db, sent, held):
    t = nudging_team(TOKYO, 12)
    start(utc(2026, 11, 23, 0, 0))
    run_day(utc(2026, 11, 23, 8, 0), utc(2026, 11, 23, 8, 0))
    with session() as s:
        # Quiet's reminder bounced; the team then turns nudges off and on again: Tokio's was set
        s.execute(
            update(OutboundMessage)
            .where(OutboundMessage.to_addr == "quiet@example.com")
            .values(state="bounced")
        )
    made = run_day(utc(2026, 11, 23, 11, 0), utc(2026, 11, 23, 11, 0))
    assert [n[0] for n in nudges(made)] == ["tokio@example.com", "wrote@example.com"]
    # the next day's reminders set the nudges, then the team turns them off: none goes
    made = run_day(utc(2026, 11, 24, 8, 0), utc(2026, 11, 24, 8, 0))
    with session() as s:
        assert set(nudges_of(s)) == {utc(2026, 11, 24, 11)}
        teams.update_team(s, t.id, now=FIXED_NOW, nudge_hours=0)
    made = run_day(utc(2026, 11, 24, 11, 0), utc(2026, 11, 24, 11, 0))
    assert nudges(made) == [] and made == {}


def test_a_reply_to_the_nudge_counts_for_the_day_through_the_inbound_path(db, sent):
    from app.web.factory import create_app

    with session() as s:
        t = Team(name="Loop team", timezone="UTC", workdays="1234567", created_at=FIXED_NOW)
        s.add(t)
        s.flush()
        for name in ("Ada", "Bob"):
            s.add(Member(team_id=t.id, email=f"{name.lower()}@example.com", name=name))
        s.flush()
        teams.update_team(s, t.id, now=FIXED_NOW, nudge_hours=12)
    start(FIXED_NOW)
    settings = get_settings()
    with TestClient(create_app()) as client:
        tick(now=utc(2026, 11, 23, 17, 0, 5), settings=settings)
        drain()
        reminders = {m["To"]: message_from_bytes(m.as_bytes(), policy=policy.default) for m in sent}
        sent.clear()
        # Bob answers the reminder; Ada does not
        bob = reply_to(reminders["bob@example.com"], "- Fixed the login").replace(b"ada@", b"bob@")
        assert client.post("/inbound/raw", content=bob, headers=AUTH).status_code == 202
        drain()
        tick(now=utc(2026, 11, 23, 20, 0, 5), settings=settings)  # 12 hours before 08:00
        drain()
        assert [m["To"] for m in sent] == ["ada@example.com"]
        nudge = message_from_bytes(sent[0].as_bytes(), policy=policy.default)
        assert nudge["Reply-To"] == reminders["ada@example.com"]["Reply-To"]
        assert nudge["X-Donebox-Kind"] == "nudge" and "Still time" in nudge["Subject"]
        r = client.post("/inbound/raw", content=reply_to(nudge, "- Wrote the report"), headers=AUTH)
        assert r.status_code == 202
        drain()
    with session() as s:
        assert s.execute(select(InboundMessage.state)).scalars().all() == ["processed"] * 2
        rows = s.execute(
            select(Member.name, Entry.day, Entry.text)
            .select_from(Entry)
            .join(Member, Member.id == Entry.member_id)
            .order_by(Member.name)
        ).all()
    assert rows == [
        ("Ada", date(2026, 11, 23), "Wrote the report"),
        ("Bob", date(2026, 11, 23), "Fixed the login"),
    ]
