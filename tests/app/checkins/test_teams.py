"""app.checkins.teams: a team's name, options and membership, decided in one place."""

import pytest
from sqlalchemy import select

from app.checkins import teams
from app.checkins.schedules import due_times
from app.checkins.teams import TeamError
from app.checkins.times import ScheduleError
from app.db import session
from app.models import Member, Team, TeamSettings
from tests.conftest import FIXED_NOW, scheduled


def member(team, email):
    with session() as s:
        return scheduled(
            s.execute(select(Member).where(Member.team_id == team.id, Member.email == email)).scalar_one(), s
        )


def test_a_refused_change_changes_nothing_even_when_the_caller_commits(team):
    for bad, error in (
        ({"name": "", "reminder_time": "09:00"}, TeamError),
        ({"reply_domain": "x y", "tracking": True}, TeamError),
        ({"reminder_time": "09:00", "weekly_day": 6}, ScheduleError),  # Saturday is no digest day
        ({"tracking": "yes"}, TeamError),
    ):
        with session() as s:
            with pytest.raises(error):
                teams.update_team(s, team.id, now=FIXED_NOW, **bad)
    with session() as s:
        t = s.get(Team, team.id)
        assert (t.name, t.reminder_time, t.weekly_digest_day) == ("Rocket", "17:00", 0)
        assert s.get(TeamSettings, team.id) is None


def test_the_weekly_day_is_checked_against_the_new_digest_days(team):
    with session() as s:
        teams.update_team(s, team.id, now=FIXED_NOW, digest_workdays="67", weekly_day=6)
    with session() as s:
        t = s.get(Team, team.id)
        assert (t.digest_workdays, t.weekly_digest_day) == ("67", 6)


def test_options_are_stored_and_read_back(team):
    with session() as s:
        teams.update_team(
            s, team.id, now=FIXED_NOW, tracking=True, digest_enabled=False, reply_domain="In.Example.com"
        )
    with session() as s:
        o = teams.options(s, team.id)
        assert (o.tracking, o.digest_enabled, o.digest_include_quiet, o.reply_domain) == (
            True,
            False,
            True,
            "in.example.com",
        )


def test_a_reply_domain_the_instance_does_not_receive_mail_for_is_refused(team):
    with session() as s:
        with pytest.raises(TeamError, match="receives replies only for reply.test, in.example.com"):
            teams.update_team(s, team.id, now=FIXED_NOW, reply_domain="elsewhere.example.org")
        teams.update_team(s, team.id, now=FIXED_NOW, reply_domain="Reply.Test")  # REPLY_DOMAIN itself
        assert teams.options(s, team.id).reply_domain == "reply.test"


def test_a_team_keeps_one_admin_and_members_come_back(team):
    ada, bob = member(team, "ada@example.com"), member(team, "bob@example.com")
    with session() as s:
        for change in (
            lambda: teams.set_role(s, ada.id, "member", now=FIXED_NOW),
            lambda: teams.remove_member(s, ada.id),
        ):
            with pytest.raises(TeamError, match="at least one admin"):
                change()
        teams.remove_member(s, bob.id)
    assert member(team, "bob@example.com").next_reminder_at is None
    with session() as s:
        t = s.get(Team, team.id)
        with pytest.raises(TeamError, match="already"):
            teams.add_member(s, t, "ada@example.com", name="", role="member", now=FIXED_NOW)
        back = teams.add_member(s, t, "bob@example.com", name="", role="member", now=FIXED_NOW)
        assert (back.id, back.name, back.active, due_times(s, back.id)["reminder"] is not None) == (
            bob.id,
            "Bob",
            True,
            True,
        )


def test_a_new_team_has_its_creator_as_admin(db):
    with session() as s:
        t = teams.create_team(s, "  New   team ", "Asia/Tokyo", admin_email="op@example.com", now=FIXED_NOW)
        (m,) = s.execute(select(Member).where(Member.team_id == t.id)).scalars()
        assert (t.name, t.timezone, m.role, due_times(s, m.id)["reminder"] is not None) == (
            "New team",
            "Asia/Tokyo",
            "admin",
            True,
        )
    with session() as s, pytest.raises(ScheduleError, match="time zone"):
        teams.create_team(s, "X", "Mars/Olympus", admin_email="op@example.com", now=FIXED_NOW)
