"""One writer per process that commits small groups of accepted inbound messages together.

Each webhook hands its message to the writer and waits; the writer thread takes whatever
is queued (up to MAX_GROUP), inserts it in one transaction, commits, and only then answers
every waiting request, once the group's new ids are enqueued (one broker message). Under load a
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
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from app.db import get_engine
from app.inbound.accept import Item, accept_many
from app.models import utcnow

log = logging.getLogger("donebox.group_commit")
MAX_GROUP = 128  # messages per transaction at most: one INSERT statement (insertmanyvalues pages 1000 rows)


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
        self._thread = threading.Thread(target=self._run, name="inbound group commit", daemon=True)
        self._thread.start()

    def submit(self, *item) -> Future:
        """Queue one message (an ``accept.Item`` or its fields); the Future resolves to (id,
        duplicate) once it is committed (or raises what failed)."""
        fut: Future = Future()
        self._queue.put(Pending(item[0] if len(item) == 1 else Item(*item), fut))
        return fut

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(group)

    def _connection(self) -> Connection:
        engine = get_engine()
        if self._conn is not None and self._engine is not engine:  # the settings changed (tests)
            self._close()
        if self._conn is None:
            conn = engine.connect()
            if engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn, self._engine = conn, engine
        return self._conn

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

    def _commit(self, group: list[Pending]) -> None:
        try:
            results = self._insert(group)
        except Exception:  # noqa: BLE001 - retried one by one below, so only the bad row fails
            if len(group) == 1:
                log.exception("inbound commit failed")
                group[0].future.set_exception(_last_exception())
                return
            for p in group:
                self._commit([p])
            return
        # one broker message per group, from this thread: off the event loop, before the answers
        self._on_commit([iid for iid, duplicate in results if not duplicate])
        for p, result in zip(group, results, strict=True):
            p.future.set_result(result)


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
