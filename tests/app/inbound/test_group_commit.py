"""The per-process group-commit writer: many concurrent accepts, each answered after its commit."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from concurrent.futures import wait

import pytest
from sqlalchemy import func, select

from app.db import get_engine, session
from app.inbound import group_commit
from app.inbound.accept import Item, accept_many, item
from app.models import InboundMessage, utcnow
from parsers.providers import Keys
from tests.conftest import statements_seen


def count() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(InboundMessage)).scalar()


def test_concurrent_submissions_are_committed_once_each_with_duplicates_reported(db):
    handed_over: list[int] = []
    w = group_commit.GroupWriter(handed_over.extend)
    futures = [w.submit("raw", b"From: a@b.c\r\n\r\nx", f"k{i % 150}", None, "") for i in range(300)]
    wait(futures, timeout=60)
    results = [f.result() for f in futures]
    assert count() == 150
    first = {}
    for i, (iid, dup) in enumerate(results):
        key = f"k{i % 150}"
        if key not in first:
            first[key] = iid
            assert dup is False
        else:
            assert dup is True and iid == first[key]
    assert sorted(handed_over) == sorted(first.values())  # every new id, once, to processing


def test_one_bad_row_fails_alone_and_its_group_is_committed(db, monkeypatch):
    import app.inbound.group_commit

    real = app.inbound.group_commit.accept_many

    def picky(s, items, **kw):
        if any(i.key == "bad" for i in items):
            raise ValueError("this row cannot be stored")
        return real(s, items, **kw)

    monkeypatch.setattr(app.inbound.group_commit, "accept_many", picky)
    w = group_commit.GroupWriter(lambda ids: None)
    futures = [w.submit("raw", b"x", key, None, "") for key in ("a", "bad", "b", "c")]
    wait(futures, timeout=60)
    assert [f.exception() is not None for f in futures] == [False, True, False, False]
    assert count() == 3


def test_a_writer_whose_connection_broke_commits_the_next_group_on_a_new_one(db):
    w = group_commit.GroupWriter(lambda ids: None)
    assert w.submit("raw", b"x", "before", None, "").result(timeout=30)[1] is False
    conn = w._conn
    if db.dialect.name == "postgresql":  # the server ends the session, as a restart would
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with db.connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    else:
        conn.connection.dbapi_connection.close()
    futures = [w.submit("raw", b"x", f"after{i}", None, "") for i in range(3)]
    wait(futures, timeout=60)
    assert [f.result()[1] for f in futures] == [False] * 3
    assert count() == 4 and w._conn is not conn


def test_a_group_is_one_insert_statement_and_on_postgresql_commits_by_itself(db):
    from sqlalchemy import event

    w = group_commit.GroupWriter(lambda ids: None)
    w.submit("raw", b"x", "warm", None, "").result(timeout=30)  # connected
    statements = []

    def record(conn, cursor, statement, *rest):
        if threading.current_thread() is w._thread:  # not the workers processing what it enqueued
            statements.append(statement)

    event.listen(db, "before_cursor_execute", record)
    try:
        futures = [w.submit("raw", b"x", f"k{i}", None, "") for i in range(5)]
        wait(futures, timeout=30)
    finally:
        event.remove(db, "before_cursor_execute", record)
    inserts = [st for st in statements if st.startswith("INSERT")]
    assert len(inserts) <= len(futures) and all(not f.result()[1] for f in futures)
    if db.dialect.name == "postgresql":  # autocommit: no BEGIN and COMMIT round trips around it
        assert w._conn.connection.dbapi_connection.autocommit is True
        assert statements == inserts
    else:  # SQLite takes its write lock first
        assert set(statements) - set(inserts) == {"BEGIN IMMEDIATE"}


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_on_postgresql_a_group_of_any_size_is_the_same_short_statement(db):
    """The statement psycopg converts and prepares once: not one text per group size, and within
    psycopg's cache (4,096 characters, 50 parameters), whose miss re-parsed the text per group."""
    with statements_seen(db) as seen:
        for size in (1, 7, 40):
            with db.begin() as conn:
                group = [mail(f"body {size}-{n}", f"<m{size}-{n}@example.com>") for n in range(size)]
                assert [dup for _, dup in accept_many(conn, group, now=utcnow())] == [False] * size
    sent = [(st, params) for st, params in seen if st.startswith("INSERT")]
    assert len({st for st, _ in sent}) == 1 and len(sent) == 3
    statement, parameters = sent[-1]
    assert len(statement) <= 4096 and len(parameters) <= 50
    assert all(len(v) == 40 for v in parameters.values() if isinstance(v, list)) and count() == 48
    with session() as s:  # the bytes and columns as given, in the group's order
        stored = s.execute(select(InboundMessage).order_by(InboundMessage.id)).scalars().all()
    assert [m.raw for m in stored[-40:]] == [i.raw for i in group]
    assert {(m.state, m.provider, m.payload, m.same_message_id_as) for m in stored} == {
        ("received", "raw", None, None)
    }


def mail(body: str, message_id: str = "<reused@example.com>") -> Item:
    """An Item as the raw webhook makes it."""
    raw = f"From: a@example.com\r\nMessage-ID: {message_id}\r\n\r\n{body}\r\n".encode()
    return item("raw", Keys(message_id=message_id, envelope_to=("team@reply.test",), raw_mime=raw))


def rows() -> list[tuple]:
    with session() as s:
        t = InboundMessage.__table__
        return s.execute(select(t.c.id, t.c.same_message_id_as, t.c.notes).order_by(t.c.id)).all()


def test_within_one_group_a_reused_message_id_with_other_content_is_stored_and_retries_are_not(db):
    a, b = mail("first body"), mail("second body")
    with get_engine().begin() as conn:  # one accept_many: one group, whatever the writer's timing
        results = accept_many(conn, [a, b, a, b], now=utcnow())
    (one, new_one), (two, new_two) = results[:2]
    assert (new_one, new_two) == (False, False) and one != two
    assert results[2:] == [(one, True), (two, True)]
    assert rows() == [
        (one, None, ""),
        (two, one, f"same Message-ID as inbound message {one}, different content"),
    ]


def test_across_groups_the_writer_links_a_reused_message_id_and_dedupes_each_retry(db):
    handed_over: list[int] = []
    w = group_commit.GroupWriter(handed_over.extend)
    one, _ = w.submit(mail("first body")).result(timeout=30)
    two, dup = w.submit(mail("second body")).result(timeout=30)
    assert dup is False and two != one
    assert w.submit(mail("second body")).result(timeout=30) == (two, True)
    assert w.submit(mail("first body")).result(timeout=30) == (one, True)
    three, dup = w.submit(mail("third body")).result(timeout=30)
    assert dup is False and [r[1] for r in rows()] == [None, one, one]
    assert handed_over == [one, two, three]


def test_a_copy_whose_content_is_unknown_stays_a_duplicate(db):
    first = mail("first body")
    with get_engine().begin() as conn:
        (one, _), again = accept_many(
            conn, [first, first._replace(raw=b"other", fingerprint="")], now=utcnow()
        )
    assert again == (one, True) and len(rows()) == 1


def _wal_frames(engine) -> int:
    """The frames in the WAL since it last started over (a PASSIVE checkpoint's report)."""
    with sqlite3.connect(engine.url.database) as c:
        return c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def _big(w: group_commit.GroupWriter, n: int, key: str) -> None:
    raw = b"From: a@b.c\r\n\r\n" + b"x" * 16_000
    futures = [w.submit("raw", raw, f"{key}{i}", None, "") for i in range(n)]
    wait(futures, timeout=120)
    assert all(f.exception() is None for f in futures)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_on_sqlite_a_writer_waits_its_turn_on_the_writers_lock_file(db):
    w = group_commit.GroupWriter(lambda ids: None)
    with group_commit.writers_turn(db):  # another web process's writer, as this one sees it
        future = w.submit("raw", b"x", "turn", None, "")
        time.sleep(0.5)
        assert not future.done()  # SQLite's write lock is free: the writer waits for the file's
    assert future.result(timeout=30)[1] is False
    assert count() == 1


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_on_sqlite_a_writers_commits_leave_the_wal_to_its_checkpointer(db, monkeypatch):
    asked = []
    monkeypatch.setattr(group_commit.GroupWriter, "_checkpoint", lambda self: asked.append(1))
    _big(group_commit.GroupWriter(lambda ids: None), 800, "w")
    # SQLite's own checkpoint, in the commit that crosses 1,000 pages, would have started it over
    assert _wal_frames(db) > 2500 and asked


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_on_sqlite_the_checkpointer_keeps_the_wal_short(db, monkeypatch, caplog):
    monkeypatch.setattr(group_commit, "CHECKPOINT_EVERY_S", 0.01)
    monkeypatch.setattr(group_commit, "RESTART_FRAMES", 200)
    w = group_commit.GroupWriter(lambda ids: None)
    _big(w, 800, "c")
    time.sleep(1.0)  # the checkpointer's turn after the last group
    w.submit("raw", b"x", "next", None, "").result(timeout=30)
    assert _wal_frames(db) < 100  # the next commit started the WAL over
    assert "checkpointing the SQLite WAL failed" not in caplog.text


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_on_sqlite_what_arrives_while_a_writer_waits_its_turn_is_committed_in_its_group(db):
    handed_over: list[list[int]] = []
    w = group_commit.GroupWriter(handed_over.append)
    with group_commit.writers_turn(db):
        futures = [w.submit("raw", b"x", "first", None, "")]
        time.sleep(0.3)  # the writer has taken it and waits for its turn
        futures += [w.submit("raw", b"x", f"then{i}", None, "") for i in range(5)]
    wait(futures, timeout=30)
    assert [len(ids) for ids in handed_over] == [6]  # one group, one broker message
    assert count() == 6


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_on_sqlite_a_writer_that_cannot_open_its_lock_file_still_commits(db, monkeypatch, caplog):
    real = os.open

    def refused(path, *args):
        if str(path).endswith("-writers.lock"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, *args)

    monkeypatch.setattr(group_commit.os, "open", refused)
    monkeypatch.setattr(group_commit, "_no_turns", set())
    w = group_commit.GroupWriter(lambda ids: None)
    for key in ("anyway", "again"):
        assert w.submit("raw", b"x", key, None, "").result(timeout=30)[1] is False
    assert count() == 2 and caplog.text.count("cannot take turns") == 1  # said once, not per group
