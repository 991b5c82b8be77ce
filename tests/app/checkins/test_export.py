"""Export: a team's entries as CSV, JSON and NDJSON, read in chunks, safe in a spreadsheet."""

import csv
import io
import json
import tracemalloc
from datetime import UTC, date, datetime, timedelta

import pytest

from app.checkins.export import COLUMNS, export, filename, safe_cell
from app.db import session
from app.models import Comment, Entry, Member, Team
from tests.conftest import FIXED_NOW

DAY0 = date(2026, 1, 1)


def _team(name="Exports") -> tuple[int, dict[str, int]]:
    with session() as s:
        t = Team(name=name, timezone="UTC")
        s.add(t)
        s.flush()
        ids = {}
        for who in ("Ada", "=Bob"):
            m = Member(team_id=t.id, email=f"{who.strip('=').lower()}@x.example", name=who)
            s.add(m)
            s.flush()
            ids[who] = m.id
        return t.id, ids


def _fill(team_id: int, members: list[int], n: int, text: str = "shipped the thing number {i}") -> None:
    rows = [
        {
            "team_id": team_id,
            "member_id": members[i % len(members)],
            "day": DAY0 + timedelta(days=i % 400),
            "text": text.format(i=i),
            "kind": "done",
            "tags": "",
            "mentions": "",
            "created_at": FIXED_NOW,
        }
        for i in range(n)
    ]
    with session() as s:
        for i in range(0, n, 10_000):
            s.connection().execute(Entry.__table__.insert(), rows[i : i + 10_000])


def _text(team_id, fmt, first=None, last=None, chunk=1000) -> str:
    return b"".join(export(team_id, first, last, fmt, chunk=chunk)).decode()


@pytest.mark.parametrize("value", ["=1+1", "+41 79", "-2", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("x")'])
def test_a_cell_a_spreadsheet_would_run_as_a_formula_starts_with_an_apostrophe(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "1+1=2", "a=b", "", " =x"])
def test_other_cells_are_left_as_written(value):
    assert safe_cell(value) == value


def test_csv_has_a_header_and_neutralizes_formulas_in_every_text_column(db):
    tid, ids = _team()
    with session() as s:
        s.add(Entry(team_id=tid, member_id=ids["=Bob"], day=DAY0, text="=cmd|' /C calc'!A0", kind="done"))
        s.add(Entry(team_id=tid, member_id=ids["Ada"], day=DAY0, text='a "quoted", line', kind="goal"))
    lines = list(csv.reader(io.StringIO(_text(tid, "csv"))))
    assert lines[0] == list(COLUMNS)
    bob, ada = {r[3]: r for r in lines[1:]}["'=Bob"], {r[3]: r for r in lines[1:]}["Ada"]
    assert bob[6] == "'=cmd|' /C calc'!A0"
    assert ada[5:7] == ["goal", 'a "quoted", line']
    assert ada[1] == "2026-01-01"


def test_the_span_bounds_the_days_and_rows_come_in_day_order_across_chunks(db):
    tid, ids = _team()
    _fill(tid, list(ids.values()), 50)
    other, other_ids = _team("Other")
    _fill(other, list(other_ids.values()), 5, "not ours {i}")
    rows = [
        json.loads(line)
        for line in _text(tid, "ndjson", DAY0 + timedelta(days=10), DAY0 + timedelta(days=19), 3).splitlines()
    ]
    assert len(rows) == 10
    assert [r["day"] for r in rows] == sorted(r["day"] for r in rows)
    assert {r["day"] for r in rows} == {(DAY0 + timedelta(days=i)).isoformat() for i in range(10, 20)}
    assert all(r["text"].startswith("shipped") for r in rows)
    whole = json.loads(_text(tid, "json", chunk=7))
    assert len(whole) == 50 and [r["id"] for r in whole] == sorted(r["id"] for r in whole)
    assert json.loads(_text(tid, "json", date(2030, 1, 1), None)) == []
    assert _text(tid, "ndjson", date(2030, 1, 1), None) == ""
    assert _text(tid, "csv", date(2030, 1, 1), None).splitlines() == [",".join(COLUMNS)]
    assert filename(tid, None, None, "csv") == f"donebox-team-{tid}-all.csv"
    assert filename(tid, DAY0, date(2026, 1, 31), "json") == f"donebox-team-{tid}-2026-01-01-2026-01-31.json"


N = 100_000


def test_100000_entries_stream_in_a_small_fraction_of_their_size(db, tmp_path):
    tid, ids = _team()
    _fill(tid, list(ids.values()), N, "entry {i}: " + "words of a realistic length " * 3)
    for fmt in ("csv", "json"):
        out = tmp_path / f"export.{fmt}"
        chunks = size = 0
        tracemalloc.start()
        try:
            with out.open("wb") as f:  # the output goes to a file: only the export's own memory is traced
                for chunk in export(tid, None, None, fmt):
                    f.write(chunk)
                    size += len(chunk)
                    chunks += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        print(f"{fmt}: {size} bytes in {chunks} chunks, peak {peak} bytes traced")
        assert size > 10_000_000 and chunks > 100
        assert peak < size / 10, (fmt, peak, size)
        with out.open(encoding="utf-8", newline="") as f:
            if fmt == "csv":
                rows = list(csv.reader(f))
                assert rows[0] == list(COLUMNS) and len(rows) == N + 1
                assert len({r[0] for r in rows[1:]}) == N
            else:
                rows = json.load(f)
                assert len(rows) == N and len({r["id"] for r in rows}) == N
                assert datetime.fromisoformat(rows[0]["created_at"]) == FIXED_NOW.astimezone(UTC)


def _goals_blockers_and_comments(tid: int, ids: dict[str, int]) -> dict[str, int]:
    """Goals open, done and carried, blockers open and resolved, and three comments (on an entry, a
    member and a day) over DAY0 and the day after; ids by name."""
    day1 = DAY0 + timedelta(days=1)
    with session() as s:
        made = {}
        for name, who, day, kind, text, extra in (
            ("open_goal", "Ada", DAY0, "goal", "write the spec", {}),
            ("done_goal", "Ada", DAY0, "goal", "fix the build", {"closed_on": day1, "closed_as": "done"}),
            ("carried_goal", "=Bob", DAY0, "goal", "ship it", {"closed_on": day1, "closed_as": "carried"}),
            ("open_blocker", "=Bob", DAY0, "blocker", "no staging database", {}),
            ("resolved_blocker", "Ada", day1, "blocker", "waiting on review", {"resolved_at": FIXED_NOW}),
            ("done", "Ada", day1, "done", "merged the fix", {}),
        ):
            e = Entry(
                team_id=tid, member_id=ids[who], day=day, kind=kind, text=text, created_at=FIXED_NOW, **extra
            )
            s.add(e)
            s.flush()
            made[name] = e.id
        for name, who, day, entry_id, about, text in (
            ("on_entry", "Ada", DAY0, made["open_blocker"], None, '=HYPERLINK("x") who can help?'),
            ("on_member", "=Bob", DAY0, None, ids["Ada"], "thanks Ada"),
            ("on_day", "Ada", day1, None, None, "a good day"),
        ):
            c = Comment(
                team_id=tid, day=day, entry_id=entry_id, member_id=about, author_id=ids[who], text=text,
                created_at=FIXED_NOW,
            )  # fmt: skip
            s.add(c)
            s.flush()
            made[name] = c.id
        return made


def test_comments_are_rows_of_their_own_and_goals_and_blockers_carry_their_status(db):
    tid, ids = _team()
    made = _goals_blockers_and_comments(tid, ids)
    other, other_ids = _team("Other")
    _goals_blockers_and_comments(other, other_ids)  # not ours
    for chunk in (1, 2, 1000):  # the two sources merged in order whatever the chunk
        rows = [json.loads(line) for line in _text(tid, "ndjson", chunk=chunk).splitlines()]
        assert [(r["kind"], r["id"]) for r in rows] == [
            ("goal", made["open_goal"]),
            ("goal", made["done_goal"]),
            ("goal", made["carried_goal"]),
            ("blocker", made["open_blocker"]),
            ("comment", made["on_entry"]),  # a day's comments after its entries
            ("comment", made["on_member"]),
            ("blocker", made["resolved_blocker"]),
            ("done", made["done"]),
            ("comment", made["on_day"]),
        ], chunk
    by = {(r["kind"], r["id"]): r for r in rows}
    assert [by["goal", made[g]]["status"] for g in ("open_goal", "done_goal", "carried_goal")] == [
        "open",
        "done",
        "carried",
    ]
    assert by["blocker", made["open_blocker"]]["status"] == "open"
    assert by["blocker", made["resolved_blocker"]]["status"] == "resolved"
    assert by["done", made["done"]]["status"] == ""
    on_entry = by["comment", made["on_entry"]]
    assert (on_entry["member"], on_entry["email"], on_entry["day"]) == ("Ada", "ada@x.example", "2026-01-01")
    assert (on_entry["entry_id"], on_entry["about_member_id"], on_entry["status"]) == (
        made["open_blocker"],
        None,
        "",
    )
    assert (
        by["comment", made["on_member"]]["entry_id"],
        by["comment", made["on_member"]]["about_member_id"],
    ) == (
        None,
        ids["Ada"],
    )
    assert (
        by["comment", made["on_day"]]["entry_id"] is None is by["comment", made["on_day"]]["about_member_id"]
    )
    assert by["done", made["done"]]["entry_id"] is None

    lines = list(csv.reader(io.StringIO(_text(tid, "csv", chunk=2))))  # one table, the same columns
    assert lines[0] == list(COLUMNS) and len(lines) == 10 and {len(line) for line in lines} == {len(COLUMNS)}
    comment = next(r for r in lines if r[0] == str(made["on_entry"]) and r[5] == "comment")
    assert comment[6] == '\'=HYPERLINK("x") who can help?'  # a comment's text neutralized too
    assert comment[8:] == ["", str(made["open_blocker"]), ""]
    blocker = next(r for r in lines if r[0] == str(made["open_blocker"]) and r[5] == "blocker")
    assert blocker[8:] == ["open", "", ""]
    second = [json.loads(line) for line in _text(tid, "ndjson", DAY0 + timedelta(days=1), None).splitlines()]
    assert [r["kind"] for r in second] == ["blocker", "done", "comment"]  # the span bounds comments too
    assert len(json.loads(_text(tid, "json", None, DAY0))) == 6
