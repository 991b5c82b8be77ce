"""The team day's "Not heard from" names only members whose reminder of that day reached them."""

import re
from datetime import date, timedelta

from sqlalchemy import select

from app.checkins import entries
from app.checkins.due import run
from app.checkins.schedules import add_pause, update_member_schedule
from app.checkins.teams import add_member
from app.db import session
from app.models import Member, Team
from app.settings import get_settings
from jobs.broker import drain
from jobs.enqueue import enqueue_deliveries
from tests.app.web.conftest import sign_in
from tests.app.web.pages.test_team import today
from tests.conftest import FIXED_NOW

MONDAY = date(2026, 11, 23)  # the team was created at noon UTC; reminders at 17:00 Berlin
MONDAY_REMINDERS = FIXED_NOW.replace(hour=16, minute=0, second=1)
TUESDAY_REMINDERS = MONDAY_REMINDERS + timedelta(days=1)


def remind(now) -> None:
    """The scheduler's reminders due at ``now``, delivered."""
    run(now=now, settings=get_settings(), enqueue=enqueue_deliveries)
    drain()


def member(email) -> Member:
    with session() as s:
        return s.execute(select(Member).where(Member.email == email)).scalar_one()


def ada_writes(day) -> None:
    with session() as s:
        entries.add(s, member("ada@example.com"), day, "shipped the export", "done", now=FIXED_NOW)


def not_heard(client, team, day) -> tuple[list[str], str]:
    """(the names under "Not heard from", the page)."""
    page = client.get(f"/teams/{team.id}", params={"day": day.isoformat()}).text
    found = re.search(r"Not heard from: ([^<]*)</p>", page)
    return (found.group(1).split(", ") if found else []), page


def test_the_members_asked_that_day_who_wrote_nothing_are_not_heard_from(client, team, sent):
    remind(MONDAY_REMINDERS)
    ada_writes(MONDAY)
    sign_in(client, sent, "olga@example.com")
    names, page = not_heard(client, team, MONDAY)
    assert names == ["Bob"]  # Ada wrote; Olga the observer is never asked
    assert 'id="day-status"' not in page


def test_a_day_before_the_team_existed_lists_nobody_and_says_why(client, team, sent):
    remind(MONDAY_REMINDERS)
    sign_in(client, sent, "olga@example.com")
    names, page = not_heard(client, team, MONDAY - timedelta(days=1))
    assert names == [] and "The team did not exist yet on this day." in page


def test_a_day_still_to_come_lists_nobody_and_says_why(client, team, sent):
    remind(MONDAY_REMINDERS)
    sign_in(client, sent, "olga@example.com")
    for day in (today() + timedelta(days=1), date(2099, 1, 5)):
        names, page = not_heard(client, team, day)
        assert names == [] and "This day has not happened yet." in page


def test_a_member_invited_after_the_days_reminder_was_not_asked_that_day(client, team, sent):
    remind(MONDAY_REMINDERS)
    with session() as s:  # an hour after Monday's reminders went out
        add_member(
            s,
            s.get(Team, team.id),
            "carl@example.com",
            name="Carl",
            role="member",
            now=FIXED_NOW.replace(hour=17),
        )
    remind(TUESDAY_REMINDERS)
    sign_in(client, sent, "olga@example.com")
    assert not_heard(client, team, MONDAY)[0] == ["Ada", "Bob"]
    assert not_heard(client, team, MONDAY + timedelta(days=1))[0] == ["Ada", "Bob", "Carl"]


def test_a_paused_member_was_not_asked(client, team, sent):
    with session() as s:
        add_pause(s, member("bob@example.com").id, MONDAY, MONDAY, now=FIXED_NOW)
    remind(MONDAY_REMINDERS)
    sign_in(client, sent, "olga@example.com")
    assert not_heard(client, team, MONDAY)[0] == ["Ada"]


def test_a_member_without_reminders_on_that_weekday_was_not_asked(client, team, sent):
    with session() as s:  # Bob is asked Tuesday to Friday only
        update_member_schedule(s, member("bob@example.com").id, now=FIXED_NOW, reminder_days="2345")
    remind(MONDAY_REMINDERS)
    remind(TUESDAY_REMINDERS)
    sign_in(client, sent, "olga@example.com")
    assert not_heard(client, team, MONDAY)[0] == ["Ada"]
    assert not_heard(client, team, MONDAY + timedelta(days=1))[0] == ["Ada", "Bob"]
