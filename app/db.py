"""Engines and sessions: SQLite (WAL, busy timeout) by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache, lru_cache
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    event,
    func,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import Session, create_engine

from app.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_STARVING_S = 0.05  # a thread waits this long for its turn at most before the others queue behind it


def normalize_url(url: str) -> str:
    """Pick our drivers: ``postgresql://`` means psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class TurnLock:
    """A lock that no thread waits for long: the ones waiting for it are served in the order they
    asked once the first of them has waited ``starving_s``.

    Until then it is an ordinary lock: a release wakes the first waiting thread, and whoever asks
    first after the release takes it (the thread that let go, which holds the interpreter then,
    often does, and goes on without a switch). SQLite's own busy wait, which polls with sleeps of up to
    100 ms, works that way with no bound: with a few threads in a loop of short transactions, one
    of them waited seconds for its turn while the others had theirs over and over. Once the first
    waiting thread has waited ``starving_s``, a release hands the lock to it directly (it stays
    held), as Go's sync.Mutex does in its starvation mode. Handing it over at every release
    instead made SQLite's inbound processing (``bench/inbound.py``, 8 threads) slower: the thread
    it went to held it while it waited for the interpreter.
    """

    def __init__(self, starving_s: float) -> None:
        self.starving_s = starving_s
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[_Waiter] = deque()

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; whether it was taken."""
        deadline = time.monotonic() + timeout
        w: _Waiter | None = None
        while True:
            with self._mutex:
                if w is not None and w.handed:
                    return True
                if not self._held:
                    self._held = True
                    return True
                if w is None:
                    w = _Waiter(time.monotonic())
                    self._waiting.append(w)
                else:  # woken, and another thread took it first: first in line again
                    self._waiting.appendleft(w)
            left = deadline - time.monotonic()
            if left > 0 and w.wake.acquire(timeout=left):
                continue
            with self._mutex:
                if w.handed:  # as the wait ended
                    return True
                if w in self._waiting:
                    self._waiting.remove(w)
                elif not self._held:  # woken as the wait ended, and free
                    self._held = True
                    return True
                return False

    def release(self) -> None:
        """Let go, waking the first waiting thread; one that has waited ``starving_s`` gets it."""
        with self._mutex:
            if not self._waiting:
                self._held = False
                return
            w = self._waiting.popleft()
            if time.monotonic() - w.since >= self.starving_s:
                w.handed = True  # still held: for w
            else:
                self._held = False
            w.wake.release()


class _Waiter:
    __slots__ = ("since", "handed", "wake")

    def __init__(self, since: float) -> None:
        self.since = since
        self.handed = False
        self.wake = threading.Lock()
        self.wake.acquire()  # TurnLock.release lets go of it


class _SQLiteConnection(sqlite3.Connection):
    """A pysqlite connection whose transactions take their turn at the database's one write lock
    in this process first (``writers``, one TurnLock an engine): its threads then wait for it on
    that lock, none of them long, and SQLite's busy timeout is left to other processes'
    transactions. The turn is given back once the transaction ends, however it ends (commit,
    rollback, close)."""

    writers: TurnLock
    _turn = False

    def take_turn(self) -> bool:
        """Wait for this transaction's turn (at most the busy timeout); whether it came."""
        self._turn = self.writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        return self._turn

    def end_turn(self) -> None:
        if self._turn:
            self._turn = False
            self.writers.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_turn()


def _sqlite_begin(conn: Connection) -> None:
    driver = conn.connection.dbapi_connection
    if not driver.take_turn():
        why = f"database is locked (this process's other transactions held it {SQLITE_BUSY_TIMEOUT_MS} ms)"
        raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(why))
    try:
        # pysqlite's own transaction handling is off (isolation_level=None below); take the write
        # lock at BEGIN so two writers queue instead of failing mid-transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        driver.end_turn()
        raise


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` with donebox's connection settings."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connection = type("SQLiteConnection", (_SQLiteConnection,), {"writers": TurnLock(SQLITE_STARVING_S)})
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "factory": connection,
            },
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "connect", lambda c, r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@cache
def get_engine() -> Engine:
    """The process's engine for DATABASE_URL."""
    return make_engine(get_settings().database_url)


@contextmanager
def session() -> Iterator[Session]:
    """A session on the process's engine that commits on success and rolls back on error.

    Interrupted by anything but an ordinary error (a job's time limit raised in its thread, a
    KeyboardInterrupt), possibly halfway through a driver call, its connection is closed and
    discarded (invalidated), never rolled back and returned to the pool in an unknown state.
    """
    with Session(get_engine(), expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except Exception:
            try:
                s.rollback()
            except BaseException:
                s.invalidate()
                raise
            raise
        except BaseException:
            s.invalidate()
            raise


class InList(ColumnElement[bool]):
    """``column`` IN the list bound as ``name``: see ``in_list``. Compiled per dialect (below);
    its cache key is the column and the name, so one statement serves both databases."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it is: no "= 1" where booleans are integers
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: Column, name: str):
        self.column, self.name = column, name


@compiles(InList)
def _expanding_in(element: InList, compiler, **kw) -> str:
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)


@compiles(InList, "postgresql")
def _any_array(element: InList, compiler, **kw) -> str:
    column = element.column
    # strings as text[]: a varchar(n)[] cast cuts a longer value, which then matches
    array = postgresql.ARRAY(Text() if _is_string(column) else column.type)
    return compiler.process(column == func.any(bindparam(element.name, type_=array)), **kw)


def in_list(column: Column, name: str) -> InList:
    """``column`` IN the list bound as ``name`` (a statement built once, bound per call). On
    PostgreSQL ``column = ANY(:name)``: one array parameter whatever the list's length, so the
    text is the same for every call and psycopg converts it once and prepares it, where an
    expanding IN has a text per length and, past 50 values, is parsed again on every call.
    Elsewhere (SQLite) an expanding IN. The choice is made where the statement is compiled, so a
    statement that holds it is the same for either database."""
    return InList(column, name)


def pg_insert_rows(
    conn: Connection, table: Table, rows: Sequence[Mapping], *, same: Mapping | None = None, tail: str = ""
) -> CursorResult:
    """PostgreSQL: INSERT ``rows`` (one or more dicts of ``table``'s columns, all with the same
    keys) in one statement, as one array per column, bound in binary (psycopg's %b). ``same``:
    columns whose value is the same for every row, bound once; ``tail``: ON CONFLICT and RETURNING.
    Rows go in in their order, so the serial ids they get ascend with it.

    The statement's text is the same for any number of rows: psycopg converts it once and
    prepares it. SQLAlchemy's executemany sends a multi-row VALUES with a parameter per value
    instead, whose text psycopg parses again on every call (past its cache's 50 parameters)."""
    columns, same = tuple(rows[0]), same or {}
    sql = _insert_rows_sql(table, columns, tuple(same), tail)
    params = _column_arrays(columns, rows)
    params.update((f"_s{i}", value) for i, value in enumerate(same.values()))
    return conn.exec_driver_sql(sql, params)


def sqlite_insert_rows(
    conn: Connection, table: Table, rows: Sequence[Mapping], *, returning_ids: bool = False
) -> list[int] | None:
    """SQLite: INSERT ``rows`` (one or more dicts of ``table``'s columns, all with the same keys)
    with the driver's executemany, as SQLAlchemy's own executemany sends them, each value through
    its column type's bind processor (a datetime as SQLite's text of it), but with the statement
    compiled once per table and columns, and a processed value made once per distinct value of a
    column (a batch's rows share their creation time and day), where SQLAlchemy set up each row's
    parameters anew.

    ``returning_ids``: the new rows' ids (``table``'s integer key ``id``, left to SQLite), in the
    rows' order. SQLAlchemy's INSERT .. RETURNING with the rows' order kept sends one statement a
    row on SQLite; here the rows go in one executemany and their ids are read after it: every
    transaction on donebox's engine holds the write lock from its BEGIN IMMEDIATE (make_engine),
    so the ids above the largest one before are this call's, given in insertion order."""
    columns = tuple(rows[0])
    if returning_ids and "id" in columns:
        raise ValueError("returning_ids: the rows' ids are SQLite's to give, not the rows'")
    sql, processors = _sqlite_insert(table, columns, conn.dialect)
    made: list[dict] = [{} for _ in columns]
    params = []
    for row in rows:
        values = []
        for i, name in enumerate(columns):
            value, process = row[name], processors[i]
            if process is not None:
                try:
                    processed = made[i].get(value)
                    if processed is None:
                        processed = made[i][value] = process(value)
                except TypeError:  # not hashable (a JSON column's dict): processed each time
                    processed = process(value)
                value = processed
            values.append(value)
        params.append(tuple(values))
    if not returning_ids:
        conn.exec_driver_sql(sql, params)
        return None
    before = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table.name}").scalar()
    conn.exec_driver_sql(sql, params)
    ids = (
        conn.exec_driver_sql(f"SELECT id FROM {table.name} WHERE id > ? ORDER BY id", (before,))
        .scalars()
        .all()
    )
    if len(ids) != len(rows):  # another writer's rows, or ids not above the largest: never guessed
        raise RuntimeError(f"{table.name}: {len(rows)} rows inserted, {len(ids)} new ids found")
    return ids


@lru_cache(maxsize=64)
def _sqlite_insert(table: Table, columns: tuple[str, ...], dialect) -> tuple[str, tuple]:
    """(INSERT with one ``?`` a column, each column's bind processor or None) on SQLite."""
    marks = ", ".join("?" for _ in columns)
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", processors


def pg_update_rows(
    conn: Connection, table: Table, rows: Sequence[Mapping], *, keys: tuple[str, ...], where: str = ""
) -> CursorResult:
    """PostgreSQL: UPDATE each row of ``table`` that ``rows`` (one or more dicts of its columns,
    all with the same keys) name by their ``keys`` columns, setting their other columns, in one
    statement of a fixed text (as ``pg_insert_rows``); ``where``: a further condition on the table,
    aliased ``t``. Its rowcount is the rows updated."""
    columns = tuple(rows[0])
    sql = _update_rows_sql(table, columns, keys, where)
    return conn.exec_driver_sql(sql, _column_arrays(columns, rows))


def _column_arrays(columns: tuple[str, ...], rows: Sequence[Mapping]) -> dict[str, list]:
    """The statements' parameters: each column's values, in the rows' order, as ``_c<i>``."""
    return {f"_c{i}": [row[name] for row in rows] for i, name in enumerate(columns)}


def _unnest(table: Table, columns: tuple[str, ...]) -> tuple[str, str]:
    """(``unnest``'s arguments: one binary array parameter a column, cast to its element type;
    the names of its output columns, ``_c<i>``)."""
    arrays = ", ".join(f"%(_c{i})b::{_element_type(table.c[name])}[]" for i, name in enumerate(columns))
    return arrays, ", ".join(f"_c{i}" for i in range(len(columns)))


@lru_cache(maxsize=64)
def _update_rows_sql(table: Table, columns: tuple[str, ...], keys: tuple[str, ...], where: str) -> str:
    arrays, aliases = _unnest(table, columns)
    sets = ", ".join(f"{name} = u._c{i}" for i, name in enumerate(columns) if name not in keys)
    match = " AND ".join(f"t.{name} = u._c{columns.index(name)}" for name in keys)
    return (
        f"UPDATE {table.name} AS t SET {sets} FROM unnest({arrays}) AS u({aliases}) "
        f"WHERE {match}{f' AND {where}' if where else ''}"
    )


def _element_type(column: Column) -> str:
    """The array element type a column's values are bound as: text for strings, not varchar(n),
    whose explicit cast would cut a long value where the column's own assignment refuses it."""
    if isinstance(column.type, LargeBinary):
        return "bytea"
    if _is_string(column):
        return "text"
    return column.type.compile(dialect=postgresql.dialect())


def _is_string(column: Column) -> bool:
    """A string column, sqlmodel's ``str`` fields (AutoString, a TypeDecorator of String) included."""
    return isinstance(column.type, String) or isinstance(getattr(column.type, "impl", None), String)


@lru_cache(maxsize=64)
def _insert_rows_sql(table: Table, columns: tuple[str, ...], same: tuple[str, ...], tail: str) -> str:
    picked = [f"u._c{i}" for i in range(len(columns))] + [f"%(_s{i})s" for i in range(len(same))]
    arrays, aliases = _unnest(table, columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns + same)}) SELECT {', '.join(picked)} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS u({aliases}, _n) ORDER BY u._n {tail}"
    )
