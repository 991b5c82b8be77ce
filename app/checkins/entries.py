"""Entries written from the web or the API, search over them, and "on this day"."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta

from sqlalchemy import func, literal, literal_column, select, text
from sqlmodel import Session

from app.models import Entry, Member
from parsers.entries import split_entries, tags_and_mentions

KINDS = ("done", "goal", "blocker")
MAX_TEXT = 2000
_WORD = re.compile(r"\w+")


def tags_of(value: str) -> str:
    """'#a text @b #c' -> 'a c': the email path's tag rules (parsers.entries), space-separated."""
    return " ".join(tags_and_mentions(value)[0])[:1000]


def mentions_of(value: str) -> str:
    """The @mentions of a text by the email path's rules, space-separated like ``tags_of``."""
    return " ".join(tags_and_mentions(value)[1])[:1000]


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


def add(s: Session, member: Member, day: date, value: str, kind: str, *, now: datetime) -> list[Entry]:
    """Store the entries of ``value`` (one per line) for ``member`` on ``day``."""
    lines = [d.text for d in split_entries(value or "")]
    if not lines:
        raise EntryError("the entry is empty")
    out = []
    for line in lines:
        line, kind = clean(line, kind)
        e = Entry(
            team_id=member.team_id,
            member_id=member.id,
            day=day,
            text=line,
            kind=kind,
            tags=tags_of(line),
            mentions=mentions_of(line),
            created_at=now,
        )
        s.add(e)
        out.append(e)
    s.flush()
    return out


def update(s: Session, entry: Entry, value: str, kind: str) -> Entry:
    """Change an entry's text and kind (tags and mentions follow the text)."""
    entry.text, entry.kind = clean(value, kind)
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
