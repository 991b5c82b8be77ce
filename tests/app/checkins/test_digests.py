"""Digests: the team's previous working day grouped by member, blockers marked, the silent named."""

import re
from datetime import date, timedelta

from sqlalchemy import select, update

from app.checkins.due import run
from app.checkins.teams import add_member
from app.db import session
from app.models import Entry, Member, MemberPause, Team
from app.settings import get_settings
from jobs.broker import drain
from tests.conftest import FIXED_NOW, make_due


def tick(*, now, settings) -> dict:
    """The scheduler's producer alone: the full tick's lease sweeper runs on ``now``, a day ahead of the
    in-process workers' real clock, and would take their fresh leases for expired ones."""
    from jobs.enqueue import enqueue_deliveries

    return {"created": run(now=now, settings=settings, enqueue=enqueue_deliveries)}


TUESDAY_8_BERLIN = FIXED_NOW.replace(day=24, hour=7, minute=0, second=1)
MONDAY = date(2026, 11, 23)


MONDAY_REMINDERS = FIXED_NOW.replace(hour=16, minute=0, second=1)  # 17:00 Berlin


def setup_day(team, sent) -> None:
    """Monday: Ada and Bob are reminded, Ada writes three entries (one hostile), Bob nothing, Carl
    is on vacation."""
    tick(now=MONDAY_REMINDERS, settings=get_settings())
    drain()
    sent.clear()
    with session() as s:
        ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
        carl = Member(team_id=team.id, email="carl@example.com", name="Carl", created_at=FIXED_NOW)
        s.add(carl)
        s.flush()
        s.add(MemberPause(member_id=carl.id, first_day=MONDAY, last_day=MONDAY))
        for text, kind in (
            ("Shipped the export <script>alert(1)</script>", "done"),
            ("Finish the invoice run", "goal"),
            ("Waiting on the bank's API keys", "blocker"),
        ):
            s.add(Entry(team_id=team.id, member_id=ada.id, day=MONDAY, text=text, kind=kind))
        # the digest is due for everyone on Tuesday 08:00 Berlin
        make_due(s, "digest", TUESDAY_8_BERLIN - timedelta(seconds=1))


def bodies(msg) -> tuple[str, str]:
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_the_daily_digest_groups_the_previous_workday_and_names_who_did_not_answer(team, sent):
    setup_day(team, sent)
    created = tick(now=TUESDAY_8_BERLIN, settings=get_settings())["created"]
    assert len(created) == 4  # Ada, Bob, Carl, and Olga the observer
    drain()
    by_to = {m["To"]: m for m in sent}
    assert set(by_to) == {"ada@example.com", "bob@example.com", "carl@example.com", "olga@example.com"}
    msg = by_to["olga@example.com"]
    assert msg["Subject"] == "What Rocket got done on Monday, 23 November"
    text, html = bodies(msg)
    assert "BLOCKERS (1)" in text and "! Ada: Waiting on the bank's API keys" in text
    assert "  - [goal] Finish the invoice run" in text and "  - [blocked] Waiting" in text
    assert "No reply from: Bob" in text  # not Olga (observer), not Carl (away)
    assert "Away: Carl" in text
    assert "Ada" in html and "Goal:" in html and "Blocked:" in html


def test_the_digest_html_is_self_contained_escaped_and_inlined(team, sent):
    setup_day(team, sent)
    tick(now=TUESDAY_8_BERLIN, settings=get_settings())
    drain()
    _, html = bodies(sent[0])
    assert "<script>" not in html and "&lt;script&gt;" in html  # what members write is text
    # no external assets at all: a team that never turned tracking on gets no pixel either
    assert "<link" not in html and "src=" not in html and "@import" not in html
    assert 'style="' in html and "#cf222e" in html  # CSS inlined for Gmail and Outlook
    assert 'role="presentation"' in html  # table layout for Outlook
    # fluid up to 600 px (Outlook for Windows, which ignores max-width, gets a 600 px table of its own)
    card = re.search(r'<table class="card"[^>]*>', html).group(0)
    assert 'width="100%"' in card and "max-width: 600px" in card and "<!--[if mso]>" in html
    assert "@media (prefers-color-scheme: dark)" in html  # the dark colours outlive the inliner


def test_the_weekly_digest_goes_out_with_the_daily_one_on_the_teams_weekly_day(team, sent):
    setup_day(team, sent)
    with session() as s:
        s.execute(update(Team).where(Team.id == team.id).values(weekly_digest_day=2))  # Tuesday
    created = tick(now=TUESDAY_8_BERLIN, settings=get_settings())["created"]
    assert len(created) == 8
    drain()
    weekly = [m for m in sent if m["X-Donebox-Kind"] == "weekly"]
    assert len(weekly) == 4
    text, html = bodies(weekly[0])
    assert weekly[0]["Subject"] == "Rocket: the week to Monday, 23 November"
    assert "the week of 17 November to 23 November 2026" in text
    assert "3 entries from 1 member, 1 blocker." in text
    assert "  Mon  [goal] Finish the invoice run" in text
    assert "No reply all week from: Bob" in text
    assert "&lt;script&gt;" in html


def test_a_team_without_a_weekly_day_gets_no_weekly_digest(team, sent):
    setup_day(team, sent)
    tick(now=TUESDAY_8_BERLIN, settings=get_settings())
    drain()
    assert all(m["X-Donebox-Kind"] == "digest" for m in sent)


def test_observers_get_the_digest_but_never_a_reminder(team, sent):
    tick(now=FIXED_NOW.replace(hour=16, minute=0, second=1), settings=get_settings())
    tick(now=TUESDAY_8_BERLIN, settings=get_settings())
    drain()
    olga = sorted(m["X-Donebox-Kind"] for m in sent if m["To"] == "olga@example.com")
    assert olga == ["digest"]


def test_the_digest_names_only_members_whose_reminder_of_the_day_reached_them(team, sent):
    setup_day(team, sent)
    with session() as s:  # Dan joins an hour after Monday's reminders went out
        add_member(
            s,
            s.get(Team, team.id),
            "dan@example.com",
            name="Dan",
            role="member",
            now=MONDAY_REMINDERS + timedelta(hours=1),
        )
    tick(now=TUESDAY_8_BERLIN, settings=get_settings())
    drain()
    text, html = bodies(next(m for m in sent if m["To"] == "olga@example.com"))
    line = next(x for x in text.splitlines() if x.startswith("No reply from"))
    assert line == "No reply from: Bob"  # not Dan: he was not asked on Monday
