"""The scheduler tick: due reminders, digests and nudges, mentions and blockers, chat posts of
blockers, then the sweeper and pass-through.

Safe to run in several processes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from app.checkins import chat, due, notices
from app.db import session
from app.inbound.process import sweep as inbound_sweep
from app.metrics import families as metrics
from app.models import utcnow
from app.relay import outbox, passthrough, webhooks
from app.relay.retention import purge
from app.settings import Settings
from jobs.enqueue import enqueue_deliveries, enqueue_processing, enqueue_webhooks

log = logging.getLogger("donebox.scheduler")
RETENTION_EVERY = timedelta(hours=1)  # how often a scheduler purges old message content
_last_purge: dict[str, datetime] = {}


def tick(*, now: datetime, settings: Settings) -> dict[str, Sequence[int]]:
    """One pass: create what is due, repair what was lost, then enqueue it all (after commit);
    its duration and the rows of each kind are counted (donebox_scheduler_*)."""
    started = time.perf_counter()
    result = _tick(now=now, settings=settings)
    rows = {k: (sum(v) if k == "purged" else len(v)) for k, v in result.items() if k != "pass_through"}
    metrics.ticked(time.perf_counter() - started, rows)
    return result


def _tick(*, now: datetime, settings: Settings) -> dict[str, Sequence[int]]:
    created = due.run(now=now, settings=settings, enqueue=enqueue_deliveries)
    with session() as s:  # blockers posted to the chat channels that asked for them
        posted = chat.create_blocker_posts(s, now=now, settings=settings)
    enqueue_deliveries(posted)
    created.extend(posted)  # an array of ids (due.run): 8 bytes each
    created.extend(notices.run(now=now, settings=settings, enqueue=enqueue_deliveries))
    released = release_scheduled(now=now, settings=settings, enqueue=enqueue_deliveries)
    with session() as s:
        swept = outbox.sweep(s, now=now, lease_s=settings.lease_s)
        # inbound rows never claimed (their broker message was lost) or whose claim expired
        fresh, tried = inbound_sweep(s, now=now, settings=settings)
        hooks = webhooks.due(s, now=now)  # webhook deliveries due (new, or their backoff over)
    with session() as s:  # after the sweep: the queue as the workers see it now
        switched = passthrough.evaluate(s, now=now, settings=settings)
    if switched:
        log.warning("pass-through switched %s (donebox pass-through status)", switched)
    enqueue_deliveries(swept)
    enqueue_webhooks(hooks)
    enqueue_processing(fresh)
    for iid in tried:  # one per job: a message that failed before fails alone
        enqueue_processing(iid)
    purged = 0
    last = _last_purge.get(settings.database_url)
    if last is None or now - last >= RETENTION_EVERY:
        with session() as s:
            purged = purge(s, now=now, days=settings.retention_days)
            webhooks.purge(s, now=now, days=settings.retention_days)  # their log, as long as the mail's
        _last_purge[settings.database_url] = now
    return {
        "created": created,
        "swept": released + swept,
        "inbound": fresh + tried,
        "webhooks": hooks,
        "purged": [purged] if purged else [],
        "pass_through": [switched] if switched else [],
    }


def release_scheduled(*, now: datetime, settings: Settings, enqueue) -> list[int]:
    """Move every due scheduled message to queued, SCHEDULE_BATCH per transaction, enqueueing each batch."""
    released: list[int] = []
    while True:
        with session() as s:
            ids = outbox.release_due(s, now=now, lease_s=settings.lease_s, limit=settings.schedule_batch)
        if ids:
            enqueue(ids)
            released += ids
        if len(ids) < settings.schedule_batch:
            return released


def run_forever(settings: Settings, stop: threading.Event | None = None) -> None:
    """Tick every TICK_S seconds until ``stop`` is set; a failing tick is logged, not fatal."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            result = tick(now=utcnow(), settings=settings)
            if any(result.values()):
                log.info("tick: %s", {k: len(v) for k, v in result.items()})
        except Exception:  # noqa: BLE001 - the next tick tries again
            metrics.scheduler_failures.inc()
            log.exception("scheduler tick failed")
        stop.wait(settings.tick_s)
