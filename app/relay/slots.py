"""Send slots: what a kill -9 of a worker process can duplicate.

A message that a transport accepted is sent again when the worker dies before its
``sent`` is committed (the sweeper retries it when its lease runs out). So a
worker process has SEND_SLOTS slots (20 by default): the pipeline takes one
right before a transport's ``send`` and gives it back once the outcome is
committed. However many worker threads the process runs, at most SEND_SLOTS of
its messages are accepted and not yet recorded, and a killed process duplicates
at most that many. The other threads render, build and sign meanwhile.

With more than one slot, the outcomes of all the process's threads wait together, each holding
its slot, while the threads go on with their batches: one thread writes all of them (one
statement on PostgreSQL) when no slot is left free, when it needs one and finds none, and at the
end of a batch (app.relay.pipeline.Outcomes).
"""

from __future__ import annotations

import threading


class Slots:
    """A process's SEND_SLOTS slots: a bounded semaphore that tells how many are ``free``."""

    def __init__(self, n: int):
        self.n = n
        self._free = n
        self._cond = threading.Condition(threading.Lock())

    @property
    def free(self) -> int:
        """How many slots no thread holds (a glance: another thread may take one next)."""
        return self._free

    def acquire(self, blocking: bool = True) -> bool:
        """Take a slot, waiting for one unless ``blocking`` is false; whether one was taken."""
        with self._cond:
            while self._free == 0:
                if not blocking:
                    return False
                self._cond.wait()
            self._free -= 1
            return True

    def release(self) -> None:
        """Give a slot back; ValueError when none is held (as a BoundedSemaphore's)."""
        with self._cond:
            if self._free >= self.n:
                raise ValueError("send slot released too many times")
            self._free += 1
            self._cond.notify()


_lock = threading.Lock()
_slots: tuple[int, Slots] | None = None


def send_slots(settings) -> Slots:
    """The process's send slots (SEND_SLOTS of them); made anew when the setting changes."""
    global _slots
    with _lock:
        if _slots is None or _slots[0] != settings.send_slots:
            _slots = (settings.send_slots, Slots(settings.send_slots))
        return _slots[1]
