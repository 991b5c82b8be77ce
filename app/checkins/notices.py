"""Mentions and blockers: who must hear of an entry, the hourly emails that tell them, and open blockers.

**Who.** An ``@name`` in an entry names the active members of the entry's team whose *handle* it is,
case-insensitively: the local part of their email (``@bob.smith`` for bob.smith@example.com) or
their name without spaces (``@BobSmith`` for "Bob Smith"). Every member a handle fits is told (two
members sharing a handle both hear of it); nobody is told of their own entry. A blocker (an entry
of kind ``blocker``: a ``Blocked:`` line) tells the team's blocker owner (``TeamSettings.blocker_owner_id``,
set through app.checkins.teams.update_team) when the team names one who is still an active member,
else the team's active admins; never its author (an owner's own blocker goes to the admins).

**When.** The entry writer (app.checkins.entries: ``add`` and ``add_many``) calls ``record`` in its
own transaction: one ``Notice`` row per member to tell, stamped with the UTC hour it was written in.
The scheduler's tick (``run``) takes the notices of hours that are over, in ``FOR UPDATE SKIP
LOCKED`` batches, and makes one outbox row per member, kind and hour (``mention:<member>:<hour>``,
``blocker:<member>:<hour>``, idempotent): an email lists every mention (or blocker) of that hour.
Nothing is sent from a request or from reply processing. A member paused on their local day when
the hour's email is made is not told (``paused``), nor one no longer active (``inactive``); an
unsubscribed address is suppressed by the relay as any check-in mail is. A notice whose entry was
deleted before its hour's email is dropped (``gone``).

**Open blockers.** A blocker stays open until its author, an admin or the blocker owner resolves
it: on the team's day page (``resolve``), or by a later reply with a line starting "unblocked"
(``resolve_by_reply``: every open blocker of the author, since a reply cannot say which; an entry
written on the web or through the API starting so does the same, as it goes through the same
writer). A reminder lists its member's blockers open for more than ``STILL_BLOCKED_AFTER``
("Still blocked: ...").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, func, select, update
from sqlmodel import Session

from app.checkins.schedules import pauses_of
from app.checkins.times import local_date, paused_on
from app.db import in_list, session
from app.models import Entry, Member, Notice, OutboundMessage, Team, TeamSettings
from app.relay import outbox, render
from app.settings import Settings

KINDS = ("mention", "blocker")
HOUR = timedelta(hours=1)
STILL_BLOCKED_AFTER = timedelta(days=1)
UNBLOCKED = re.compile(r"^\s*unblocked\b", re.I)
MAX_LISTED = 50  # entries an email lists; "and N more" past it
MAX_STILL_BLOCKED = 10  # open blockers a reminder lists


class NoticeError(ValueError):
    """Raised with a reason a person can act on when a blocker cannot be resolved."""


def handles(email: str, name: str) -> frozenset[str]:
    """The lower-case handles an ``@name`` may use for the member of ``email`` and ``name``."""
    local = email.rsplit("@", 1)[0].lower()
    return frozenset(h for h in (local, "".join(name.split()).lower()) if h)


def owners(s: Session, team_ids: Iterable[int]) -> dict[int, int]:
    """{team id: member id} of the teams among ``team_ids`` whose blocker owner is an active member of
    the team; a team with none, or whose owner left, is not in it (its admins hear of blockers)."""
    stmt = (
        select(TeamSettings.team_id, Member.id)
        .join(Member, Member.id == TeamSettings.blocker_owner_id)
        .where(TeamSettings.team_id.in_(set(team_ids)), Member.team_id == TeamSettings.team_id, Member.active)
    )
    return dict(s.execute(stmt).all())


@cache
def _team_members() -> Select:
    return select(Member.id, Member.team_id, Member.email, Member.name, Member.role).where(
        in_list(Member.team_id, "teams"), Member.active
    )


def _hour(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def record(s: Session, entries: Iterable, *, now: datetime) -> int:
    """Notices for ``entries`` (rows with id, team_id, member_id, kind, mentions) just written in
    this transaction; the number of notices."""
    entries = [e for e in entries if e.kind == "blocker" or e.mentions]
    if not entries:
        return 0
    words: dict[int, set[str]] = {}  # the words mentioned, by team
    for e in entries:
        words.setdefault(e.team_id, set()).update(w.lower() for w in (e.mentions or "").split())
    members = s.connection().execute(_team_members(), {"teams": list(words)}).all()
    by_handle: dict[tuple[int, str], list[int]] = {}
    admins: dict[int, list[int]] = {}
    for m in members:
        if mentioned := words[m.team_id]:
            for h in handles(m.email, m.name or "") & mentioned:
                by_handle.setdefault((m.team_id, h), []).append(m.id)
        if m.role == "admin":
            admins.setdefault(m.team_id, []).append(m.id)
    blocked = {e.team_id for e in entries if e.kind == "blocker"}
    owner = owners(s, blocked) if blocked else {}
    hour, rows = _hour(now), []
    for e in entries:
        told: set[tuple[str, int]] = set()
        if e.kind == "blocker" and owner.get(e.team_id, e.member_id) != e.member_id:
            told.add(("blocker", owner[e.team_id]))
        elif e.kind == "blocker":
            told |= {("blocker", a) for a in admins.get(e.team_id, ()) if a != e.member_id}
        for word in (e.mentions or "").split():
            told |= {("mention", m) for m in by_handle.get((e.team_id, word.lower()), ()) if m != e.member_id}
        rows += [
            {"kind": k, "member_id": m, "entry_id": e.id, "hour": hour, "outcome": "", "created_at": now}
            for k, m in sorted(told)
        ]
    if rows:
        s.connection().execute(Notice.__table__.insert(), rows)
    return len(rows)


def resolve_by_reply(s: Session, member_id: int, texts: Iterable[str], *, now: datetime) -> int:
    """Resolve every open blocker of ``member_id`` when a line of their reply starts with
    "unblocked"; the number resolved. Called before the reply's own entries are written."""
    if not any(UNBLOCKED.match(t) for t in texts):
        return 0
    result = s.execute(
        update(Entry)
        .where(Entry.member_id == member_id, Entry.kind == "blocker", Entry.resolved_at.is_(None))
        .values(resolved_at=now, resolved_by=member_id)
    )
    return result.rowcount or 0


def resolve(s: Session, team_id: int, entry_id: int, *, by: int | None, admin: bool, now: datetime) -> Entry:
    """Mark the blocker ``entry_id`` of team ``team_id`` resolved by member ``by`` (None: an
    operator), who must be its author, ``admin`` or the team's blocker owner; NoticeError when it is
    no blocker of the team or they may not. Resolving a resolved blocker changes nothing."""
    e = s.get(Entry, entry_id)
    if e is None or e.team_id != team_id:
        raise NoticeError("no such entry in this team")
    if e.kind != "blocker":
        raise NoticeError(f"entry {entry_id} is not a blocker: there is nothing to resolve")
    if not admin and (by is None or by not in (e.member_id, owners(s, [team_id]).get(team_id))):
        raise NoticeError("only its author, an admin or the blocker owner resolves a blocker")
    if e.resolved_at is None:
        e.resolved_at, e.resolved_by = now, by
        s.add(e)
        s.flush()
    return e


def open_blockers(s: Session, team_id: int, *, limit: int = 200) -> list[tuple[Entry, Member]]:
    """The team's open blockers with their authors, oldest first."""
    stmt = (
        select(Entry, Member)
        .join(Member, Member.id == Entry.member_id)
        .where(Entry.team_id == team_id, Entry.kind == "blocker", Entry.resolved_at.is_(None))
        .order_by(Entry.created_at, Entry.id)
        .limit(limit)
    )
    return [(e, m) for e, m in s.execute(stmt).all()]


def still_blocked(s: Session, member_id: int, *, at: datetime) -> list[Entry]:
    """``member_id``'s blockers written more than STILL_BLOCKED_AFTER before ``at`` and still open."""
    stmt = (
        select(Entry)
        .where(
            Entry.member_id == member_id,
            Entry.kind == "blocker",
            Entry.resolved_at.is_(None),
            Entry.created_at <= at - STILL_BLOCKED_AFTER,
        )
        .order_by(Entry.created_at, Entry.id)
        .limit(MAX_STILL_BLOCKED)
    )
    return list(s.execute(stmt).scalars())


def still_blocked_many(
    s: Session, asks: Iterable[tuple[int, datetime]]
) -> dict[tuple[int, datetime], list[Entry]]:
    """{(member id, at): ``still_blocked(s, member id, at=at)``} in one query: each member's first
    MAX_STILL_BLOCKED open blockers as of the latest ``at`` asked; an earlier ``at`` lists those of
    them written early enough (they come first, the order being by time: the same list)."""
    asks = set(asks)
    if not asks:
        return {}
    latest = max(at for _, at in asks)
    params = {"ids": list({mid for mid, _ in asks}), "before": latest - STILL_BLOCKED_AFTER}
    rows = s.execute(_open_blockers(), params).scalars()
    found: dict[int, list[Entry]] = {}
    for e in rows:
        found.setdefault(e.member_id, []).append(e)
    return {
        (mid, at): [e for e in found.get(mid, []) if e.created_at <= at - STILL_BLOCKED_AFTER]
        for mid, at in asks
    }


@cache
def _open_blockers() -> Select:
    """still_blocked_many's statement, built once: the first MAX_STILL_BLOCKED open blockers of
    each member of :ids (one parameter: app.db.in_list) written by :before."""
    n = func.row_number().over(partition_by=Entry.member_id, order_by=(Entry.created_at, Entry.id))
    ranked = (
        select(Entry.id, n.label("n"))
        .where(
            in_list(Entry.__table__.c.member_id, "ids"),
            Entry.kind == "blocker",
            Entry.resolved_at.is_(None),
            Entry.created_at <= bindparam("before", type_=Entry.__table__.c.created_at.type),
        )
        .subquery()
    )
    return (
        select(Entry)
        .join(ranked, ranked.c.id == Entry.id)
        .where(ranked.c.n <= MAX_STILL_BLOCKED)
        .order_by(Entry.member_id, Entry.created_at, Entry.id)
    )


# ---------------------------------------------------------------- the tick's producer


def _subject(kind: str, team: Team, count: int) -> str:
    if kind == "mention":
        return f"{team.name}: you were mentioned" + (f" {count} times" if count > 1 else "")
    return f"{team.name}: {'a blocker' if count == 1 else f'{count} blockers'} reported"


def run_batch(s: Session, *, now: datetime, settings: Settings, batch: int) -> tuple[list[int], int]:
    """One batch in the caller's transaction: (ids of new outbox rows, notices handled)."""
    stmt = (
        select(Notice.id, Notice.kind, Notice.member_id, Notice.hour, Notice.entry_id)
        .where(Notice.outcome == "", Notice.hour <= now - HOUR)
        .order_by(Notice.hour, Notice.id)
        .limit(batch)
    )
    if s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    notices = s.execute(stmt).all()
    if not notices:
        return [], 0
    people = {
        m.id: (m, t)
        for m, t in s.execute(
            select(Member, Team)
            .join(Team, Team.id == Member.team_id)
            .where(Member.id.in_({n.member_id for n in notices}))
        ).all()
    }
    pauses = pauses_of(s, people, (now - timedelta(days=2)).date())
    present = set(s.execute(select(Entry.id).where(Entry.id.in_({n.entry_id for n in notices}))).scalars())
    groups: dict[tuple[int, str, datetime], list[int]] = {}
    outcomes: dict[int, str] = {}
    for n in notices:
        if n.entry_id in present:
            groups.setdefault((n.member_id, n.kind, n.hour), []).append(n.id)
        else:  # its entry was deleted before the hour's email
            outcomes[n.id] = "gone"
    domain = settings.mail_domain
    rows = []
    for (mid, kind, hour), ids in groups.items():
        member, team = people[mid]
        tz = member.timezone or team.timezone
        if not member.active:
            outcomes.update(dict.fromkeys(ids, "inactive"))
            continue
        if paused_on(local_date(now, tz), pauses.get(mid, ())):
            outcomes.update(dict.fromkeys(ids, "paused"))
            continue
        outcomes.update(dict.fromkeys(ids, "sent"))
        rows.append(
            {
                "idempotency_key": f"{kind}:{mid}:{hour:%Y-%m-%dT%H}",
                "kind": kind,
                "team_id": team.id,
                "member_id": mid,
                "to_addr": member.email,
                "subject": _subject(kind, team, len(ids)),
                "template": kind,
                "context": json.dumps({"hour": hour.isoformat()}),
                "message_id": outbox.new_message_id(domain),
                "expires_at": None,
            }
        )
    new = outbox.create_many(s, rows, now=now, lease_until=now + timedelta(seconds=settings.lease_s))
    made = (
        dict(
            s.execute(
                select(OutboundMessage.idempotency_key, OutboundMessage.id).where(
                    OutboundMessage.idempotency_key.in_([r["idempotency_key"] for r in rows])
                )
            ).all()
        )
        if rows
        else {}
    )
    by_key = {(mid, kind, hour): made.get(f"{kind}:{mid}:{hour:%Y-%m-%dT%H}") for mid, kind, hour in groups}
    changes = [{"b_id": i, "b_outcome": o, "b_outbox": None} for i, o in outcomes.items() if o == "gone"]
    for key, ids in groups.items():
        changes += [{"b_id": i, "b_outcome": outcomes[i], "b_outbox": by_key[key]} for i in ids]
    table = Notice.__table__
    s.connection().execute(
        table.update()
        .where(table.c.id == bindparam("b_id"))
        .values(outcome=bindparam("b_outcome"), outbox_id=bindparam("b_outbox")),
        changes,
    )
    return new, len(notices)


def run(*, now: datetime, settings: Settings, enqueue: Callable[[list[int]], None], batch: int | None = None):
    """Every notice of an hour that is over, batch after batch, each committed then enqueued; new ids."""
    batch = batch or settings.schedule_batch
    created: list[int] = []
    while True:
        with session() as s:
            ids, handled = run_batch(s, now=now, settings=settings, batch=batch)
        if ids:
            enqueue(ids)
            created += ids
        if handled < batch:
            return created


# ---------------------------------------------------------------- the emails' context


def notice_context(s: Session, msg: OutboundMessage, stored: dict, settings: Settings) -> dict:
    """What a mention or blocker email lists: the entries of its member's notices of its hour."""
    member, team = s.get(Member, msg.member_id), s.get(Team, msg.team_id)
    hour = datetime.fromisoformat(stored["hour"])
    rows = s.execute(
        select(Entry, Member)
        .join(Notice, Notice.entry_id == Entry.id)
        .join(Member, Member.id == Entry.member_id)
        .where(Notice.member_id == msg.member_id, Notice.kind == msg.kind, Notice.hour == hour)
        .order_by(Entry.id)
        .limit(MAX_LISTED + 1)
    ).all()
    return {
        "member": member,
        "team": team,
        "items": [(e, m) for e, m in rows[:MAX_LISTED]],
        "more": len(rows) > MAX_LISTED,
        "base_url": settings.base_url,
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": msg.kind},
    }


for _kind in KINDS:
    render.register_context(_kind, notice_context)
