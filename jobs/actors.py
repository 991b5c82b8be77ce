"""The actors: thin, taking ids only; the work lives in app/."""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import select

import app.checkins.outgoing  # noqa: F401 - registers how reminders and digests render (app.relay.render)
import jobs.broker  # noqa: F401 - sets the broker before the actors below are declared
from app.db import session
from app.inbound.process import fail, process, process_many
from app.models import OutboundMessage, utcnow
from app.relay.fair import fair_queue
from app.relay.pipeline import CLAIM_BATCH, deliver_many
from app.relay.transports import get_transport
from app.settings import get_settings

log = logging.getLogger("donebox.jobs")


@dramatiq.actor(max_retries=0, queue_name="inbound")
def process_inbound(inbound_id: int) -> None:
    """Process one stored inbound message; a failure is stored on the row, never raised away."""
    settings = get_settings()
    try:
        with session() as s:
            state = process(s, inbound_id, now=utcnow(), settings=settings)
        log.info("inbound %s: %s", inbound_id, state)
    except Exception as e:  # noqa: BLE001 - recorded on the row for `donebox inbound reprocess`
        log.exception("inbound %s failed", inbound_id)
        with session() as s:
            fail(s, inbound_id, f"{type(e).__name__}: {e}", now=utcnow())


@dramatiq.actor(max_retries=0, queue_name="inbound")
def process_inbound_batch(inbound_ids: list[int]) -> None:
    """Process several stored inbound messages (one broker message per committed group) in one
    transaction; when that fails, each message on its own, so one cannot fail the others."""
    settings = get_settings()
    try:
        with session() as s:
            states = process_many(s, inbound_ids, now=utcnow(), settings=settings)
    except Exception:  # noqa: BLE001 - nothing was kept: each runs (and fails) alone below
        log.exception("inbound batch %s failed; processing its messages one by one", inbound_ids)
        for iid in inbound_ids:
            process_inbound.fn(iid)
        return
    for iid, state in states.items():
        log.info("inbound %s: %s", iid, state)


SORT_IDS = 1000  # ids per fair-queue sorting job


@dramatiq.actor(max_retries=0, queue_name="outbound-sort", priority=0)
def sort_deliveries(message_ids: list[int]) -> None:
    """Put ids into their teams' fair queues and send one deliver_fair tick per CLAIM_BATCH of them.

    Its own queue and a high priority: sorting is quick, so a small team's ids reach the fair
    queue in moments even when another team's ticks fill the outbound queue.
    """
    queue = fair_queue(get_settings())
    by_team: dict[str, list[int]] = {}
    with session() as s:
        rows = dict(
            s.execute(
                select(OutboundMessage.id, OutboundMessage.team_id).where(OutboundMessage.id.in_(message_ids))
            ).all()
        )
    for mid in message_ids:  # an id not (yet) visible still goes out, in the no-team queue
        by_team.setdefault(str(rows.get(mid) or 0), []).append(mid)
    for team, ids in by_team.items():
        queue.push(team, ids)
    for _ in range(0, len(message_ids), CLAIM_BATCH):
        deliver_fair.send(CLAIM_BATCH)


def _deliver(message_ids: list[int]) -> None:
    settings = get_settings()
    states = deliver_many(message_ids, transport=get_transport(settings), settings=settings)
    log.info("messages (id: state) %s", states)  # one line per batch


@dramatiq.actor(max_retries=0, queue_name="outbound")
def deliver(message_id: int) -> None:
    """Deliver one outbox message (the relay pipeline); retries are the outbox's, not Dramatiq's."""
    _deliver([message_id])


BATCH_IDS = 100  # ids per deliver_batch message: enqueueing is per message, so batches make it cheap


@dramatiq.actor(max_retries=0, queue_name="outbound")
def deliver_batch(message_ids: list[int]) -> None:
    """Deliver several outbox messages, claimed CLAIM_BATCH at a time."""
    for i in range(0, len(message_ids), CLAIM_BATCH):
        _deliver(message_ids[i : i + CLAIM_BATCH])


@dramatiq.actor(max_retries=0, queue_name="outbound", priority=10)
def deliver_fair(count: int) -> None:
    """Deliver up to ``count`` messages, the next ones of the fair queue (teams round-robin),
    claimed CLAIM_BATCH at a time. A tick is one batch, so ticks are short and a sorting job
    never waits long for a worker thread."""
    queue = fair_queue(get_settings())
    while count > 0:
        ids = queue.pop_many(min(count, CLAIM_BATCH))
        if not ids:
            return
        _deliver(ids)
        count -= len(ids)
