"""The actors: thin, taking ids only; the work lives in app/."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import dramatiq
from dramatiq.middleware import CurrentMessage, TimeLimitExceeded
from sqlalchemy import select

import app.checkins.outgoing  # noqa: F401 - registers how reminders and digests render (app.relay.render)
import jobs.broker  # noqa: F401 - sets the broker before the actors below are declared
from app import logs
from app.db import get_engine, session
from app.inbound.process import process_many, retry_or_quarantine
from app.metrics import families as metrics
from app.models import OutboundMessage, utcnow
from app.relay.fair import fair_queue
from app.relay.pipeline import CLAIM_BATCH, deliver_many
from app.relay.transports import get_transport
from app.relay.webhook_delivery import deliver_many as deliver_webhooks_many
from app.settings import get_settings

log = logging.getLogger("donebox.jobs")


INBOUND_TIME_LIMIT_MS = get_settings().inbound_job_time_limit_s * 1000  # read when the actors are declared


@dramatiq.actor(max_retries=0, queue_name="inbound", time_limit=INBOUND_TIME_LIMIT_MS)
def process_inbound(inbound_id: int) -> None:
    """Process one stored inbound message; a time-out or crash is retried up to INBOUND_MAX_ATTEMPTS
    claims, then the message is quarantined (never raised away, never re-queued forever)."""
    with logs.bound(inbound_id=inbound_id):
        _process([inbound_id])


# a batch job also claims the first never-tried received messages after its own, up to this many in
# all, so that a backlog is worked through in batches that large whatever the size of intake's
# groups (a batch's statements cost about the same whatever its size). Smaller on SQLite: a batch's
# last write holds the database's one write lock, which intake's commits wait for, for longer the
# larger the batch, and a larger batch did not process faster there.
INBOUND_TOP_UP = {"postgresql": 256, "sqlite": 128}


class TakenAlong:
    """The inbound ids this process claimed along with another job's (the top-up) and finished,
    each with the moment, in ms since the epoch, before that claim began.

    Intake sends a job per window of committed groups (``jobs.enqueue.Coalesced``), and a job
    takes along up to INBOUND_TOP_UP, so working through a backlog, many jobs find that an earlier
    one took their messages along; each
    such job still cost 0.5-0.8 ms of the worker's CPU in the database. A job sent before the
    claim that took its messages has nothing left to do, and skips the database. A job sent later
    (a reprocess by hand, the sweeper's) runs. ``SKEW_MS`` allows for a sender's clock running
    behind ours; an id is forgotten once its job is skipped, after ``KEEP_S``, or when ``MOST``
    newer ones are kept (the job went to another process). Should a sender's clock run further
    behind, a later job is skipped once, and the sweeper sends the message again after its lease.
    """

    SKEW_MS = 1000
    KEEP_S = 600
    MOST = 10_000

    def __init__(self):
        self._ids: OrderedDict[int, tuple[float, float]] = OrderedDict()  # id: (claim began, kept at)
        self._lock = threading.Lock()

    def remember(self, ids, began_ms: float) -> None:
        """``ids`` were claimed along, by a claim that began after ``began_ms``, and are finished."""
        now = time.monotonic()
        with self._lock:
            for iid in ids:
                self._ids[iid] = (began_ms, now)
                self._ids.move_to_end(iid)
            while self._ids and (
                len(self._ids) > self.MOST or next(iter(self._ids.values()))[1] < now - self.KEEP_S
            ):
                self._ids.popitem(last=False)

    def left(self, ids: list[int], sent_ms: float) -> list[int]:
        """Those of ``ids`` a job sent at ``sent_ms`` has still to process (the others are forgotten)."""
        out = []
        with self._lock:
            for iid in ids:
                known = self._ids.get(iid)
                if known is not None and sent_ms < known[0] - self.SKEW_MS:
                    del self._ids[iid]
                else:
                    out.append(iid)
        return out


taken_along = TakenAlong()

# inbound batches a worker process runs at once, whatever its threads: a batch is mostly parsing,
# which holds the GIL, so more at once only shared one core between more of them (and more of the
# CPU went to their switching). Two overlap one batch's database waits with the other's parsing.
# Measured on one backlog, 8 threads (bench/inbound.py's worker), against any number at once:
# PostgreSQL 1,507-1,613 msgs/s at 0.53-0.56 ms of CPU a message, against 1,461-1,574 at
# 0.58-0.62 ms; SQLite 1,354-1,361 at 0.72 ms against 1,271-1,287 at 0.78 ms; peak RSS 148-154 MB
# against 164-177 MB. One at a time left the database waits bare: 1,357-1,380 msgs/s.
INBOUND_BATCHES_AT_ONCE = 2
inbound_batches_at_once = threading.BoundedSemaphore(INBOUND_BATCHES_AT_ONCE)


@dramatiq.actor(max_retries=0, queue_name="inbound", time_limit=INBOUND_TIME_LIMIT_MS)
def process_inbound_batch(inbound_ids: list[int]) -> None:
    """Process several stored inbound messages (the groups a web process committed within one
    window of ``jobs.enqueue.inbound_batches``, or one IMAP fetch) together, INBOUND_BATCHES_AT_ONCE
    batches at once in a process (a job waits for its turn, and its time limit runs meanwhile);
    when the job runs out of time or crashes, each unfinished one is sent again in a job of its
    own, so the one that blows up fails (and is quarantined) alone."""
    with inbound_batches_at_once:
        message = CurrentMessage.get_current_message()
        if message is not None:  # asked once in: a batch that ran meanwhile may have taken them
            left = taken_along.left(inbound_ids, message.message_timestamp)
            if not left:
                log.debug("inbound %s: processed already, taken along by another job", inbound_ids)
                return
            inbound_ids = left
        dialect = get_engine().dialect.name
        _process(inbound_ids, top_up=INBOUND_TOP_UP.get(dialect, INBOUND_TOP_UP["sqlite"]))  # the smaller


def _process(inbound_ids: list[int], top_up: int = 0) -> None:
    began_ms = time.time() * 1000
    settings = get_settings()
    mail: list[int] = []  # queued by processing (pause and comment notices): enqueued after commit
    taken: list[int] = []  # what the claim took, along with inbound_ids
    try:
        with session() as s:
            states = process_many(
                s, inbound_ids, now=utcnow(), settings=settings, created_mail=mail, top_up=top_up, taken=taken
            )
    except (Exception, TimeLimitExceeded) as e:  # noqa: BLE001 - the rows keep it; others interrupt
        if isinstance(e, TimeLimitExceeded):
            why = f"the job ran out of time ({settings.inbound_job_time_limit_s} s, INBOUND_JOB_TIME_LIMIT_S)"
        else:
            why = f"{type(e).__name__}: {e}"
        ids = sorted({*inbound_ids, *taken})
        metrics.inbound_processed.labels("interrupted").inc(len(ids))
        log.warning("inbound %s: %s", ids, why, exc_info=not isinstance(e, TimeLimitExceeded))
        try:
            with session() as s:
                again = retry_or_quarantine(s, ids, why, now=utcnow(), settings=settings, alone=len(ids) == 1)
        except Exception:  # noqa: BLE001 - the claims expire and the sweeper takes them back
            log.exception("inbound %s: could not release the claims; the sweeper will", ids)
            return
        for iid in again:
            process_inbound.send(iid)
        return
    taken_along.remember(set(taken) - set(inbound_ids), began_ms)
    if mail:
        from jobs.enqueue import enqueue_deliveries  # jobs.enqueue imports these actors: a cycle

        enqueue_deliveries(mail)
    mine = set(taken)
    for iid, state in states.items():  # what another job took is logged by that job
        with logs.bound(inbound_id=iid):
            logs.line(log, logging.INFO if iid in mine else logging.DEBUG, "inbound %s: %s", iid, state)


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
    deliver_many(message_ids, transport=get_transport(settings), settings=settings)  # a line per message


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


@dramatiq.actor(max_retries=0, queue_name="webhooks")
def deliver_webhooks(delivery_ids: list[int]) -> None:
    """POST due webhook deliveries once each (app.relay.webhook_delivery); retries are the rows',
    not Dramatiq's."""
    states = deliver_webhooks_many(delivery_ids, now=utcnow(), settings=get_settings())
    log.info("webhook deliveries (id: state) %s", states)
