"""Entries: the one writer of the Entry table (from the web, the API and processed replies), search
over them, and "on this day"."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, literal, literal_column, select, text
from sqlmodel import Session

from app.models import Entry, Member
from parsers.entries import KINDS, EntryDraft, split_entries, tags_and_mentions

MAX_TEXT = 2000  # for text a person types; a reply is stored as it was written
MAX_WORDS = 1000  # Entry.tags and Entry.mentions
_WORD = re.compile(r"\w+")


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


def _row(line: str, kind: str, *, team_id: int, member_id: int, day: date, inbound_id, now) -> dict:
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
    }


def add(s: Session, member: Member, day: date, value: str, kind: str, *, now: datetime) -> list[Entry]:
    """Store the entries of ``value`` (one per line, split as a reply is) for ``member`` on ``day``;
    ``kind`` is theirs unless a line sets its own with a prefix such as "Blocked:"."""
    drafts = split_entries(value or "")
    if not drafts:
        raise EntryError("the entry is empty")
    out = []
    for draft in drafts:
        line, line_kind = clean(draft.text, kind if draft.kind == "done" else draft.kind)
        e = Entry(
            **_row(
                line,
                line_kind,
                team_id=member.team_id,
                member_id=member.id,
                day=day,
                inbound_id=None,
                now=now,
            )
        )
        s.add(e)
        out.append(e)
    s.flush()
    return out


class Reply(NamedTuple):
    """The entry drafts of one processed reply and whose they are: what ``add_many`` stores."""

    team_id: int
    member_id: int
    day: date
    inbound_id: int | None
    drafts: Sequence[EntryDraft]


def add_many(s: Session, replies: Iterable[Reply], *, now: datetime) -> int:
    """Store the drafts of every reply (kinds as the reply set them, text as written) in one
    executemany INSERT, which the driver sends as multi-row INSERTs; the number of entries."""
    rows = [
        _row(
            d.text,
            d.kind,
            team_id=r.team_id,
            member_id=r.member_id,
            day=r.day,
            inbound_id=r.inbound_id,
            now=now,
        )
        for r in replies
        for d in r.drafts
    ]
    if rows:
        s.connection().execute(Entry.__table__.insert(), rows)
    return len(rows)


def update(s: Session, entry: Entry, value: str, kind: str) -> Entry:
    """Change an entry's text and kind (tags and mentions follow the text)."""
    cleaned, entry.kind = clean(value, kind)
    entry.text = _storable(cleaned)
    entry.tags, entry.mentions = tags_of(entry.text), mentions_of(entry.text)
    s.add(entry)
    s.flush()
    return entry


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


def on_this_day(s: Session, member_id: int, today: date) -> list[tuple[str, date, list[Entry]]]:
    """What the member did a week, a month and a year ago: (label, day, entries), empty days left out."""
    out = []
    for label, day in (
        ("A week ago", today - timedelta(days=7)),
        ("A month ago", month_ago(today)),
        ("A year ago", month_ago(today, 12)),
    ):
        rows = s.execute(
            select(Entry).where(Entry.member_id == member_id, Entry.day == day).order_by(Entry.id)
        ).scalars()
        rows = list(rows)
        if rows:
            out.append((label, day, rows))
    return out
