"""Enqueueing: the only code outside the actors that creates broker messages.

Everything enqueued is already committed, so a broker fault loses nothing: it is logged
and the scheduler's sweeper enqueues the rows again when their lease ends. Callers hand
over ids after their commit and never handle broker errors themselves. (Inside the
jobs, ``sort_deliveries`` sends the ``deliver_fair`` ticks of the ids it sorted.)
"""

from __future__ import annotations

import logging
import threading
import time

from app.settings import get_settings
from jobs.actors import (
    BATCH_IDS,
    SORT_IDS,
    deliver,
    deliver_batch,
    deliver_webhooks,
    process_inbound,
    process_inbound_batch,
    sort_deliveries,
)
from jobs.broker import is_embedded

log = logging.getLogger("donebox.jobs")
INBOUND_IDS = 64  # inbound ids per process_inbound_batch message
INBOUND_WINDOW_S = 0.025  # intake under load: one processing message per process this often at most


def enqueue_deliveries(ids) -> None:
    """Hand committed outbox rows to the workers; a broker fault is logged (the sweeper repairs it)."""
    ids = list(ids)
    if not ids:
        return
    try:
        _deliveries(ids)
    except Exception:  # noqa: BLE001 - committed: the sweeper enqueues them when their lease ends
        log.exception("outbox rows %s stored but not enqueued; the sweeper will", ids[:20])


def enqueue_processing(inbound_ids: int | list[int]) -> None:
    """Hand committed inbound messages to processing (a group, even of one, in one batch job per
    INBOUND_IDS, which also takes along the backlog's next never-tried messages; one id alone in
    a job of its own); a broker fault is logged (the sweeper finds the rows after their lease)."""
    alone = isinstance(inbound_ids, int)
    ids = [inbound_ids] if alone else list(inbound_ids)
    try:
        if alone:
            process_inbound.send(inbound_ids)
            return
        for i in range(0, len(ids), INBOUND_IDS):
            process_inbound_batch.send(ids[i : i + INBOUND_IDS])
    except Exception:  # noqa: BLE001 - stored and committed already
        log.exception("inbound %s stored but not enqueued; the sweeper will", ids[:20])


class Coalesced:
    """The intake's committed groups handed to processing in fewer broker messages.

    A web process commits a group of messages every few milliseconds under load (5 messages a
    group on average at 64 clients), and each group was a broker message of its own. A worker's
    batch job takes 64 messages along, so most of those jobs found their messages done and cost
    the worker a job for nothing: fetched, run, acknowledged. Here a group that comes
    INBOUND_WINDOW_S or longer after the last send goes at once; one that comes sooner waits for
    that window to end and goes with the others that came meanwhile (INBOUND_IDS a message).
    Its rows are committed before they come here: should the process die with ids waiting, the
    sweeper sends them after their lease, as for any lost broker message.
    """

    def __init__(self, send=enqueue_processing, window_s: float | None = None):
        self._send = send
        self._window_s = window_s
        self._ids: list[int] = []
        self._last = float("-inf")  # time.monotonic() of the last send
        self._cond = threading.Condition()
        self._sends = threading.Lock()  # one send at a time, so batches reach the broker in order
        self._thread: threading.Thread | None = None

    def __call__(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._cond:
            self._ids.extend(ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inbound enqueue", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ids:
                    self._cond.wait()
                window = INBOUND_WINDOW_S if self._window_s is None else self._window_s
                while self._ids and len(self._ids) < INBOUND_IDS:
                    wait = self._last + window - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
            with self._sends:
                with self._cond:
                    ids = self._take()
                self._hand_over(ids)

    def _take(self) -> list[int]:
        """Under self._cond (and self._sends, whose holder then hands them over): what waits, up
        to one message's worth (a send thread that ran late finds more than that waiting: the rest
        goes next, at once if full, else at its window's end)."""
        ids, self._ids = self._ids[:INBOUND_IDS], self._ids[INBOUND_IDS:]
        if ids:
            self._last = time.monotonic()
        return ids

    def _hand_over(self, ids: list[int]) -> None:
        """Under self._sends: the batch to the broker (nothing when a flush took it first)."""
        if not ids:
            return
        try:
            self._send(ids)
        except Exception:  # noqa: BLE001 - committed: the sweeper sends them after their lease
            log.exception("inbound %s stored but not enqueued; the sweeper will", ids[:20])

    def flush(self, timeout_s: float = 10.0) -> None:
        """Send what waits now, after any batch already on its way, and return once all of it is
        with the broker (drain, the tests: nothing of a request answered before is still on its
        way)."""
        if not self._sends.acquire(timeout=timeout_s):
            log.warning("inbound enqueue: a send took over %ss; flush did not wait for it", timeout_s)
            return
        try:
            while True:
                with self._cond:
                    ids = self._take()
                if not ids:
                    return
                self._hand_over(ids)
        finally:
            self._sends.release()


inbound_batches = Coalesced()  # the intake's (app.web.hooks.inbound): one per process


WEBHOOK_IDS = 20  # webhook deliveries per deliver_webhooks message (each POST waits on a stranger)


def enqueue_webhooks(ids) -> None:
    """Hand due webhook deliveries to the workers; a broker fault is logged (the next tick's sweeper
    finds them again once their claim, if any, ends)."""
    ids = list(ids)
    try:
        for i in range(0, len(ids), WEBHOOK_IDS):
            deliver_webhooks.send(ids[i : i + WEBHOOK_IDS])
    except Exception:  # noqa: BLE001 - the rows are committed
        log.exception("webhook deliveries %s not enqueued; the sweeper will", ids[:20])


def _deliveries(ids: list[int]) -> None:
    """Delivery of committed outbox rows, fairly between teams.

    With Redis or the embedded broker, sort_deliveries jobs put the ids into the fair
    queue (no database work here, so a caller's open transaction never blocks it); on
    RabbitMQ alone (no shared store for the fair queue) they go in FIFO batches.
    """
    settings = get_settings()
    if settings.redis_url or is_embedded():
        for i in range(0, len(ids), SORT_IDS):
            sort_deliveries.send(ids[i : i + SORT_IDS])
        return
    for i in range(0, len(ids), BATCH_IDS):
        chunk = ids[i : i + BATCH_IDS]
        if len(chunk) == 1:
            deliver.send(chunk[0])
        else:
            deliver_batch.send(chunk)
