"""The answer to a scrape: every process's metrics added up, plus gauges read from the database now.

The database gauges are not kept in any process: each scrape computes them with a few indexed,
grouped queries over the work still waiting (never over all mail ever sent), so they are right
whichever process answers and whatever restarted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app.db import session
from app.metrics import (
    families,  # noqa: F401 - every family declared, so a scrape shows them all
    forget_dead,
)
from app.models import InboundMessage, OutboundMessage, WebhookDelivery
from app.settings import Settings

log = logging.getLogger("donebox.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the classic text format generate_latest writes
OUTBOX_WAITING = ("scheduled", "queued", "sending", "deferred")  # states still ahead of a send
INBOUND_WAITING = ("received", "processing", "quarantined")  # states awaiting work (or a person)


def shared() -> bool:
    """True when this process writes its metrics to files (PROMETHEUS_MULTIPROC_DIR was set before
    prometheus_client was imported: the donebox commands do it), so a scrape reads every process."""
    return values.ValueClass is not values.MutexValue


class _ThisProcess:
    """This process's own registry (tests, and a process started without the donebox command)."""

    def collect(self):
        yield from REGISTRY.collect()


class DatabaseCollector:
    """Gauges read from the database at scrape time: the outbox, inbound mail and webhook
    deliveries still waiting, and how long the oldest of each has waited; broker queue depths
    from ``queue_depths`` (the jobs layer's, given by the web app)."""

    def __init__(self, *, now: datetime, queue_depths: Callable[[], dict[str, int]] | None = None):
        self.now = now
        self.queue_depths = queue_depths

    def collect(self):
        up = GaugeMetricFamily("donebox_database_up", "1 when the database gauges could be read, else 0")
        try:
            gauges = list(self._database())
        except Exception:  # noqa: BLE001 - the scrape still reports every process's counters
            log.warning("metrics: the database gauges could not be read", exc_info=True)
            gauges = []
        up.add_metric([], 1 if gauges else 0)
        yield up
        yield from gauges
        if self.queue_depths is not None:
            depth = GaugeMetricFamily(
                "donebox_queue_messages", "Broker messages waiting in each job queue", labels=["queue"]
            )
            for queue, n in sorted(self.queue_depths().items()):
                depth.add_metric([queue], n)
            yield depth

    def _database(self):
        outbox = GaugeMetricFamily(
            "donebox_outbox_messages",
            "Outbox messages not yet sent, by state and kind",
            labels=["state", "kind"],
        )
        inbound = GaugeMetricFamily(
            "donebox_inbound_messages",
            "Inbound messages awaiting processing (or a person), by state",
            labels=["state"],
        )
        oldest = GaugeMetricFamily(
            "donebox_queue_oldest_waiting_seconds",
            "How long the oldest due item of each queue has waited (0: none waits)",
            labels=["queue"],
        )
        with session() as s:
            M, Inb, D = OutboundMessage, InboundMessage, WebhookDelivery
            rows = s.execute(
                select(M.state, M.kind, func.count())
                .where(M.state.in_(OUTBOX_WAITING))
                .group_by(M.state, M.kind)
            ).all()
            for state, kind, n in rows:
                outbox.add_metric([state, kind], n)
            counts = dict(
                s.execute(
                    select(Inb.state, func.count()).where(Inb.state.in_(INBOUND_WAITING)).group_by(Inb.state)
                ).all()
            )
            for state in INBOUND_WAITING:
                inbound.add_metric([state], counts.get(state, 0))
            due = M.next_attempt_at <= self.now
            firsts = s.execute(
                select(
                    select(func.min(M.next_attempt_at)).where(M.state == "queued", due).scalar_subquery(),
                    select(func.min(M.next_attempt_at)).where(M.state == "deferred", due).scalar_subquery(),
                    select(func.min(Inb.received_at)).where(Inb.state == "received").scalar_subquery(),
                    select(func.min(D.next_attempt_at))
                    .where(D.state == "pending", D.next_attempt_at <= self.now)
                    .scalar_subquery(),
                )
            ).one()
        outbound_first = min((t for t in firsts[:2] if t is not None), default=None)
        for queue, first in (("outbound", outbound_first), ("inbound", firsts[2]), ("webhooks", firsts[3])):
            oldest.add_metric([queue], max(0.0, (self.now - first).total_seconds()) if first else 0.0)
        return outbox, inbound, oldest


def exposition(
    settings: Settings, *, now: datetime, queue_depths: Callable[[], dict[str, int]] | None = None
) -> bytes:
    """The text a scrape gets: the counters of every process writing into METRICS_DIR (or of this
    one alone) and the database gauges."""
    registry = CollectorRegistry()
    if shared():
        forget_dead(settings.metrics_dir, live_gauges_only=True)
        multiprocess.MultiProcessCollector(registry, path=str(settings.metrics_dir))
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector(now=now, queue_depths=queue_depths))
    return generate_latest(registry)
