"""Export: a team's entries of a span of days as CSV, JSON or NDJSON text, produced in chunks.

The rows are read CHUNK at a time by keyset pagination on (day, id), each chunk in its own short
session, so an export of any size holds one chunk in memory and no transaction open while the
client reads. Goals and blockers are entries of that kind; comments do not exist yet.

CSV cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage
return) are written with a leading apostrophe (OWASP's "CSV injection" advice); the first line
names the columns. JSON is one array written as it goes; NDJSON is one object a line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date

from sqlalchemy import and_, or_, select

from app.db import session
from app.models import Entry, Member

FORMATS = ("csv", "json", "ndjson")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
COLUMNS = ("id", "day", "member_id", "member", "email", "kind", "text", "created_at")
CHUNK = 500  # rows a statement reads (about 1 MB of Python objects at its peak)
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def rows(team_id: int, first: date | None, last: date | None, *, chunk: int = CHUNK) -> Iterator[list[tuple]]:
    """Lists of at most ``chunk`` rows (COLUMNS) of the team's entries of first..last (None: no
    bound), in order of day and id; one statement and one session a list."""
    where = [Entry.team_id == team_id]
    if first is not None:
        where.append(Entry.day >= first)
    if last is not None:
        where.append(Entry.day <= last)
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
        )
        .join(Member, Member.id == Entry.member_id)
        .order_by(Entry.day, Entry.id)
        .limit(chunk)
    )
    after: tuple[date, int] | None = None
    while True:
        page = stmt.where(*where)
        if after is not None:
            page = page.where(or_(Entry.day > after[0], and_(Entry.day == after[0], Entry.id > after[1])))
        with session() as s:
            got = [tuple(r) for r in s.execute(page)]
        if not got:
            return
        yield got
        if len(got) < chunk:
            return
        after = (got[-1][1], got[-1][0])


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
    """The team's entries of first..last in ``fmt`` (one of FORMATS), as UTF-8 bytes, a chunk at a time."""
    for text in WRITERS[fmt](rows(team_id, first, last, chunk=chunk)):
        yield text.encode("utf-8")


def filename(team_id: int, first: date | None, last: date | None, fmt: str) -> str:
    """The download's name, e.g. donebox-team-3-2026-11-01-2026-11-30.csv."""
    span = "-".join(d.isoformat() for d in (first, last) if d) or "all"
    return f"donebox-team-{team_id}-{span}.{fmt}"
