"""Enqueueing: the only code outside the actors that creates broker messages.

Everything enqueued is already committed, so a broker fault loses nothing: it is logged
and the scheduler's sweeper enqueues the rows again when their lease ends. Callers hand
over ids after their commit and never handle broker errors themselves. (Inside the
jobs, ``sort_deliveries`` sends the ``deliver_fair`` ticks of the ids it sorted.)
"""

from __future__ import annotations

import logging

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
