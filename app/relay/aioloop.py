"""The bridge from sync worker threads to asyncio: one event loop thread per process.

Dramatiq runs the pipeline in plain threads; the SMTP pools are asyncio objects
bound to one loop. ``run(coro)`` hands a coroutine to the process's loop thread
and blocks the calling thread until it is done, so every worker thread of a
process shares the same pools, and the connections stay open across messages.
A forked child (Dramatiq's worker processes) starts its own loop on first use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid = 0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the bridge works without it
        return asyncio.new_event_loop()


def loop() -> asyncio.AbstractEventLoop:
    """This process's event loop, running in a daemon thread; started on first use."""
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or _loop.is_closed():
            new = _new_loop()
            ready = threading.Event()

            def serve():
                asyncio.set_event_loop(new)
                new.call_soon(ready.set)
                new.run_forever()

            threading.Thread(target=serve, name="donebox-aio", daemon=True).start()
            ready.wait()
            _loop, _pid = new, os.getpid()
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
    """Run ``coro`` on the process's loop and wait for its result (or its exception).

    A timeout cancels the coroutine and raises TimeoutError. Never call it from the
    loop thread itself (that would deadlock): it raises RuntimeError instead.
    """
    target = loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is target:
        coro.close()
        raise RuntimeError("aioloop.run called from its own event loop")
    future = asyncio.run_coroutine_threadsafe(coro, target)
    try:
        return future.result(timeout_s)
    except TimeoutError:
        future.cancel()
        raise
