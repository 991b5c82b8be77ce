"""On SQLite a process's transactions take turns at the one write lock (app.db.TurnLock): none
waits much longer than SQLITE_STARVING_S while others have theirs, and a turn is given back
however its transaction ends."""

import sqlite3
import sys
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import app.db
from app.db import TurnLock, make_engine
from tests.e2e.conftest import wait_until


def queue_in_order(lock: TurnLock, n: int, work) -> list[threading.Thread]:
    """Start n threads that each run work(i), each one started once the one before it waits for
    ``lock``."""
    threads = []
    for i in range(n):
        t = threading.Thread(target=work, args=(i,))
        t.start()
        wait_until(lambda i=i: len(lock._waiting) == i + 1, 10, f"thread {i} waiting", interval_s=0.005)
        threads.append(t)
    return threads


def test_once_the_first_has_waited_starving_s_the_waiting_threads_get_it_in_order():
    lock, order = TurnLock(starving_s=0), []

    def work(i: int) -> None:
        assert lock.acquire(timeout=10)
        order.append(i)
        lock.release()

    assert lock.acquire(timeout=0)
    threads = queue_in_order(lock, 6, work)
    lock.release()
    for t in threads:
        t.join()
    assert order == [0, 1, 2, 3, 4, 5]
    assert lock.acquire(timeout=0)  # nobody holds it after the last
    lock.release()


def test_a_thread_that_lets_go_takes_it_again_unless_one_waiting_has_starved():
    lock, got = TurnLock(starving_s=0.2), []

    def work(_: int) -> None:
        assert lock.acquire(timeout=10)
        got.append(time.monotonic())
        lock.release()

    assert lock.acquire(timeout=0)
    [waiter] = queue_in_order(lock, 1, work)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(5.0)  # the woken waiter gets no turn at the interpreter in between
    try:
        lock.release()
        assert lock.acquire(timeout=0)  # before the woken waiter: an ordinary lock's way
    finally:
        sys.setswitchinterval(switch)
    time.sleep(0.25)  # the waiter, first in line again, has now waited starving_s
    lock.release()
    assert lock.acquire(timeout=0) is False  # handed to the waiter, not taken back
    waiter.join()
    assert len(got) == 1
    assert lock.acquire(timeout=0)


def test_a_wait_that_times_out_leaves_the_queue_and_takes_nothing():
    lock = TurnLock(starving_s=0)
    assert lock.acquire(timeout=0)
    assert lock.acquire(timeout=0.05) is False
    assert list(lock._waiting) == []
    lock.release()  # to nobody: free
    assert lock.acquire(timeout=0)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setattr(app.db, "SQLITE_BUSY_TIMEOUT_MS", 300)  # a lost turn fails in 0.3 s, not 10
    monkeypatch.setattr(app.db, "SQLITE_STARVING_S", 0)  # every turn in order: an order to check
    engine = make_engine(f"sqlite:///{tmp_path}/turns.db")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, who INTEGER)"))
    yield engine
    engine.dispose()


def writers(conn) -> TurnLock:
    return conn.connection.dbapi_connection.writers


def test_transactions_begin_in_the_order_they_asked_for_the_write_lock(engine):
    def work(i: int) -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (who) VALUES (:i)"), {"i": i})

    with engine.connect() as holder:
        holder.begin()
        holder.execute(text("INSERT INTO t (who) VALUES (-1)"))
        threads = queue_in_order(writers(holder), 5, work)
        holder.commit()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY id")).scalars().all() == [-1, 0, 1, 2, 3, 4]


@pytest.mark.parametrize("end", ["commit", "rollback", "invalidate"])
def test_the_turn_is_given_back_however_the_transaction_ends(engine, end):
    holder = engine.connect()
    holder.begin()
    holder.execute(text("INSERT INTO t (who) VALUES (1)"))
    getattr(holder, end)()
    holder.close()
    with engine.begin() as conn:  # at once: a turn kept would fail this after SQLITE_BUSY_TIMEOUT_MS
        conn.execute(text("INSERT INTO t (who) VALUES (2)"))
    with engine.connect() as conn:
        expected = [1, 2] if end == "commit" else [2]
        assert conn.execute(text("SELECT who FROM t ORDER BY id")).scalars().all() == expected


def test_a_turn_not_come_within_the_busy_timeout_is_a_locked_database_error(engine):
    with engine.connect() as holder:
        holder.begin()
        holder.execute(text("INSERT INTO t (who) VALUES (1)"))
        with pytest.raises(OperationalError, match="database is locked"):
            with engine.begin() as other:
                other.execute(text("INSERT INTO t (who) VALUES (2)"))
        holder.commit()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES (3)"))
        assert conn.execute(text("SELECT who FROM t ORDER BY id")).scalars().all() == [1, 3]


def test_a_begin_that_another_process_keeps_waiting_gives_its_turn_back(engine):
    other_process = sqlite3.connect(engine.url.database, isolation_level=None)  # no turns of ours
    other_process.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="database is locked"):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (who) VALUES (1)"))
    other_process.execute("ROLLBACK")
    other_process.close()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES (2)"))
        assert conn.execute(text("SELECT who FROM t")).scalars().all() == [2]
