"""Goals carried forward: what a member said they would do next, listed in the next reminders until
they close it, by reply ("done 1", "2 -> tomorrow": parsers.goals) or on the web.

A goal is an Entry of kind "goal" of a team whose questions include one about plans
(app.checkins.questions.goal_question). The reminder of day D lists, numbered, the member's goals
of the GOAL_WINDOW_DAYS before D that were open when D began (``listed``): the same list whenever
it is read, so a reply's numbers name the goals its reminder showed. Closing records the day and
how, done or carried (``entries.close_goal``, the one writer of entries); carrying a goal makes it
a goal of the reply's day again, so it stays in the reminders from then on.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, or_, select
from sqlmodel import Session

from app.checkins.entries import close_goal
from app.db import in_list
from app.models import Entry

GOAL_WINDOW_DAYS = 14
MAX_LISTED = 10  # goals a reminder lists; a reply's numbers beyond are noted, not applied


@cache
def _listed(open_only: bool) -> Select:
    """The goals of members :ids set from :since to before :last and open on :first (still open
    with ``open_only``), built once; the list bound as one parameter (app.db.in_list)."""
    day = Entry.__table__.c.day.type
    stmt = select(Entry).where(
        in_list(Entry.__table__.c.member_id, "ids"),
        Entry.kind == "goal",
        Entry.day >= bindparam("since", type_=day),
        Entry.day < bindparam("last", type_=day),
        or_(Entry.closed_on.is_(None), Entry.closed_on >= bindparam("first", type_=day)),
    )
    if open_only:
        stmt = stmt.where(Entry.closed_on.is_(None))
    return stmt.order_by(Entry.member_id, Entry.day, Entry.id)


def _listed_rows(s: Session, member_ids: Iterable[int], first: date, last: date, *, open_only: bool = False):
    """The goals of ``member_ids`` a reminder of a day from ``first`` to ``last`` may list."""
    since = first - timedelta(days=GOAL_WINDOW_DAYS)
    params = {"ids": list(member_ids), "since": since, "last": last, "first": first}
    return list(s.execute(_listed(open_only), params).scalars())


def listed_many(s: Session, pairs: Iterable[tuple[int, date]]) -> dict[tuple[int, date], list[Entry]]:
    """{(member id, day): the goals that member's reminder of that day lists} in one query."""
    pairs = set(pairs)
    if not pairs:
        return {}
    days = [d for _, d in pairs]
    rows = _listed_rows(s, {m for m, _ in pairs}, min(days), max(days))
    out = {}
    for member_id, day in pairs:
        goals = [
            e
            for e in rows
            if e.member_id == member_id
            and day - timedelta(days=GOAL_WINDOW_DAYS) <= e.day < day
            and (e.closed_on is None or e.closed_on >= day)
        ]
        out[member_id, day] = goals[:MAX_LISTED]
    return out


def listed(s: Session, member_id: int, day: date) -> list[Entry]:
    """The goals the member's reminder of ``day`` lists, numbered from 1 in this order."""
    return listed_many(s, [(member_id, day)])[member_id, day]


def open_goals(s: Session, member_ids: Iterable[int], day: date) -> dict[int, list[Entry]]:
    """{member id: goals set before ``day`` (within GOAL_WINDOW_DAYS) and still open}: what the
    member's page and the digest of ``day`` show as carried."""
    ids = list(member_ids)
    if not ids:
        return {}
    out: dict[int, list[Entry]] = {}
    for e in _listed_rows(s, ids, day, day, open_only=True):
        if len(out.setdefault(e.member_id, [])) < MAX_LISTED:
            out[e.member_id].append(e)
    return out


def open_goals_many(s: Session, pairs: Iterable[tuple[int, date]]) -> dict[tuple[int, date], list[Entry]]:
    """{(member id, day): ``open_goals(s, [member id], day)``'s list (maybe empty)} in one query."""
    pairs = set(pairs)
    if not pairs:
        return {}
    days = [d for _, d in pairs]
    rows = _listed_rows(s, {m for m, _ in pairs}, min(days), max(days), open_only=True)
    out = {}
    for member_id, day in pairs:
        found = [
            e
            for e in rows
            if e.member_id == member_id and day - timedelta(days=GOAL_WINDOW_DAYS) <= e.day < day
        ]
        out[member_id, day] = found[:MAX_LISTED]
    return out


def apply_marks(s: Session, marked: list[tuple[int, int, date, tuple]], *, now) -> list[tuple[int, str]]:
    """Close the goals replies marked ([(inbound id, member id, reply day, ((number, "done" | "carry"),
    ...))]), numbers as their reminders listed them; (inbound id, note) for numbers no listed goal has."""
    notes = []
    lists = listed_many(s, [(member_id, day) for _, member_id, day, _ in marked])
    for inbound_id, member_id, day, marks in marked:
        goals = lists[member_id, day]
        for number, action in marks:
            if number > len(goals):
                notes.append(
                    (
                        inbound_id,
                        f"goal {number} not closed: the reminder of {day.isoformat()} listed {len(goals)}",
                    )
                )
                continue
            close_goal(s, goals[number - 1], "done" if action == "done" else "carried", day=day, now=now)
    return notes
