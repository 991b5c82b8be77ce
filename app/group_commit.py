"""One writer per process that commits small groups of accepted inbound messages together.

Each webhook hands its message to the writer and waits; the writer thread takes whatever
is queued (up to MAX_GROUP), inserts it in one transaction, commits, and only then answers
every waiting request, once the group's new ids are enqueued (one broker message). Under load a
commit (the WAL write on SQLite, the WAL flush on PostgreSQL) is shared by many requests;
alone, a request waits for nothing but its own commit. A group that fails is retried one
message per transaction, so one bad row cannot fail its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from app import inbound as domain
from app.db import session
from app.models import utcnow

log = logging.getLogger("donebox.group_commit")
MAX_GROUP = 128  # messages per transaction at most


@dataclass
class Pending:
    """One message waiting for its group's commit."""

    provider: str
    raw: bytes
    key: str
    payload: bytes | None
    payload_type: str
    future: Future


class GroupWriter:
    """The writer thread of this process; ``submit`` returns a Future of (id, duplicate)."""

    def __init__(self):
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbound group commit", daemon=True)
        self._thread.start()

    def submit(self, provider: str, raw: bytes, key: str, payload: bytes | None, payload_type: str) -> Future:
        """Queue one message; the Future resolves once it is committed (or raises what failed)."""
        fut: Future = Future()
        self._queue.put(Pending(provider, raw, key, payload, payload_type, fut))
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

    def _commit(self, group: list[Pending]) -> None:
        try:
            with session() as s:
                results = domain.accept_many(
                    s, [(p.provider, p.raw, p.key, p.payload, p.payload_type) for p in group], now=utcnow()
                )
        except Exception:  # noqa: BLE001 - retried one by one below, so only the bad row fails
            if len(group) == 1:
                log.exception("inbound commit failed")
                group[0].future.set_exception(_last_exception())
                return
            for p in group:
                self._commit([p])
            return
        # one broker message per group, from this thread: off the event loop, before the answers
        domain.enqueue_processing([iid for iid, duplicate in results if not duplicate])
        for p, result in zip(group, results, strict=True):
            p.future.set_result(result)


def _last_exception() -> BaseException:
    import sys

    return sys.exc_info()[1] or RuntimeError("commit failed")


_writer: GroupWriter | None = None
_lock = threading.Lock()


def writer() -> GroupWriter:
    """This process's writer, started on first use."""
    global _writer
    with _lock:
        if _writer is None:
            _writer = GroupWriter()
        return _writer
