"""Export: a team's entries and comments of a span of days as CSV, JSON or NDJSON text, in chunks.

One table (COLUMNS), a row a record. An entry's row has its kind (done, goal, blocker, ...) and, for
a goal or a blocker, its ``status``: a goal is open, done or carried (``Entry.closed_as``), a
blocker open or resolved (``Entry.resolved_at``); other kinds have none (''). A comment (a reply to
the digest, app.checkins.comments) is a row of kind ``comment``: ``id`` is the comment's, the member
columns name its author, ``entry_id`` the entry it answers (which may since be deleted) or
``about_member_id`` the member it names; neither when it is on the day. Rows come in order of day,
then entries before comments, then id.

Entries and comments are each read CHUNK at a time by keyset pagination on (day, id), each chunk
in its own short session, and merged as they come, so an export of any size holds a chunk of each
in memory and no transaction open while the client reads.

CSV cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage
return) are written with a leading apostrophe (OWASP's "CSV injection" advice); the first line
names the columns. JSON is one array written as it goes; NDJSON is one object a line.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from itertools import chain, islice

from sqlalchemy import and_, or_, select

from app.db import session
from app.models import Comment, Entry, Member

FORMATS = ("csv", "json", "ndjson")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
COLUMNS = (
    "id",
    "day",
    "member_id",
    "member",
    "email",
    "kind",
    "text",
    "created_at",
    "status",  # a goal: open | done | carried; a blocker: open | resolved; else ''
    "entry_id",  # a comment: the entry it answers
    "about_member_id",  # a comment: the member it names
)
CHUNK = 500  # rows a statement reads (about 1 MB of Python objects at its peak)
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _keyset(stmt, day_col, id_col, *, chunk: int, row: Callable[[tuple], tuple]) -> Iterator[list[tuple]]:
    """Lists of at most ``chunk`` rows of ``stmt`` (already filtered) in order of day and id, read
    by keyset pagination on (``day_col``, ``id_col``), the first two columns it selects; one
    statement and one session a list, each row made by ``row``."""
    stmt = stmt.order_by(day_col, id_col).limit(chunk)
    after: tuple[date, int] | None = None
    while True:
        page = stmt
        if after is not None:
            page = page.where(or_(day_col > after[0], and_(day_col == after[0], id_col > after[1])))
        with session() as s:
            got = [tuple(r) for r in s.execute(page)]
        if not got:
            return
        yield [row(r) for r in got]
        if len(got) < chunk:
            return
        after = (got[-1][1], got[-1][0])


def status(kind: str, closed_as: str, resolved: bool) -> str:
    """A goal's status (open, done, carried) or a blocker's (open, resolved); '' for other kinds."""
    if kind == "goal":
        return closed_as or "open"
    if kind == "blocker":
        return "resolved" if resolved else "open"
    return ""


def _entry_row(r: tuple) -> tuple:
    *columns, closed_as, resolved_at = r
    return (*columns, status(r[5], closed_as, resolved_at is not None), None, None)


def _bounded(where: list, day_col, first: date | None, last: date | None) -> list:
    if first is not None:
        where.append(day_col >= first)
    if last is not None:
        where.append(day_col <= last)
    return where


def entry_rows(team_id: int, first: date | None, last: date | None, *, chunk: int) -> Iterator[list[tuple]]:
    """The team's entries of first..last (None: no bound) as COLUMNS rows, in chunks."""
    stmt = (
        select(
            Entry.id,
            Entry.day,
            Entry.member_id,
            Member.name,
            Member.email,
            Entry.kind,
            Entry.text,
            Entry.created_at,
            Entry.closed_as,
            Entry.resolved_at,
        )
        .join(Member, Member.id == Entry.member_id)
        .where(*_bounded([Entry.team_id == team_id], Entry.day, first, last))
    )
    return _keyset(stmt, Entry.day, Entry.id, chunk=chunk, row=_entry_row)


def comment_rows(team_id: int, first: date | None, last: date | None, *, chunk: int) -> Iterator[list[tuple]]:
    """The team's comments of first..last (by the day they are on) as COLUMNS rows, in chunks."""
    stmt = (
        select(
            Comment.id,
            Comment.day,
            Comment.author_id,
            Member.name,
            Member.email,
            Comment.text,
            Comment.created_at,
            Comment.entry_id,
            Comment.member_id,
        )
        .join(Member, Member.id == Comment.author_id)
        .where(*_bounded([Comment.team_id == team_id], Comment.day, first, last))
    )

    def row(r: tuple) -> tuple:
        cid, day, author, name, email, text, created_at, entry_id, about = r
        return (cid, day, author, name, email, "comment", text, created_at, "", entry_id, about)

    return _keyset(stmt, Comment.day, Comment.id, chunk=chunk, row=row)


def _order(row: tuple) -> tuple:
    return (row[1], row[5] == "comment", row[0])


def _chunked(items: Iterable[tuple], chunk: int) -> Iterator[list[tuple]]:
    it = iter(items)
    while got := list(islice(it, chunk)):
        yield got


def rows(team_id: int, first: date | None, last: date | None, *, chunk: int = CHUNK) -> Iterator[list[tuple]]:
    """Lists of at most ``chunk`` rows (COLUMNS) of the team's entries and comments of first..last
    (None: no bound), in order of day, entries before comments, and id; each source is read a
    chunk at a time, one statement and one session a chunk."""
    merged = heapq.merge(
        chain.from_iterable(entry_rows(team_id, first, last, chunk=chunk)),
        chain.from_iterable(comment_rows(team_id, first, last, chunk=chunk)),
        key=_order,
    )
    return _chunked(merged, chunk)


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ' before what would start a formula."""
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(FORMULA) else text


def _as_dict(row: tuple) -> dict:
    out = dict(zip(COLUMNS, row, strict=True))
    out["day"] = out["day"].isoformat()
    out["created_at"] = out["created_at"].isoformat() if out["created_at"] else None
    return out


def csv_text(chunks: Iterator[list[tuple]]) -> Iterator[str]:
    """The header line, then the CSV lines of each chunk of rows, one string a chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    for chunk in chunks:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([safe_cell(v) for v in row] for row in chunk)
        yield buffer.getvalue()


def json_text(chunks: Iterator[list[tuple]]) -> Iterator[str]:
    """One JSON array of objects (COLUMNS), written a chunk at a time."""
    yield "["
    sep = "\n"
    for chunk in chunks:
        yield sep + ",\n".join(json.dumps(_as_dict(r), ensure_ascii=False) for r in chunk)
        sep = ",\n"
    yield "\n]\n"


def ndjson_text(chunks: Iterator[list[tuple]]) -> Iterator[str]:
    """One JSON object (COLUMNS) a line."""
    for chunk in chunks:
        yield "".join(json.dumps(_as_dict(r), ensure_ascii=False) + "\n" for r in chunk)


WRITERS = {"csv": csv_text, "json": json_text, "ndjson": ndjson_text}


def export(
    team_id: int, first: date | None, last: date | None, fmt: str, *, chunk: int = CHUNK
) -> Iterator[bytes]:
    """The team's entries and comments of first..last in ``fmt`` (one of FORMATS), as UTF-8 bytes, a
    chunk at a time."""
    for text in WRITERS[fmt](rows(team_id, first, last, chunk=chunk)):
        yield text.encode("utf-8")


def filename(team_id: int, first: date | None, last: date | None, fmt: str) -> str:
    """The download's name, e.g. donebox-team-3-2026-11-01-2026-11-30.csv."""
    span = "-".join(d.isoformat() for d in (first, last) if d) or "all"
    return f"donebox-team-{team_id}-{span}.{fmt}"
