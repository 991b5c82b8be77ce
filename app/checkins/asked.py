"""Who was asked on a day, and so who can be "not heard from": the outbox says.

A member is silent on a day only if that day's reminder went out to them: its outbox row
(``reminder:<member>:<day>``) was handed to a transport and accepted (sent, then maybe delivered
or complained about). The outbox is the record of what happened; the schedule arithmetic
(app/checkins/times.py) only says what the schedule is *now*, and would be wrong about the
past whenever it differs from what was: a member invited after the day's reminder time, a
pause ended early (its row is deleted), changed weekdays, time zone or reminder time, a
reminder skipped as too late (REMINDER_LATE_S) or one that never got through. A day before
the team existed or still to come has no reminders, so nobody is listed; ``day_status`` says
why for the team page.

The team page's "Not heard from" and the digests' "No reply from" both use ``not_heard_from``; the
participation figures (app/checkins/participation.py) count the days asked with ``reached``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import cache

from sqlalchemy import Select, select
from sqlmodel import Session

from app.checkins.times import local_date
from app.db import in_list
from app.models import Member, OutboundMessage, Team

# states of a reminder that reached its member's mail server (bounced: it did not; queued,
# deferred or sending: not yet; failed, cancelled, suppressed: never)
REACHED = ("sent", "delivered", "complained")
KEYS_PER_QUERY = 5000  # idempotency keys in one IN list (SQLite's bound-parameter limit is 32766)


def checkin_key(kind: str, member_id: int, day: date) -> str:
    """The outbox idempotency key of a member's reminder or digest of ``day``."""
    return f"{kind}:{member_id}:{day.isoformat()}"


def reached(
    s: Session, member_ids: Iterable[int], first: date, last: date
) -> dict[tuple[int, date], datetime]:
    """{(member id, day): when the reminder was sent} for each reminder of a day in first..last that
    reached one of ``member_ids``: one statement per KEYS_PER_QUERY (member, day) pairs."""
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    keys = {checkin_key("reminder", mid, d): (mid, d) for mid in member_ids for d in span}
    found: dict[tuple[int, date], datetime] = {}
    M = OutboundMessage
    listed = list(keys)
    for i in range(0, len(listed), KEYS_PER_QUERY):
        stmt = select(M.idempotency_key, M.sent_at, M.created_at).where(
            M.idempotency_key.in_(listed[i : i + KEYS_PER_QUERY]), M.state.in_(REACHED)
        )
        for key, sent_at, created_at in s.execute(stmt):
            found[keys[key]] = sent_at or created_at  # sent_at is set on every reached row; guard old ones
    return found


def asked(s: Session, member_ids: Iterable[int], first: date, last: date) -> set[int]:
    """The members among ``member_ids`` whose reminder of a day in first..last reached them."""
    return {mid for mid, _ in reached(s, member_ids, first, last)}


def reached_pairs(s: Session, pairs: Iterable[tuple[int, date]]) -> set[tuple[int, date]]:
    """The (member, day) pairs among ``pairs`` whose reminder of that day reached the member."""
    by_key = {checkin_key("reminder", mid, d): (mid, d) for mid, d in pairs}
    keys = list(by_key)
    found: set[tuple[int, date]] = set()
    stmt = _reached()
    for i in range(0, len(keys), KEYS_PER_QUERY):
        found.update(by_key[k] for k in s.execute(stmt, {"keys": keys[i : i + KEYS_PER_QUERY]}).scalars())
    return found


@cache
def _reached() -> Select:
    """reached_pairs' look-up of the reached messages among a list of keys (:keys, one parameter:
    app.db.in_list), built once."""
    M = OutboundMessage
    keys = in_list(M.__table__.c.idempotency_key, "keys")
    return select(M.idempotency_key).where(keys, M.state.in_(REACHED))


def not_heard_from(
    s: Session, members: list[Member], first: date, last: date, *, wrote: Iterable[int]
) -> list[Member]:
    """``members`` (in their order) who were asked on a day of first..last and wrote nothing then."""
    silent = set(m.id for m in members) - set(wrote)
    reached = asked(s, silent, first, last) if silent else set()
    return [m for m in members if m.id in reached]


def day_status(team: Team, day: date, today: date) -> str:
    """Why nobody can have been asked on ``day``: 'before' the team's first local day, 'future'
    after ``today``; '' otherwise."""
    if day < local_date(team.created_at, team.timezone):
        return "before"
    if day > today:
        return "future"
    return ""
