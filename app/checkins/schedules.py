"""Members' schedules: team defaults, validation, pauses, and ``next_*_at`` recomputed at once.

Every change that can move a member's next reminder or digest (time zone, time,
weekdays, a pause, the team's defaults; a role through ``teams.set_role``) goes
through a function here, and that function recomputes the member's next reminder and digest (rows of
``memberdue``, written through ``set_due``) in the same transaction: the web and API layers call
these, never write the rows themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, delete, select, text
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
from app.models import DUE_KINDS, Member, MemberDue, MemberPause, Team, UTCDateTime

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


_UPSERT_SQL = (
    "INSERT INTO memberdue (member_id, kind, at) {rows} "
    "ON CONFLICT (member_id, kind) DO UPDATE SET at = excluded.at"
)
# PostgreSQL: every row in one JSON document, one round trip however many members
_PG_SET_DUE = text(
    _UPSERT_SQL.format(
        rows="SELECT CAST(u.value->>0 AS int), :kind, CAST(u.value->>1 AS timestamptz) "
        "FROM json_array_elements(CAST(:doc AS json)) AS u"
    )
)
_SET_DUE = text(_UPSERT_SQL.format(rows="VALUES (:member_id, :kind, :at)")).bindparams(
    bindparam("at", type_=UTCDateTime())
)


def set_due(s: Session, kind: str, changes: Iterable[tuple[int, datetime | None]]) -> None:
    """Set when each member's next ``kind`` (reminder, digest, nudge) is due; None: none is."""
    changes = list(changes)
    if not changes:
        return
    if s.get_bind().dialect.name == "postgresql":
        doc = json.dumps([(i, t.isoformat() if t else None) for i, t in changes])
        s.connection().execute(_PG_SET_DUE, {"kind": kind, "doc": doc})
        return
    s.connection().execute(_SET_DUE, [{"member_id": i, "kind": kind, "at": t} for i, t in changes])


def due_times(s: Session, member_id: int) -> dict[str, datetime | None]:
    """When the member's next reminder, digest and nudge are due (None: not at all)."""
    rows = s.execute(select(MemberDue.kind, MemberDue.at).where(MemberDue.member_id == member_id))
    return {**dict.fromkeys(DUE_KINDS), **dict(rows.all())}


def _set_next(s: Session, member: Member, times: tuple[datetime | None, datetime | None]) -> None:
    if member.id is None:
        s.add(member)
        s.flush()
    set_due(s, "reminder", [(member.id, times[0])])
    set_due(s, "digest", [(member.id, times[1])])


def schedule_member(s: Session, member: Member, team: Team, now: datetime) -> None:
    """Set a new member's next reminder and digest times (a new member has no pauses)."""
    _set_next(s, member, next_times(member, team, now))


def unschedule(s: Session, member: Member) -> None:
    """Nothing more is due for the member (deactivated)."""
    _set_next(s, member, (None, None))


def reschedule(s: Session, member: Member, *, now: datetime, team: Team | None = None) -> Member:
    """Recompute the member's next reminder and digest from now on."""
    team = team or s.get(Team, member.team_id)
    since = local_date(now, effective(member, team).tz) - timedelta(days=1)
    pauses = pauses_of(s, [member.id], since).get(member.id, ()) if member.id else ()
    s.add(member)
    _set_next(s, member, next_times(member, team, now, pauses))
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
