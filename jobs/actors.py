"""The actors: thin, taking ids only; the work lives in app/."""

from __future__ import annotations

import logging

import dramatiq

import jobs.broker  # noqa: F401 - sets the broker before the actors below are declared
from app import inbound
from app.db import session
from app.models import utcnow
from app.relay.pipeline import deliver as deliver_message
from app.relay.transports import get_transport
from app.settings import get_settings

log = logging.getLogger("donebox.jobs")


@dramatiq.actor(max_retries=0, queue_name="inbound")
def process_inbound(inbound_id: int) -> None:
    """Process one stored inbound message; a failure is stored on the row, never raised away."""
    settings = get_settings()
    try:
        with session() as s:
            state = inbound.process(s, inbound_id, now=utcnow(), settings=settings)
        log.info("inbound %s: %s", inbound_id, state)
    except Exception as e:  # noqa: BLE001 - recorded on the row for `donebox inbound reprocess`
        log.exception("inbound %s failed", inbound_id)
        with session() as s:
            inbound.fail(s, inbound_id, f"{type(e).__name__}: {e}", now=utcnow())


@dramatiq.actor(max_retries=0, queue_name="inbound")
def process_inbound_batch(inbound_ids: list[int]) -> None:
    """Process several stored inbound messages (one broker message per committed group)."""
    for iid in inbound_ids:
        process_inbound.fn(iid)


@dramatiq.actor(max_retries=0, queue_name="outbound")
def deliver(message_id: int) -> None:
    """Deliver one outbox message (the relay pipeline); retries are the outbox's, not Dramatiq's."""
    settings = get_settings()
    state = deliver_message(message_id, transport=get_transport(settings), settings=settings)
    log.info("message %s: %s", message_id, state)


BATCH_IDS = 100  # ids per broker message: enqueueing is per message, so batches make it cheap


@dramatiq.actor(max_retries=0, queue_name="outbound")
def deliver_batch(message_ids: list[int]) -> None:
    """Deliver several outbox messages, one after another; each is claimed on its own."""
    for mid in message_ids:
        deliver.fn(mid)


def enqueue_deliveries(ids) -> None:
    """Enqueue delivery of committed outbox rows, up to BATCH_IDS ids per broker message."""
    ids = list(ids)
    for i in range(0, len(ids), BATCH_IDS):
        chunk = ids[i : i + BATCH_IDS]
        if len(chunk) == 1:
            deliver.send(chunk[0])
        else:
            deliver_batch.send(chunk)
