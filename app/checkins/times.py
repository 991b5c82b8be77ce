"""Pure schedule arithmetic with zoneinfo: when is the next local HH:MM on a workday?

Defined behaviour across daylight-saving changes: a local time inside a
spring-forward gap fires at the first valid minute after the gap, once; a local
time that happens twice in a fall-back fold fires at its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
SEARCH_DAYS = 5 * 366  # how far ahead a paused schedule is searched before it counts as "never"


@cache
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of ``name``, kept: zoneinfo's own cache holds only 8 strongly, so a tick over
    hundreds of zones would otherwise re-read a tzfile for nearly every member."""
    return ZoneInfo(name)


class ScheduleError(ValueError):
    """Raised for a time zone, time of day or weekday set donebox cannot use; the text says why,
    ``field`` names the schedule field (or pause day) it concerns, '' when none."""

    def __init__(self, reason: str, field: str = ""):
        super().__init__(reason)
        self.field = field


@dataclass(frozen=True)
class Pause:
    """A member's pause (vacation): no reminder and no digest on local days ``start``..``end``."""

    start: date
    end: date  # inclusive


def parse_hhmm(value: str) -> time:
    """'17:30' -> time(17, 30); raises ScheduleError for anything else."""
    m = _HHMM.match(value or "")
    if not m:
        raise ScheduleError(f"time must be HH:MM on a 24-hour clock (00:00 to 23:59), not {value!r}")
    return time(int(m.group(1)), int(m.group(2)))


def check_time(value: str) -> str:
    """The canonical 'HH:MM' of ``value``; raises ScheduleError with the reason."""
    return parse_hhmm(value).strftime("%H:%M")


def check_timezone(name: str) -> str:
    """``name`` when it is an IANA time zone this machine knows; raises ScheduleError otherwise."""
    if not name or not isinstance(name, str) or name != name.strip() or len(name) > 64:
        raise ScheduleError(f"time zone must be an IANA name like Europe/Berlin, not {name!r}")
    if name not in _zone_names():
        try:  # zoneinfo also accepts a few legacy aliases (e.g. 'UTC'); take what it can load
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {name!r}: use an IANA name like Europe/Berlin") from None
    return name


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def check_weekdays(value: str) -> str:
    """ISO weekdays as digits 1-7 (1 = Monday), canonical and sorted; raises ScheduleError."""
    if not value or any(c not in "1234567" for c in value) or len(set(value)) != len(value):
        raise ScheduleError(
            f"weekdays must be distinct digits 1-7 (1 = Monday, 7 = Sunday), e.g. 12345, not {value!r}"
        )
    return "".join(sorted(value))


def paused_on(day: date, pauses: Iterable[Pause]) -> Pause | None:
    """The pause that covers ``day``, or None."""
    for p in pauses:
        if p.start <= day <= p.end:
            return p
    return None


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


# a tick asks for the next time of every due member: its instant (the tick's now, or a due time)
# is in every key, so what one tick kept is of no use to the next one (forget_instants)
@lru_cache(maxsize=65536)
def _next_plain(after: datetime, at: str, workdays: str, tz_name: str) -> datetime:
    tz = zone(tz_name)
    at_t = parse_hhmm(at)
    day = after.astimezone(tz).date() - timedelta(days=1)  # a gap can push yesterday's time past midnight
    for offset in range(0, 16):
        d = day + timedelta(days=offset)
        if str(d.isoweekday()) not in workdays:
            continue
        when = local_instant(d, at_t, tz)
        if when > after:
            return when
    raise ScheduleError(f"no weekday in {workdays!r}")


def forget_instants() -> None:
    """Drop the next times worked out so far (a tick does once it is done): their keys hold
    instants that do not come back, and a scheduler that kept them until the cache was full grew
    by tens of megabytes over its first minutes of ticks."""
    _next_plain.cache_clear()


def next_occurrence(
    after: datetime, at: str, workdays: str, tz_name: str, pauses: Iterable[Pause] = ()
) -> datetime | None:
    """The first instant strictly after ``after`` that is ``at`` local time on a workday outside
    every pause (UTC); None when pauses cover the next SEARCH_DAYS days."""
    pauses = tuple(pauses)
    if not pauses:
        return _next_plain(after, at, workdays, tz_name)
    start = after
    tz = zone(tz_name)
    while True:
        when = _next_plain(start, at, workdays, tz_name)
        day = when.astimezone(tz).date()
        pause = paused_on(day, pauses)
        if pause is None:
            return when
        if (pause.end - after.astimezone(tz).date()).days > SEARCH_DAYS:
            return None
        # go on from the end of the pause's last day
        start = max(when, local_instant(pause.end + timedelta(days=1), time(0, 0), tz) - timedelta(seconds=1))


def local_date(instant: datetime, tz_name: str) -> date:
    """The calendar date at ``instant`` in ``tz_name``."""
    return instant.astimezone(zone(tz_name)).date()


def previous_workday(day: date, workdays: str) -> date:
    """The last workday strictly before ``day``."""
    for offset in range(1, 15):
        d = day - timedelta(days=offset)
        if str(d.isoweekday()) in workdays:
            return d
    raise ValueError(f"no workday in {workdays!r}")


def local_midnight_after(day: date, tz_name: str) -> datetime:
    """The UTC instant when ``day`` ends in ``tz_name``."""
    return local_instant(day + timedelta(days=1), time(0, 0), zone(tz_name))


def nudge_instant(
    day: date,
    tz_name: str,
    *,
    reminder: datetime,
    hours: int,
    cutoff: str,
    digest_time: str,
    digest_days: str,
) -> datetime | None:
    """When the nudge of ``day``'s reminder (sent at ``reminder``) goes, or None for no nudge that day.

    ``hours`` real hours (not wall-clock hours: a DST change in between moves the local time) before
    the first digest on a later local day (the digest that covers ``day``), if that instant is after
    the reminder, still on ``day`` and before ``cutoff`` local time. A nudge that would land later
    is not moved earlier: it is not sent (the day has no nudge)."""
    if hours <= 0:
        return None
    tz = zone(tz_name)
    end = local_instant(day + timedelta(days=1), time(0, 0), tz)
    digest = _next_plain(end - timedelta(seconds=1), digest_time, digest_days, tz_name)
    when = digest - timedelta(hours=hours)
    local = when.astimezone(tz)
    if when <= reminder or local.date() != day or local.time() >= parse_hhmm(cutoff):
        return None
    return when
