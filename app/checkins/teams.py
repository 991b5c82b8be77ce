"""Teams and their members: the one place that decides a team's name, options and membership.

The web pages, the API and the CLI call these; schedule defaults go through
``schedules.update_team_schedule`` so members' next times are recomputed at once.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select, update
from sqlmodel import Session

from app.checkins import questions as asked_questions
from app.checkins.notices import owners
from app.checkins.schedules import (
    TEAM_FIELDS,
    ScheduleError,
    reschedule,
    schedule_member,
    unschedule,
    update_team_schedule,
    validated,
)
from app.checkins.times import check_time, check_timezone
from app.models import ROLES, Member, MemberDue, Team, TeamSettings
from app.settings import Settings, get_settings

MAX_NAME = 200
MAX_NUDGE_HOURS = 72  # before the digest covering the day; the nudge must still fall on that day
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class TeamError(ValueError):
    """Raised with a reason a person can act on when a team or membership change is refused;
    ``field`` names the value it concerns (name, reply_domain, role, email), '' when none."""

    def __init__(self, reason: str, field: str = ""):
        super().__init__(reason)
        self.field = field


def clean_name(value: str) -> str:
    """The team name with its whitespace collapsed; raises TeamError when empty or too long."""
    name = " ".join((value or "").split())
    if not name or len(name) > MAX_NAME:
        raise TeamError(f"the team needs a name of at most {MAX_NAME} characters", "name")
    return name


def clean_reply_domain(value: str, accepted: tuple[str, ...]) -> str:
    """A host name in lower case, or '' for the instance's REPLY_DOMAIN; raises TeamError for
    anything else and for a domain outside ``accepted`` (Settings.reply_domains): replies to it
    would never reach this instance's inbound path."""
    domain = (value or "").strip().lower()
    if domain and not _HOST.match(domain):
        raise TeamError(f"{domain[:100]!r} is not a domain name", "reply_domain")
    if domain and domain not in accepted:
        raise TeamError(
            f"this instance receives replies only for {', '.join(accepted)} (REPLY_DOMAIN and "
            f"INBOUND_DOMAINS), not {domain}: an operator adds a domain to INBOUND_DOMAINS once its "
            "mail reaches the inbound path",
            "reply_domain",
        )
    return domain


def options(s: Session, team_id: int) -> TeamSettings:
    """The team's options row (defaults, not yet added, when the team has none)."""
    return s.get(TeamSettings, team_id) or TeamSettings(team_id=team_id)


def _weekly_day(value: int, digest_days: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 7:
        raise ScheduleError("weekly_digest_day must be 0 (none) or an ISO weekday 1-7")
    if value and str(value) not in digest_days:
        raise ScheduleError(f"weekly_digest_day {value} is not one of the digest weekdays")
    return value


def _nudge_hours(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_NUDGE_HOURS:
        raise TeamError(
            f"nudge_hours must be a whole number of hours from 0 (no nudges) to {MAX_NUDGE_HOURS}",
            "nudge_hours",
        )
    return value


def _nudge_cutoff(value: str) -> str:
    try:
        return check_time(value if isinstance(value, str) else "")
    except ScheduleError as e:
        raise TeamError(f"nudge_cutoff: {e}", "nudge_cutoff") from None


def _blocker_owner(s: Session, team_id: int, value: int) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise TeamError("blocker_owner must be a member's id, or 0 for the team's admins", "blocker_owner")
    if value == 0:
        return None
    member = s.get(Member, value)
    if member is None or member.team_id != team_id or not member.active:
        raise TeamError(
            f"blocker_owner: member {value} is not a member of this team; name one of its members, "
            "or 0 for the team's admins",
            "blocker_owner",
        )
    return member.id


def update_team(
    s: Session,
    team_id: int,
    *,
    now: datetime,
    name: str | None = None,
    reply_domain: str | None = None,
    digest_enabled: bool | None = None,
    digest_include_quiet: bool | None = None,
    tracking: bool | None = None,
    participation_summary: bool | None = None,
    skip_empty: bool | None = None,
    weekly_day: int | None = None,
    questions: str | list[str] | None = None,
    nudge_hours: int | None = None,
    nudge_cutoff: str | None = None,
    blocker_owner: int | None = None,
    settings: Settings | None = None,
    **schedule,
) -> Team:
    """Change a team's name, options and schedule defaults (``schedules.TEAM_FIELDS``); None leaves
    a value as it is. The settings page, ``PATCH /api/teams/{id}/settings`` and ``donebox
    team-settings`` all change a team through here.

    Every value is checked first: a TeamError or ScheduleError names the reason and nothing is
    changed then. Schedule changes reschedule every member. The weekly digest goes out with the
    daily digest of its weekday, so it must be a digest weekday. A reply domain must be one the
    instance receives mail for (``settings``: the instance's, by default the process's). The
    questions (app.checkins.questions: a list, one a line, or a preset's name) are 1 to 5. Nudges:
    ``nudge_hours`` before the digest (0: off), never at or after ``nudge_cutoff`` (local HH:MM);
    a change applies from the next reminder on (a nudge already set obeys the team at send time;
    turning nudges off drops those at once). ``participation_summary``: each admin's weekly
    participation email (app.checkins.summary), off by default.
    ``blocker_owner``: the id of an active member of the team whom blockers notify instead of
    the admins (app.checkins.notices), 0 for the admins.
    """
    team = s.get(Team, team_id)
    if team is None:
        raise TeamError(f"no team {team_id}")
    name = None if name is None else clean_name(name)
    accepted = (settings or get_settings()).reply_domains
    domain = None if reply_domain is None else clean_reply_domain(reply_domain, accepted)
    try:
        asked = None if questions is None else asked_questions.clean(questions)
    except asked_questions.QuestionsError as e:
        raise TeamError(str(e), "questions") from None
    given = {
        "digest_enabled": digest_enabled,
        "digest_include_quiet": digest_include_quiet,
        "tracking": tracking,
        "participation_summary": participation_summary,
    }
    flags = {key: value for key, value in given.items() if value is not None}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise TeamError(f"{key} must be true or false")
    nudges = {}  # TeamSettings columns beyond the flags
    if nudge_hours is not None:
        nudges["nudge_hours"] = _nudge_hours(nudge_hours)
    if nudge_cutoff is not None:
        nudges["nudge_cutoff"] = _nudge_cutoff(nudge_cutoff)
    if blocker_owner is not None:
        nudges["blocker_owner_id"] = _blocker_owner(s, team_id, blocker_owner)
    if skip_empty is not None and not isinstance(skip_empty, bool):
        raise ScheduleError("skip_empty_digests must be true or false")
    days = validated(schedule, TEAM_FIELDS, nullable=False)
    if weekly_day is not None or days.keys() & {"digest_workdays", "workdays"}:
        # the weekly day, new or kept, must stay one of the digest weekdays, new or kept
        digest_days = days.get("digest_workdays", team.digest_workdays) or days.get("workdays", team.workdays)
        _weekly_day(team.weekly_digest_day if weekly_day is None else weekly_day, digest_days)

    if name is not None:
        team.name = name
    if skip_empty is not None:
        team.skip_empty_digests = skip_empty
    if weekly_day is not None:
        team.weekly_digest_day = weekly_day
    s.add(team)
    if days:
        update_team_schedule(s, team_id, now=now, **days)
    if domain is not None or flags or asked is not None or nudges:
        opts = options(s, team_id)
        if asked is not None:
            opts.questions = asked_questions.stored(asked)
        for key, value in {**flags, **nudges}.items():
            setattr(opts, key, value)
        if domain is not None:
            opts.reply_domain = domain
        s.add(opts)
        if nudges.get("nudge_hours") == 0:  # off: the nudges already set by today's reminders go too
            members = select(Member.id).where(Member.team_id == team_id).scalar_subquery()
            s.execute(
                update(MemberDue)
                .where(MemberDue.kind == "nudge", MemberDue.member_id.in_(members))
                .values(at=None)
            )
    s.flush()
    return team


def current(s: Session, team_id: int) -> dict:
    """Every setting ``update_team`` changes, as it stands (the API's and the CLI's view), keyed by
    the names ``update_team`` takes."""
    team, opts = s.get(Team, team_id), options(s, team_id)
    return {
        "name": team.name,
        "timezone": team.timezone,
        "reminder_time": team.reminder_time,
        "digest_time": team.digest_time,
        "workdays": team.workdays,
        "digest_workdays": team.digest_workdays,
        "digest_enabled": opts.digest_enabled,
        "digest_include_quiet": opts.digest_include_quiet,
        "skip_empty": team.skip_empty_digests,
        "weekly_day": team.weekly_digest_day,
        "tracking": opts.tracking,
        "reply_domain": opts.reply_domain,
        "questions": list(asked_questions.of(opts)),
        "nudge_hours": opts.nudge_hours,
        "nudge_cutoff": opts.nudge_cutoff,
        "participation_summary": opts.participation_summary,
        "blocker_owner": owners(s, [team_id]).get(team_id),
    }


def create_team(s: Session, name: str, timezone: str, *, admin_email: str, now: datetime) -> Team:
    """A new team with the team's defaults and ``admin_email`` as its first member and admin."""
    team = Team(name=clean_name(name), timezone=check_timezone(timezone or "UTC"), created_at=now)
    s.add(team)
    s.flush()
    admin = Member(team_id=team.id, email=admin_email, role="admin", created_at=now)
    s.add(admin)
    schedule_member(s, admin, team, now)
    s.flush()
    return team


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise TeamError(f"the role must be one of {', '.join(ROLES)}, not {role[:32]!r}", "role")
    return role


def add_member(s: Session, team: Team, email: str, *, name: str, role: str, now: datetime) -> Member:
    """Add ``email`` (already normalized) to the team, or bring a removed member back; scheduled at once.

    Raises TeamError for an unknown role or someone already in the team.
    """
    _check_role(role)
    member = s.execute(
        select(Member).where(Member.team_id == team.id, func.lower(Member.email) == email)
    ).scalar()
    if member is not None and member.active:
        raise TeamError(f"{email} is already in the team", "email")
    member = member or Member(team_id=team.id, email=email, created_at=now)
    member.name, member.role, member.active = name or member.name, role, True
    s.add(member)
    schedule_member(s, member, team, now)
    s.flush()
    return member


def _keeps_an_admin(s: Session, member: Member) -> None:
    others = s.execute(
        select(func.count()).where(
            Member.team_id == member.team_id, Member.role == "admin", Member.active, Member.id != member.id
        )
    ).scalar()
    if not others:
        raise TeamError("a team keeps at least one admin: make someone else admin first", "role")


def set_role(s: Session, member_id: int, role: str, *, now: datetime) -> Member:
    """Make a member an admin, member or observer (observers are never asked); reschedules.

    Raises TeamError for an unknown role, and when the team would be left without an admin.
    """
    _check_role(role)
    member = s.get(Member, member_id)
    if member is None:
        raise TeamError(f"no member {member_id}")
    if member.role == "admin" and role != "admin" and member.active:
        _keeps_an_admin(s, member)
    member.role = role
    return reschedule(s, member, now=now)


def remove_member(s: Session, member_id: int) -> Member:
    """Take a member out of the team (their entries stay); nothing is sent to them any more.

    Raises TeamError when they are the team's last admin.
    """
    member = s.get(Member, member_id)
    if member is None:
        raise TeamError(f"no member {member_id}")
    if member.role == "admin":
        _keeps_an_admin(s, member)
    member.active = False
    s.add(member)
    unschedule(s, member)
    s.flush()
    return member
