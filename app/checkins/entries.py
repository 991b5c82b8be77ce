"""Entries: the one writer of the Entry table (from the web, the API and processed replies), search
over them, "on this day", and the bounded reads pages and digests show.

What one reply or post creates is bounded (settings): at most MAX_ENTRIES_PER_REPLY entries (a
reply's further lines are dropped and a note says so on its inbound message; a form or API post
with more is refused) and MAX_ENTRY_CHARS characters an entry (a reply's longer line is cut and
ends in CUT). What a page or digest reads is bounded too (``first_per_member``): the first entries
of each member, their text cut at the same length (older rows predate the limits), and the count
of the rest.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from typing import NamedTuple

from sqlalchemy import (
    Integer,
    Select,
    Text,
    bindparam,
    case,
    delete,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from app.checkins import notices
from app.db import pg_insert_rows, sqlite_insert_rows
from app.models import Entry, InboundMessage, Member
from app.relay import webhooks
from app.settings import Settings
from parsers.answers import question_kind
from parsers.entries import KINDS, EntryDraft, split_entries, tags_and_mentions

MAX_TEXT = 2000  # for text a person types (refused beyond); a reply is cut at MAX_ENTRY_CHARS
MAX_WORDS = 1000  # Entry.tags and Entry.mentions
CUT = "… (cut)"  # ends an entry cut at MAX_ENTRY_CHARS
GOAL_CLOSED = ("done", "carried")  # how a goal closes (Entry.closed_as; app.checkins.goals)
MAX_NOTES = 4000  # InboundMessage.notes, as app.inbound.process bounds it
_WORD = re.compile(r"\w+")
_DEFAULTS = Settings()


def _joined(words: Iterable[str]) -> str:
    """Space-separated, whole words only, as many as fit in MAX_WORDS characters."""
    out: list[str] = []
    size = -1
    for word in words:
        size += len(word) + 1
        if size > MAX_WORDS:
            break
        out.append(word)
    return " ".join(out)


def tags_of(value: str) -> str:
    """'#a text @b #c' -> 'a c': the email path's tag rules (parsers.entries), space-separated."""
    return _joined(tags_and_mentions(value)[0])


def mentions_of(value: str) -> str:
    """The @mentions of a text by the email path's rules, space-separated like ``tags_of``."""
    return _joined(tags_and_mentions(value)[1])


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL characters in text, and hostile mail has them
    return value.replace("\x00", "\ufffd")


class EntryError(ValueError):
    """Raised with a reason a person can act on when an entry cannot be stored as given."""


def clean(value: str, kind: str) -> tuple[str, str]:
    """(text, kind) checked: one line, not empty, not too long, a known kind."""
    value = " ".join((value or "").split())
    if not value:
        raise EntryError("the entry is empty")
    if len(value) > MAX_TEXT:
        raise EntryError(f"the entry is longer than {MAX_TEXT} characters")
    if kind not in KINDS:
        raise EntryError(f"kind must be one of {', '.join(KINDS)}")
    return value, kind


def _row(
    line: str, kind: str, *, team_id: int, member_id: int, day: date, inbound_id, now, question=0
) -> dict:
    line = _storable(line)
    return {
        "team_id": team_id,
        "member_id": member_id,
        "day": day,
        "text": line,
        "kind": kind,
        "tags": tags_of(line),
        "mentions": mentions_of(line),
        "inbound_id": inbound_id,
        "created_at": now,
        "question": question,
        "closed_on": None,
        "closed_as": "",
    }


def cut(value: str, limit: int) -> str:
    """``value`` if it has at most ``limit`` characters, else its start ending in CUT (``limit`` in all)."""
    return value if len(value) <= limit else value[: max(0, limit - len(CUT))].rstrip() + CUT


def add(
    s: Session,
    member: Member,
    day: date,
    value: str,
    kind: str,
    *,
    now: datetime,
    settings: Settings | None = None,
    questions: Sequence[str] = (),
) -> list[Entry]:
    """Store the entries of ``value`` (one per line, split as a reply is) for ``member`` on ``day``;
    ``kind`` is theirs unless a line sets its own with a prefix such as "Blocked:". Each answers the
    first of the team's ``questions`` of its kind (parsers.answers.question_kind), else the first.
    Raises EntryError past MAX_ENTRIES_PER_REPLY entries (a person can shorten the text and retry)."""
    drafts = split_entries(value or "")
    if not drafts:
        raise EntryError("the entry is empty")
    most = (settings or _DEFAULTS).max_entries_per_reply
    if len(drafts) > most:
        raise EntryError(f"at most {most} entries at once, not {len(drafts)}")
    out = []
    notices.resolve_by_reply(s, member.id, [d.text for d in drafts], now=now)
    for draft in drafts:
        line, line_kind = clean(draft.text, kind if draft.kind == "done" else draft.kind)
        kinds = [question_kind(q) for q in questions]
        e = Entry(
            **_row(
                line,
                line_kind,
                team_id=member.team_id,
                member_id=member.id,
                day=day,
                inbound_id=None,
                now=now,
                question=kinds.index(line_kind) if line_kind in kinds else 0,
            )
        )
        s.add(e)
        out.append(e)
    s.flush()
    webhooks.emit(s, "entry_created", [(e.team_id, created(e, member)) for e in out], now=now)
    notices.record(s, out, now=now)
    return out


def created(e: Entry, member: Member | None = None) -> dict:
    """What an entry_created webhook says of an entry."""
    entry = {
        "id": e.id,
        "member_id": e.member_id,
        "day": e.day.isoformat(),
        "kind": e.kind,
        "text": e.text,
        "tags": e.tags.split(),
        "mentions": e.mentions.split(),
        "inbound_id": e.inbound_id,
    }
    if member is not None:
        entry["member"] = {"email": member.email, "name": member.name}
    return {"entry": entry}


class _Written(NamedTuple):
    """An entry row just inserted, as ``notices.record`` reads it."""

    id: int
    team_id: int
    member_id: int
    day: date
    text: str
    kind: str
    tags: str
    mentions: str
    inbound_id: int | None
    created_at: datetime
    question: int = 0
    closed_on: date | None = None
    closed_as: str = ""


class Reply(NamedTuple):
    """The entry drafts of one processed reply and whose they are: what ``add_many`` stores."""

    team_id: int
    member_id: int
    day: date
    inbound_id: int | None
    drafts: Sequence[EntryDraft]


_TABLE_IN = InboundMessage.__table__
_NOTE = bindparam("note", type_=Text())
_ADD_NOTE = (
    _TABLE_IN.update()
    .where(_TABLE_IN.c.id == bindparam("iid"))
    .values(
        notes=func.substr(
            case(
                (_TABLE_IN.c.notes == literal("", Text()), _NOTE),
                else_=_TABLE_IN.c.notes + literal("\n", Text()) + _NOTE,
            ),
            1,
            MAX_NOTES,
        )
    )
)


def add_notes(s: Session, notes: Iterable[tuple[int, str]]) -> None:
    """Append each (inbound id, note) to that inbound message's notes (one executemany UPDATE)."""
    rows = [{"iid": iid, "note": note} for iid, note in notes]
    if rows:
        s.connection().execute(_ADD_NOTE, rows)


def _bounded(r: Reply, most: int, chars: int) -> tuple[list[tuple[str, str, int]], str]:
    """(text, kind, question) of the drafts of ``r`` within the limits, and a note of what was cut
    ('' if nothing)."""
    kept = [(cut(d.text, chars), d.kind, d.question) for d in r.drafts[:most]]
    notes = []
    if len(r.drafts) > most:
        notes.append(
            f"entries cut: the reply made {len(r.drafts)} entries, the first {most} are stored "
            "(MAX_ENTRIES_PER_REPLY)"
        )
    long = sum(1 for d in r.drafts[:most] if len(d.text) > chars)
    if long:
        notes.append(f"{long} entr{'y' if long == 1 else 'ies'} cut at {chars} characters (MAX_ENTRY_CHARS)")
    return kept, "; ".join(notes)


def _insert(s: Session, rows: list[dict], *, returning: bool) -> list[int] | None:
    """Insert the entries ``rows`` (as ``_row`` makes them); their ids in the rows' order when
    ``returning``, else None."""
    table, conn = Entry.__table__, s.connection()
    if conn.dialect.name == "postgresql":
        tail = "RETURNING id" if returning else ""
        made = pg_insert_rows(conn, table, rows, tail=tail)  # a statement psycopg converts once
        return sorted(made.scalars().all()) if returning else None  # ids ascend with the rows' order
    return sqlite_insert_rows(conn, table, rows, returning_ids=returning)


def add_many(
    s: Session,
    replies: Iterable[Reply],
    *,
    now: datetime,
    settings: Settings | None = None,
    listening: dict[int, list[int]] | None = None,
) -> int:
    """Store the drafts of every reply (kinds as the reply set them, text as written, within
    MAX_ENTRIES_PER_REPLY and MAX_ENTRY_CHARS) in one executemany INSERT, which the driver sends as
    multi-row INSERTs; the number of entries. A blocker or an @mention records who must hear of it
    (app.checkins.notices) in the same transaction; a line starting "unblocked" resolves the
    author's open blockers first. A reply that was cut gets a note on its inbound
    message (one more executemany UPDATE, only when something was cut). The entry_created webhooks
    are owed to ``listening`` ({team id: endpoint ids}; looked up when None)."""
    settings = settings or _DEFAULTS
    rows, notes = [], []
    for r in replies:
        kept, note = _bounded(r, settings.max_entries_per_reply, settings.max_entry_chars)
        notices.resolve_by_reply(s, r.member_id, [line for line, *_ in kept], now=now)
        if note and r.inbound_id is not None:
            notes.append({"iid": r.inbound_id, "note": note})
        rows += [
            _row(
                line,
                kind,
                team_id=r.team_id,
                member_id=r.member_id,
                day=r.day,
                inbound_id=r.inbound_id,
                now=now,
                question=question,
            )
            for line, kind, question in kept
        ]
    if rows:
        # someone must hear of blockers and mentions: their ids, for the notices written in this
        # transaction
        ids = _insert(s, rows, returning=any(r["kind"] == "blocker" or r["mentions"] for r in rows))
        if ids is not None:
            notices.record(s, [_Written(i, **r) for i, r in zip(ids, rows, strict=True)], now=now)
        _emit_created(s, rows, now=now, to=listening)
    if notes:
        s.connection().execute(_ADD_NOTE, notes)
    return len(rows)


def replace_reply(
    s: Session, reply: Reply, *, now: datetime, settings: Settings | None = None
) -> tuple[int, int]:
    """Replace the entries a processed reply made (those of ``reply.inbound_id``) with its drafts, stored
    as ``add_many`` stores them (limits, notices, webhooks); (entries deleted, entries stored). A notice
    of a deleted entry that has not gone out yet is left out of its email (app.checkins.notices)."""
    if reply.inbound_id is None:
        raise EntryError("only the entries of a stored reply are replaced")
    table = Entry.__table__
    gone = s.connection().execute(delete(table).where(table.c.inbound_id == reply.inbound_id)).rowcount
    return gone, add_many(s, [reply], now=now, settings=settings)


def _emit_created(s: Session, rows: list[dict], *, now: datetime, to: dict[int, list[int]] | None) -> None:
    """entry_created webhooks of the replies' new entries: read back (by their inbound messages)
    only for teams with an endpoint that wants them (``to``: webhooks.listening's answer, if asked)."""
    if to is None:
        to = webhooks.listening(s, (r["team_id"] for r in rows), ["entry_created"])["entry_created"]
    inbound_ids = sorted(
        {r["inbound_id"] for r in rows if r["team_id"] in to and r["inbound_id"] is not None}
    )
    if not inbound_ids:
        return
    stmt = (
        select(Entry, Member)
        .join(Member, Member.id == Entry.member_id)
        .where(Entry.inbound_id.in_(inbound_ids))
    )
    made = s.execute(stmt.order_by(Entry.id)).all()
    webhooks.emit(s, "entry_created", [(e.team_id, created(e, m)) for e, m in made], now=now, to=to)


def update(s: Session, entry: Entry, value: str, kind: str) -> Entry:
    """Change an entry's text and kind (tags and mentions follow the text)."""
    cleaned, entry.kind = clean(value, kind)
    entry.text = _storable(cleaned)
    entry.tags, entry.mentions = tags_of(entry.text), mentions_of(entry.text)
    s.add(entry)
    s.flush()
    return entry


def close_goal(s: Session, goal: Entry, how: str, *, day: date, now) -> Entry | None:
    """Close ``goal`` on ``day`` as done or carried (a goal already closed stays as it was); carrying
    adds the same goal to ``day``, which is returned (else None)."""
    if how not in GOAL_CLOSED:
        raise EntryError(f"a goal closes as {' or '.join(GOAL_CLOSED)}, not {how[:32]!r}")
    if goal.kind != "goal":
        raise EntryError(f"entry {goal.id} is not a goal")
    if goal.closed_on is not None:
        return None
    goal.closed_on, goal.closed_as = day, how
    s.add(goal)
    again = None
    if how == "carried":
        again = Entry(
            team_id=goal.team_id,
            member_id=goal.member_id,
            day=day,
            text=goal.text,
            kind="goal",
            tags=goal.tags,
            mentions=goal.mentions,
            question=goal.question,
            created_at=now,
        )
        s.add(again)
    s.flush()
    return again


def _has_word(column, word: str):
    word = word.lower().replace("\\", "").replace("%", "").replace("_", "\\_")
    return (literal(" ") + func.lower(column) + literal(" ")).like(f"% {word} %", escape="\\")


def search(
    s: Session,
    team_id: int,
    q: str = "",
    *,
    tag: str = "",
    mention: str = "",
    member_id: int | None = None,
    day: date | None = None,
    limit: int = 200,
    everything: bool = False,
) -> list[Entry]:
    """The team's entries matching every word of ``q`` (full-text) and each filter given, newest first;
    no filter at all finds nothing unless ``everything``."""
    stmt = select(Entry).where(Entry.team_id == team_id)
    words = _WORD.findall(q or "")[:12]
    if words:
        if s.get_bind().dialect.name == "sqlite":
            match = " ".join(f'"{w}"' for w in words)  # quoted: FTS5 operators in input mean nothing
            ids = text("SELECT rowid FROM entry_fts WHERE entry_fts MATCH :m").bindparams(m=match)
            stmt = stmt.where(Entry.id.in_(ids))
        else:
            # exactly the expression of ix_entry_text_fts, config inline (a bound one hides the index)
            simple = literal_column("'simple'::regconfig")
            vector = func.to_tsvector(simple, Entry.text)
            stmt = stmt.where(vector.op("@@")(func.plainto_tsquery(simple, " ".join(words))))
    if tag:
        stmt = stmt.where(_has_word(Entry.tags, tag))
    if mention:
        stmt = stmt.where(_has_word(Entry.mentions, mention))
    if member_id is not None:
        stmt = stmt.where(Entry.member_id == member_id)
    if day is not None:
        stmt = stmt.where(Entry.day == day)
    if not (words or tag or mention or member_id is not None or day is not None or everything):
        return []
    return list(s.execute(stmt.order_by(Entry.day.desc(), Entry.id.desc()).limit(limit)).scalars())


def month_ago(day: date, months: int = 1) -> date:
    """The same day ``months`` earlier, clamped to the month's last day."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


def on_this_day(
    s: Session, member_id: int, today: date, *, per_day: int = 20, chars: int = 2000
) -> list[tuple[str, date, list[Shown]]]:
    """What the member did a week, a month and a year ago: (label, day, the first ``per_day``
    entries, text cut at ``chars``), empty days left out."""
    out = []
    for label, day in (
        ("A week ago", today - timedelta(days=7)),
        ("A month ago", month_ago(today)),
        ("A year ago", month_ago(today, 12)),
    ):
        rows = s.execute(
            select(*_shown_columns(chars))
            .where(Entry.member_id == member_id, Entry.day == day)
            .order_by(Entry.id)
            .limit(per_day)
        ).all()
        if rows:
            out.append((label, day, [Shown(*r[:5], cut(r[5], chars), *r[6:]) for r in rows]))
    return out


def _shown_columns(chars) -> tuple:
    """The columns of a Shown, the text read one character past ``chars`` (so ``cut`` can tell)."""
    return (
        Entry.id,
        Entry.team_id,
        Entry.member_id,
        Entry.day,
        Entry.kind,
        func.substr(Entry.text, 1, chars + 1).label("text"),
        Entry.question,
        Entry.inbound_id,
    )


class Shown(NamedTuple):
    """An entry as a page or a digest shows it: its text cut at MAX_ENTRY_CHARS."""

    id: int
    team_id: int
    member_id: int
    day: date
    kind: str
    text: str
    question: int = 0  # which of the team's questions it answers
    inbound_id: int | None = None  # the reply it came from (None: written on the web or the API)


class Shelf(NamedTuple):
    """One member's entries of a span as shown: the first ones, the blockers, and the counts."""

    entries: list[Shown]  # the first ``per_member``, in order of day and id
    blockers: list[Shown]  # the first ``per_member`` blockers, in order (maybe beyond ``entries``)
    total: int  # every entry of the member in the span
    blocker_total: int

    @property
    def more(self) -> int:
        """Entries not in ``entries``."""
        return self.total - len(self.entries)


def first_per_member(
    s: Session, team_id: int, first: date, last: date, *, per_member: int, chars: int
) -> dict[int, Shelf]:
    """{member id: Shelf} of the team's entries of days first..last, in one query however many there
    are: at most ``per_member`` entries and ``per_member`` blockers a member, text cut at ``chars``."""
    in_order = (Entry.day, Entry.id)
    is_blocker = case((Entry.kind == "blocker", 1), else_=0)
    ranked = (
        select(
            *_shown_columns(chars),
            func.row_number().over(partition_by=Entry.member_id, order_by=in_order).label("n"),
            func.row_number().over(partition_by=(Entry.member_id, is_blocker), order_by=in_order).label("nb"),
            func.count().over(partition_by=Entry.member_id).label("total"),
            func.sum(is_blocker).over(partition_by=Entry.member_id).label("blocker_total"),
        )
        .where(Entry.team_id == team_id, Entry.day >= first, Entry.day <= last)
        .subquery()
    )
    rows = s.execute(
        select(ranked)
        .where((ranked.c.n <= per_member) | ((ranked.c.kind == "blocker") & (ranked.c.nb <= per_member)))
        .order_by(ranked.c.member_id, ranked.c.n)
    ).all()
    out: dict[int, Shelf] = {}
    for r in rows:
        _shelve(out, r, per_member=per_member, chars=chars)
    return out


def _shelve(shelves: dict[int, Shelf], r, *, per_member: int, chars: int) -> None:
    """Put one ranked row (n, nb, total, blocker_total beside the entry's columns) on its member's
    shelf: among the entries when within the first ``per_member``, among the blockers likewise."""
    shelf = shelves.setdefault(r.member_id, Shelf([], [], r.total, int(r.blocker_total or 0)))
    shown = Shown(r.id, r.team_id, r.member_id, r.day, r.kind, cut(r.text, chars), r.question, r.inbound_id)
    if r.n <= per_member:
        shelf.entries.append(shown)
    if r.kind == "blocker" and r.nb <= per_member:
        shelf.blockers.append(shown)


def shelves_of_days(
    s: Session, pairs: Iterable[tuple[int, date]], *, per_member: int, chars: int
) -> dict[tuple[int, date], dict[int, Shelf]]:
    """{(team id, day): ``first_per_member(s, team id, day, day, ...)``} of each pair, in one query."""
    pairs = set(pairs)
    out: dict[tuple[int, date], dict[int, Shelf]] = {p: {} for p in pairs}
    if not pairs:
        return out
    dialect = s.get_bind().dialect.name
    params: dict = {"chars": chars, "per_member": per_member}
    if dialect == "postgresql":
        params |= {"teams": [t for t, _ in pairs], "days": [d for _, d in pairs]}
    else:
        params["pairs"] = list(pairs)
    for r in s.execute(_shelves(dialect), params).all():
        _shelve(out[r.team_id, r.day], r, per_member=per_member, chars=chars)
    return out


@cache
def _shelves(dialect: str) -> Select:
    """shelves_of_days' statement, built once per dialect: on PostgreSQL the (team, day) pairs
    bound as two arrays (:teams, :days), one text whatever their number; elsewhere as an expanding
    IN of :pairs. The text read to :chars + 1 characters, :per_member entries a member."""
    if dialect == "postgresql":
        listed = func.unnest(
            bindparam("teams", type_=postgresql.ARRAY(Entry.__table__.c.team_id.type)),
            bindparam("days", type_=postgresql.ARRAY(Entry.__table__.c.day.type)),
        )
        listed = listed.table_valued("team_id", "day").render_derived()
        chosen = tuple_(Entry.team_id, Entry.day).in_(select(listed.c.team_id, listed.c.day))
    else:
        chosen = tuple_(Entry.team_id, Entry.day).in_(bindparam("pairs", expanding=True))
    in_order = (Entry.day, Entry.id)
    is_blocker = case((Entry.kind == "blocker", 1), else_=0)
    whose = (Entry.team_id, Entry.day, Entry.member_id)
    ranked = (
        select(
            *_shown_columns(bindparam("chars", type_=Integer)),
            func.row_number().over(partition_by=whose, order_by=in_order).label("n"),
            func.row_number().over(partition_by=(*whose, is_blocker), order_by=in_order).label("nb"),
            func.count().over(partition_by=whose).label("total"),
            func.sum(is_blocker).over(partition_by=whose).label("blocker_total"),
        )
        .where(chosen)
        .subquery()
    )
    per_member = bindparam("per_member", type_=Integer)
    return (
        select(ranked)
        .where((ranked.c.n <= per_member) | ((ranked.c.kind == "blocker") & (ranked.c.nb <= per_member)))
        .order_by(ranked.c.team_id, ranked.c.day, ranked.c.member_id, ranked.c.n)
    )
