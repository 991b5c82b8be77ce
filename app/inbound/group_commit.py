"""One writer per process that commits small groups of accepted inbound messages together.

Each webhook hands its message to the writer and waits; the writer thread takes whatever
is queued (up to MAX_GROUP), inserts it in one transaction, commits, and only then answers
every waiting request, once the group's new ids are handed to processing (``on_commit``: the
intake's is ``jobs.enqueue.inbound_batches``, which sends them on in fewer broker messages). Under load a
commit (the WAL write on SQLite, the WAL flush on PostgreSQL) is shared by many requests;
alone, a request waits for nothing but its own commit. A group that fails is retried one
message per transaction, so one bad row cannot fail its neighbours.

The writer keeps one connection for itself (no pool checkout and ping per group). On
PostgreSQL it is in autocommit: a group is one multi-row INSERT statement, atomic and durable
on its own, so committing it costs one round trip instead of three (BEGIN, INSERT, COMMIT).
Every round trip counts twice here: when it returns, this thread waits for the GIL while the
event loop parses requests. (Should the connection break after that INSERT but before the
lookup of the group's duplicates, the one-by-one retry finds the group's rows stored and answers
them as duplicates: nothing is lost, and the sweeper processes them after its lease.)

On SQLite the writers of all web processes also take turns through a lock file beside the
database (``flock``) before they begin: SQLite's own wait for its write lock sleeps between tries
(1, 2, 5, 10 ... up to 100 ms), so two processes' writers that kept meeting each other made the
slowest of 64 clients' requests wait 330-450 ms; the kernel wakes a waiter on a lock file as
soon as it is free. A writer forms its group once its turn has come, so what arrived while it
waited is committed with it.

On SQLite the writer's commits never checkpoint the WAL themselves (``wal_autocheckpoint=0`` on
its connection): SQLite's automatic checkpoint runs inside the commit that crosses 1,000 pages,
copying and syncing them while every request of the next group waits. The writer's own
checkpointer thread does it instead, on another connection, after commits and at most every
CHECKPOINT_EVERY_S: a PASSIVE checkpoint, which waits for nobody and blocks nobody; and, once
the WAL holds RESTART_FRAMES, a RESTART, which briefly holds writers back so that the next one
starts the WAL over (PASSIVE checkpoints that always overlap a commit would let it grow); it
gives up after RESTART_WAIT_MS when a reader keeps it waiting, and is tried again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from app.db import SQLITE_BUSY_TIMEOUT_MS, get_engine
from app.inbound.accept import Item, accept_many
from app.models import utcnow

log = logging.getLogger("donebox.group_commit")
MAX_GROUP = 128  # messages per transaction at most: one INSERT statement (insertmanyvalues pages 1000 rows)
CHECKPOINT_EVERY_S = 0.25  # SQLite: how often the checkpointer runs while the writer commits
RESTART_FRAMES = 16384  # SQLite: a WAL this many pages long (64 MB of 4 KB pages) is started over
RESTART_WAIT_MS = 100  # SQLite: how long a RESTART waits for readers and writers before it gives up


@dataclass
class Pending:
    """One message waiting for its group's commit."""

    item: Item
    future: Future


class GroupWriter:
    """The writer thread of this process; ``submit`` returns a Future of (id, duplicate)."""

    def __init__(self, on_commit: Callable[[list[int]], None]):
        self._on_commit = on_commit  # hands a committed group's new ids to processing (jobs.enqueue)
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._engine: Engine | None = None
        self._wrote = threading.Event()  # SQLite: set after each commit, for the checkpointer
        self._thread = threading.Thread(target=self._run, name="inbound group commit", daemon=True)
        self._thread.start()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="inbound WAL checkpoints", daemon=True
        )
        self._checkpointer.start()

    def submit(self, *item) -> Future:
        """Queue one message (an ``accept.Item`` or its fields); the Future resolves to (id,
        duplicate) once it is committed (or raises what failed)."""
        fut: Future = Future()
        self._queue.put(Pending(item[0] if len(item) == 1 else Item(*item), fut))
        return fut

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            try:  # SQLite: what arrives while this writer waits for its turn joins the group
                with writers_turn(get_engine()):
                    while len(group) < MAX_GROUP:
                        try:
                            group.append(self._queue.get_nowait())
                        except queue.Empty:
                            break
                    done = self._store(group)
            except Exception:  # noqa: BLE001 - the writer lives on; these requests get the error
                log.exception("inbound group commit failed")
                done = [([p], _last_exception()) for p in group]
            self._answer(done)

    def _connection(self) -> Connection:
        engine = get_engine()
        if self._conn is not None and self._engine is not engine:  # the settings changed (tests)
            self._close()
        if self._conn is None:
            conn = engine.connect()
            if engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            else:  # commits leave checkpoints to the checkpointer (this connection is never pooled again)
                conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint=0")
            self._conn, self._engine = conn, engine
        return self._conn

    def _checkpoints(self) -> None:
        while True:
            self._wrote.wait()
            self._wrote.clear()
            try:
                self._checkpoint()
            except Exception:  # noqa: BLE001 - the WAL waits for the next try; nothing is lost
                log.warning(
                    "checkpointing the SQLite WAL failed; tried again after the next commit", exc_info=True
                )
            time.sleep(CHECKPOINT_EVERY_S)

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint of the writer's database, then a RESTART if the WAL has grown to
        RESTART_FRAMES, on a connection of the engine's pool (never the writer's)."""
        engine = self._engine
        if engine is None or engine.dialect.name != "sqlite":
            return
        with engine.connect() as c:
            raw = c.connection.driver_connection  # autocommit: a checkpoint runs outside a transaction
            _busy, frames, _done = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_FRAMES:
                # a RESTART holds writers back while it waits for readers: a long reader (an export)
                # makes it give up after RESTART_WAIT_MS, to try again, instead of stalling intake
                raw.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                try:
                    with writers_turn(engine):  # the writers wait on the lock file, not in SQLite's sleeps
                        raw.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                finally:
                    raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.invalidate()  # whatever state it is in, it does not go back to the pool
                conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close too
            log.debug("closing the writer's connection failed", exc_info=True)

    def _insert(self, group: list[Pending]) -> list[tuple[int, bool]]:
        conn = self._connection()
        try:
            with conn.begin():  # SQLite: BEGIN IMMEDIATE ... COMMIT; PostgreSQL: autocommit, no round trip
                return accept_many(conn, [p.item for p in group], now=utcnow())
        except Exception:
            self._close()  # the next attempt starts on a fresh connection
            raise

    def _store(self, group: list[Pending]) -> list[tuple[list[Pending], list | BaseException]]:
        """Insert ``group`` in one transaction, or, when that fails, each message in its own, so
        only the bad row fails: (messages, their (id, duplicate) results or what failed)."""
        try:
            return [(group, self._insert(group))]
        except Exception:  # noqa: BLE001 - retried one by one below, so only the bad row fails
            if len(group) == 1:
                log.exception("inbound commit failed")
                return [(group, _last_exception())]
            return [done for p in group for done in self._store([p])]

    def _answer(self, done: list[tuple[list[Pending], list | BaseException]]) -> None:
        """After the writers' turn: each committed group's new ids to processing, then the answers."""
        for group, results in done:
            if isinstance(results, BaseException):
                group[0].future.set_exception(results)
                continue
            if self._engine is not None and self._engine.dialect.name == "sqlite":
                self._wrote.set()
            # handed to processing from this thread: off the event loop, before the answers
            self._on_commit([iid for iid, duplicate in results if not duplicate])
            for p, result in zip(group, results, strict=True):
                p.future.set_result(result)


_no_turns: set[str] = set()  # the databases whose lock file could not be opened (warned once)


@contextlib.contextmanager
def writers_turn(engine: Engine | None):
    """On a SQLite file: hold the lock file that the group writers of every process take turns
    on (``<database>-writers.lock``, an exclusive ``flock`` on a descriptor of its own, so that
    two threads of one process exclude each other too); elsewhere nothing."""
    database = engine.url.database if engine is not None and engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    try:
        fd = os.open(f"{database}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # SQLite's own locking still keeps the writes apart, only slower to hand over
        if database not in _no_turns:  # said once, not at every group
            _no_turns.add(database)
            log.warning("the group writers cannot take turns on %s-writers.lock", database, exc_info=True)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _last_exception() -> BaseException:
    return sys.exc_info()[1] or RuntimeError("commit failed")


_writer: GroupWriter | None = None
_lock = threading.Lock()


def writer(on_commit: Callable[[list[int]], None]) -> GroupWriter:
    """This process's writer, started on first use with ``on_commit`` (called with each committed
    group's new ids, from the writer thread, before the waiting requests are answered)."""
    global _writer
    with _lock:
        if _writer is None:
            _writer = GroupWriter(on_commit)
        return _writer
