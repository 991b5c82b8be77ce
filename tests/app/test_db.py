"""app.db's statements of a fixed text: pg_insert_rows, pg_update_rows and in_list."""

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.exc import DataError
from sqlmodel.sql.sqltypes import AutoString

from app.db import in_list, pg_insert_rows, pg_update_rows

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
