"""Members' schedules: team defaults, validation, pauses, and ``next_*_at`` recomputed at once.

Every change that can move a member's next reminder or digest (time zone, time,
weekdays, a pause, the team's defaults; a role through ``teams.set_role``) goes
through a function here, and that function recomputes ``next_reminder_at`` / ``next_digest_at`` in the same
transaction: the web and API layers call these, never set the columns themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import delete, select
from sqlmodel import Session

from app.checkins.times import (
    Pause,
    ScheduleError,
    check_time,
    check_timezone,
    check_weekdays,
    local_date,
    next_occurrence,
)
from app.models import Member, MemberPause, Team

MAX_PAUSE_DAYS = 366  # one pause; longer absences are a deactivated member, not a vacation

# field -> validator; a value of None means "the team's default"
MEMBER_FIELDS = {
    "timezone": check_timezone,
    "reminder_time": check_time,
    "reminder_days": check_weekdays,
    "digest_time": check_time,
    "digest_days": check_weekdays,
}
TEAM_FIELDS = {
    "timezone": check_timezone,
    "reminder_time": check_time,
    "workdays": check_weekdays,
    "digest_time": check_time,
    "digest_workdays": check_weekdays,
}


class Effective(NamedTuple):
    """A member's schedule after team defaults are applied (a tuple: the tick builds millions)."""

    tz: str
    reminder_time: str
    reminder_days: str
    digest_time: str
    digest_days: str
    asked: bool  # observers get digests and are never asked


def effective(member: Member, team: Team) -> Effective:
    """The member's own settings where set, the team's otherwise."""
    return Effective(
        tz=member.timezone or team.timezone,
        reminder_time=member.reminder_time or team.reminder_time,
        reminder_days=member.reminder_days or team.workdays,
        digest_time=member.digest_time or team.digest_time,
        digest_days=member.digest_days or team.digest_workdays or team.workdays,
        asked=member.role != "observer",
    )


def pauses_of(s: Session, member_ids: Iterable[int], since: date) -> dict[int, tuple[Pause, ...]]:
    """Each member's pauses that end on or after ``since``."""
    ids = list(member_ids)
    out: dict[int, list[Pause]] = {}
    if not ids:
        return {}
    rows = s.execute(
        select(MemberPause.member_id, MemberPause.first_day, MemberPause.last_day).where(
            MemberPause.member_id.in_(ids), MemberPause.last_day >= since
        )
    )
    for mid, first, last in rows:
        out.setdefault(mid, []).append(Pause(first, last))
    return {k: tuple(v) for k, v in out.items()}


def next_times(
    member: Member, team: Team, now: datetime, pauses: tuple[Pause, ...] = ()
) -> tuple[datetime | None, datetime | None]:
    """(next reminder, next digest) strictly after ``now``; None where there is none."""
    if not member.active:
        return None, None
    e = effective(member, team)
    reminder = next_occurrence(now, e.reminder_time, e.reminder_days, e.tz, pauses) if e.asked else None
    digest = next_occurrence(now, e.digest_time, e.digest_days, e.tz, pauses)
    return reminder, digest


def schedule_member(member: Member, team: Team, now: datetime) -> None:
    """Set a new member's next reminder and digest times (a new member has no pauses)."""
    member.next_reminder_at, member.next_digest_at = next_times(member, team, now)


def reschedule(s: Session, member: Member, *, now: datetime, team: Team | None = None) -> Member:
    """Recompute the member's ``next_reminder_at`` and ``next_digest_at`` from now on."""
    team = team or s.get(Team, member.team_id)
    since = local_date(now, effective(member, team).tz) - timedelta(days=1)
    pauses = pauses_of(s, [member.id], since).get(member.id, ()) if member.id else ()
    member.next_reminder_at, member.next_digest_at = next_times(member, team, now, pauses)
    s.add(member)
    s.flush()
    return member


# what an empty day set means to the person who left every box unticked
_REQUIRED = {
    "workdays": "tick at least one workday (workdays is required)",
    "digest_workdays": "tick at least one digest day (digest_workdays is required)",
}


def validated(changes: dict, fields: dict, *, nullable: bool) -> dict:
    """``changes`` checked against ``fields`` (name -> validator) and made canonical; raises
    ScheduleError naming the field, or for an empty value unless ``nullable`` (None = the default)."""
    out = {}
    for name, value in changes.items():
        if name not in fields:
            raise ScheduleError(f"unknown schedule field {name!r}; known: {', '.join(fields)}")
        if value is None or value == "":
            if not nullable:
                raise ScheduleError(_REQUIRED.get(name, f"{name} is required"), name)
            out[name] = None
            continue
        if not isinstance(value, str):
            raise ScheduleError(f"{name} must be a string, not {type(value).__name__}", name)
        try:
            out[name] = fields[name](value)
        except ScheduleError as e:
            raise ScheduleError(f"{name}: {e}", name) from None
    return out


def update_member_schedule(s: Session, member_id: int, *, now: datetime, **changes) -> Member:
    """Validate and apply a member's schedule changes (None = team default), then reschedule.

    Raises ScheduleError naming the field and the reason; nothing is changed then.
    """
    values = validated(changes, MEMBER_FIELDS, nullable=True)
    member = s.get(Member, member_id)
    if member is None:
        raise ScheduleError(f"no member {member_id}")
    for name, value in values.items():
        setattr(member, name, value)
    return reschedule(s, member, now=now)


def update_team_schedule(s: Session, team_id: int, *, now: datetime, **changes) -> Team:
    """Validate and apply the team's defaults, then reschedule every member of the team."""
    values = validated(changes, TEAM_FIELDS, nullable=False)
    team = s.get(Team, team_id)
    if team is None:
        raise ScheduleError(f"no team {team_id}")
    for name, value in values.items():
        setattr(team, name, value)
    s.add(team)
    for member in s.execute(select(Member).where(Member.team_id == team_id)).scalars():
        reschedule(s, member, now=now, team=team)
    return team


def add_pause(s: Session, member_id: int, first_day: date, last_day: date, *, now: datetime) -> MemberPause:
    """Pause a member on local days first_day..last_day (inclusive); reschedules at once."""
    if last_day < first_day:
        raise ScheduleError(f"a pause ends ({last_day}) before it starts ({first_day})", "last_day")
    if (last_day - first_day).days >= MAX_PAUSE_DAYS:
        raise ScheduleError(f"a pause may last at most {MAX_PAUSE_DAYS} days", "last_day")
    member = s.get(Member, member_id)
    if member is None:
        raise ScheduleError(f"no member {member_id}")
    pause = MemberPause(member_id=member_id, first_day=first_day, last_day=last_day, created_at=now)
    s.add(pause)
    s.flush()
    reschedule(s, member, now=now)
    return pause


def remove_pause(s: Session, pause_id: int, *, now: datetime) -> bool:
    """End a pause early (delete it); reschedules its member; False when there was none."""
    pause = s.get(MemberPause, pause_id)
    if pause is None:
        return False
    member_id = pause.member_id
    s.execute(delete(MemberPause).where(MemberPause.id == pause_id))
    reschedule(s, s.get(Member, member_id), now=now)
    return True
