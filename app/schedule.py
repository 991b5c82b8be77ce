"""Pure schedule arithmetic with zoneinfo: when is the next local HH:MM on a workday?

Defined behaviour across daylight-saving changes: a local time inside a
spring-forward gap fires at the first valid minute after the gap, once; a local
time that happens twice in a fall-back fold fires at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_hhmm(value: str) -> time:
    """'17:30' -> time(17, 30); raises ValueError for anything else."""
    hh, mm = value.split(":")
    return time(int(hh), int(mm))


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of ``day`` at local ``at``, resolving gaps forward and folds to the first."""
    local = datetime.combine(day, at, tzinfo=tz)  # fold=0: the first occurrence in a fold
    utc = local.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        # a non-existent local time: the wall clock jumped over it; the first valid minute
        # after the gap is the transition instant itself
        before = local.replace(fold=0).astimezone(UTC)
        after = local.replace(fold=1).astimezone(UTC)
        utc = min(before, after)
        while utc.astimezone(tz).replace(tzinfo=None) < local.replace(tzinfo=None):
            utc += timedelta(minutes=1)
        utc = utc.replace(second=0, microsecond=0)
    return utc


def next_occurrence(after: datetime, at: str, workdays: str, tz_name: str) -> datetime:
    """The first instant strictly after ``after`` that is ``at`` local time on a workday (UTC)."""
    tz = ZoneInfo(tz_name)
    at_t = parse_hhmm(at)
    day = after.astimezone(tz).date()
    for offset in range(0, 15):
        d = day + timedelta(days=offset)
        if str(d.isoweekday()) not in workdays:
            continue
        when = local_instant(d, at_t, tz)
        if when > after:
            return when
    raise ValueError(f"no workday in {workdays!r}")


def local_date(instant: datetime, tz_name: str) -> date:
    """The calendar date at ``instant`` in ``tz_name``."""
    return instant.astimezone(ZoneInfo(tz_name)).date()


def previous_workday(day: date, workdays: str) -> date:
    """The last workday strictly before ``day``."""
    for offset in range(1, 15):
        d = day - timedelta(days=offset)
        if str(d.isoweekday()) in workdays:
            return d
    raise ValueError(f"no workday in {workdays!r}")


def local_midnight_after(day: date, tz_name: str) -> datetime:
    """The UTC instant when ``day`` ends in ``tz_name``."""
    return local_instant(day + timedelta(days=1), time(0, 0), ZoneInfo(tz_name))
