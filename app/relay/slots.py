"""Send slots: what a kill -9 of a worker process can duplicate.

A message that a transport accepted is sent again when the worker dies before its
``sent`` is committed (the sweeper retries it when its lease runs out). So a
worker process has SEND_SLOTS slots (one by default): the pipeline takes one
right before a transport's ``send`` and gives it back once the outcome is
committed. However many worker threads the process runs, at most SEND_SLOTS of
its messages are accepted and not yet recorded, and a killed process duplicates
at most that many. The other threads render, build and sign meanwhile.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def send_slots(settings) -> threading.BoundedSemaphore:
    """The process's send slots (a semaphore of SEND_SLOTS); made anew when the setting changes."""
    global _slots
    with _lock:
        if _slots is None or _slots[0] != settings.send_slots:
            _slots = (settings.send_slots, threading.BoundedSemaphore(settings.send_slots))
        return _slots[1]
