"""Member schedules with team defaults: validation, pauses, observers, immediate recompute."""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from app.checkins.schedules import add_pause, remove_pause, update_member_schedule, update_team_schedule
from app.checkins.teams import TeamError, set_role, update_team
from app.checkins.times import ScheduleError
from app.db import session
from app.models import Member, Team
from tests.conftest import (
    FIXED_NOW,  # Monday 2026-11-23 12:00 UTC
    scheduled,
)


def member(team, email):
    with session() as s:
        return scheduled(
            s.execute(select(Member).where(Member.team_id == team.id, Member.email == email)).scalar_one(), s
        )


def test_members_follow_the_team_defaults_until_they_set_their_own(team):
    bob = member(team, "bob@example.com")
    assert bob.next_reminder_at == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 17:00 Berlin
    assert bob.next_digest_at == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 Berlin
    with session() as s:
        update_member_schedule(s, bob.id, now=FIXED_NOW, timezone="America/New_York", reminder_time="18:30")
    bob = member(team, "bob@example.com")
    assert bob.next_reminder_at == datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # 18:30 New York, at once
    assert bob.next_digest_at == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 08:00 New York, today
    with session() as s:
        update_member_schedule(s, bob.id, now=FIXED_NOW, timezone=None, reminder_time=None)
    assert member(team, "bob@example.com").next_reminder_at == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


def test_a_bad_time_zone_or_time_is_refused_and_nothing_changes(team):
    bob = member(team, "bob@example.com")
    for field, value, reason in (
        ("timezone", "Europe/Atlantis", "unknown time zone"),
        ("reminder_time", "25:00", "HH:MM"),
        ("digest_days", "89", "weekdays"),
        ("colour", "blue", "unknown schedule field"),
    ):
        with pytest.raises(ScheduleError, match=reason):
            with session() as s:
                update_member_schedule(s, bob.id, now=FIXED_NOW, **{field: value})
    after = member(team, "bob@example.com")
    assert (after.timezone, after.reminder_time, after.next_reminder_at) == (None, None, bob.next_reminder_at)


def test_a_team_change_reschedules_every_member(team):
    with session() as s:
        update_team_schedule(s, team.id, now=FIXED_NOW, reminder_time="16:00", workdays="1234")
    assert member(team, "ada@example.com").next_reminder_at == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    with pytest.raises(ScheduleError, match="workdays"):
        with session() as s:
            update_team_schedule(s, team.id, now=FIXED_NOW, workdays="")


def test_observers_are_never_asked_but_get_digests(team):
    olga = member(team, "olga@example.com")
    assert olga.next_reminder_at is None and olga.next_digest_at is not None
    with session() as s:
        set_role(s, olga.id, "member", now=FIXED_NOW)
    assert member(team, "olga@example.com").next_reminder_at == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    with pytest.raises(TeamError, match="role"):
        with session() as s:
            set_role(s, olga.id, "boss", now=FIXED_NOW)


def test_a_vacation_moves_the_next_times_past_it_and_ending_it_brings_them_back(team):
    bob = member(team, "bob@example.com")
    with session() as s:
        pause = add_pause(s, bob.id, date(2026, 11, 23), date(2026, 11, 27), now=FIXED_NOW)
    paused = member(team, "bob@example.com")
    assert paused.next_reminder_at == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert paused.next_digest_at == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    with session() as s:
        assert remove_pause(s, pause.id, now=FIXED_NOW)
    assert member(team, "bob@example.com").next_reminder_at == bob.next_reminder_at
    with pytest.raises(ScheduleError, match="before it starts"):
        with session() as s:
            add_pause(s, bob.id, date(2026, 11, 27), date(2026, 11, 23), now=FIXED_NOW)


def test_team_defaults_are_stored_on_the_team(team):
    with session() as s:
        t = s.get(Team, team.id)
        assert (t.workdays, t.digest_workdays, t.skip_empty_digests) == ("12345", "12345", False)


def test_digest_options_are_validated(team):
    with session() as s:
        update_team(s, team.id, now=FIXED_NOW, skip_empty=True, weekly_day=1)
    with session() as s:
        t = s.get(Team, team.id)
        assert (t.skip_empty_digests, t.weekly_digest_day) == (True, 1)
    for kwargs, reason in (
        ({"weekly_day": 6}, "not one of the digest weekdays"),
        ({"weekly_day": 9}, "0 \\(none\\)"),
    ):
        with pytest.raises(ScheduleError, match=reason):
            with session() as s:
                update_team(s, team.id, now=FIXED_NOW, **kwargs)
