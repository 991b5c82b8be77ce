"""app.db's statements of a fixed text: pg_insert_rows, pg_update_rows, sqlite_insert_rows and in_list."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import JSON, Column, Date, Integer, MetaData, Table, select
from sqlalchemy.exc import DataError
from sqlmodel.sql.sqltypes import AutoString

from app.db import in_list, pg_insert_rows, pg_update_rows, sqlite_insert_rows
from app.models import UTCDateTime

META = MetaData()
# a str field as sqlmodel declares it: AutoString, a TypeDecorator of String, not a String
THINGS = Table("dbtest_things", META, Column("id", Integer, primary_key=True), Column("name", AutoString(8)))


@pytest.fixture
def things(db):
    META.create_all(db)
    yield db
    META.drop_all(db)


def test_in_list_finds_the_listed_rows_and_never_a_cut_value(things):
    with things.begin() as conn:
        conn.execute(THINGS.insert(), [{"id": i, "name": f"n-{i:06d}"} for i in range(1, 80)])
        find = select(THINGS.c.id).where(in_list(THINGS.c.name, "names"))
        # 40 + 1 names; the last one's first eight characters are row 2's whole name
        names = [f"n-{i:06d}" for i in range(1, 80, 2)] + ["n-000002 and more"]
        assert sorted(conn.execute(find, {"names": names}).scalars()) == list(range(1, 80, 2))
        by_id = select(THINGS.c.name).where(in_list(THINGS.c.id, "ids"))
        assert sorted(conn.execute(by_id, {"ids": [3, 70, 500]}).scalars()) == ["n-000003", "n-000070"]
        assert conn.execute(by_id, {"ids": []}).all() == []


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_value_too_long_for_its_column_is_refused_not_cut(things):
    with things.begin() as conn:
        pg_insert_rows(conn, THINGS, [{"id": 1, "name": "eight..."}])
        with pytest.raises(DataError, match="too long"):
            with conn.begin_nested():
                pg_insert_rows(conn, THINGS, [{"id": 2, "name": "nine....."}])
        with pytest.raises(DataError, match="too long"):
            with conn.begin_nested():
                pg_update_rows(conn, THINGS, [{"id": 1, "name": "nine....."}], keys=("id",))
        assert conn.execute(select(THINGS.c.id, THINGS.c.name)).all() == [(1, "eight...")]
        moved = pg_update_rows(
            conn, THINGS, [{"id": 1, "name": "one"}, {"id": 5, "name": "none"}], keys=("id",)
        )
        assert moved.rowcount == 1
        assert conn.execute(select(THINGS.c.name)).scalars().all() == ["one"]


# a column of each kind that has a bind processor on SQLite (dates and times are text there)
DATED = Table(
    "dbtest_dated",
    META,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime()),
    Column("day", Date),
    Column("name", AutoString(8)),
    Column("extra", JSON),
)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_sqlite_insert_rows_stores_what_sqlalchemys_executemany_stores(things):
    now = datetime(2026, 11, 23, 17, 5, 9, 120000, tzinfo=UTC)
    rows = [
        {
            "id": i,
            "at": now if i % 3 else now + timedelta(hours=i),
            "day": date(2026, 11, 20 + i % 2),
            "name": f"n{i}",
            "extra": {"i": i} if i % 2 else None,
        }
        for i in range(1, 13)
    ]
    with things.begin() as conn:
        conn.execute(DATED.insert(), rows)
        stored = conn.exec_driver_sql("SELECT at, day, name, extra FROM dbtest_dated ORDER BY id").all()
        conn.execute(DATED.delete())
        sqlite_insert_rows(conn, DATED, rows)
        assert (
            conn.exec_driver_sql("SELECT at, day, name, extra FROM dbtest_dated ORDER BY id").all() == stored
        )
        assert conn.execute(select(DATED.c.at).where(DATED.c.id == 3)).scalar_one() == now + timedelta(
            hours=3
        )


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_sqlite_insert_rows_gives_each_rows_own_id_in_the_rows_order(things):
    now = datetime(2026, 11, 23, 17, 5, 9, tzinfo=UTC)
    with things.begin() as conn:
        conn.execute(DATED.insert(), [{"id": 7, "name": "first"}, {"id": 3, "name": "second"}])
        conn.execute(DATED.delete().where(DATED.c.id == 7))  # the largest id gone: SQLite reuses it
        rows = [{"at": now, "day": date(2026, 11, 20), "name": f"r{i}", "extra": None} for i in range(9)]
        ids = sqlite_insert_rows(conn, DATED, rows, returning_ids=True)
        assert ids == list(range(4, 13))
        by_id = dict(conn.execute(select(DATED.c.id, DATED.c.name)).all())
        assert [by_id[i] for i in ids] == [r["name"] for r in rows]
        assert by_id[3] == "second"
        assert sqlite_insert_rows(conn, DATED, rows[:2]) is None
        with pytest.raises(ValueError, match="SQLite's to give"):
            sqlite_insert_rows(conn, DATED, [{"id": 99, "name": "x"}], returning_ids=True)
