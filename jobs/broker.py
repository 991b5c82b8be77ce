"""The Dramatiq broker: Redis when REDIS_URL is set, RabbitMQ when RABBITMQ_URL is, else in memory.

Importing this module sets the global broker before any actor is declared. With
no external broker, messages go to Dramatiq's StubBroker and ``start_embedded_workers``
runs worker threads in this process: the embedded default.
"""

from __future__ import annotations

import gc
import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware

from app.settings import Settings, get_settings

_worker = None
_lock = threading.Lock()


class FrozenBoot(Middleware):
    """Freezes what a worker has built by the time it starts (modules, SQLAlchemy's mappers,
    templates, the broker) out of the collector's reach: it lives as long as the process, and
    every full collection would walk it again (as the web process does, app.web.factory)."""

    def after_worker_boot(self, broker, worker):
        gc.collect()
        gc.freeze()

    def before_worker_shutdown(self, broker, worker):
        gc.unfreeze()  # a worker started and stopped in a longer-lived process (tests) leaves nothing behind


def make_broker(settings: Settings) -> dramatiq.Broker:
    """The broker the settings ask for; its actors can read the message they run for
    (``CurrentMessage``: when it was sent), and its workers freeze their boot (``FrozenBoot``)."""
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=settings.redis_url, namespace="donebox")
    elif settings.rabbitmq_url:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=settings.rabbitmq_url)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(FrozenBoot())
    return broker


def is_embedded(broker: dramatiq.Broker | None = None) -> bool:
    """True when messages stay in this process (no Redis, no RabbitMQ)."""
    return isinstance(broker or dramatiq.get_broker(), StubBroker)


def start_embedded_workers(threads: int | None = None, *, any_broker: bool = False) -> dramatiq.Worker | None:
    """Run worker threads in this process when the broker is in memory (or always, with
    ``any_broker``: what `donebox run` does on Redis too); idempotent."""
    global _worker
    broker = dramatiq.get_broker()
    if not (any_broker or is_embedded(broker)):
        return None
    with _lock:
        if _worker is None:
            _worker = dramatiq.Worker(
                broker, worker_threads=threads or get_settings().worker_threads, worker_timeout=100
            )
            _worker.start()
    return _worker


def drain(timeout_s: float = 60.0) -> None:
    """Send what the intake holds back (``jobs.enqueue.inbound_batches``), then wait until every
    embedded queue is empty and idle (CLI commands, tests)."""
    from jobs.enqueue import inbound_batches  # jobs.enqueue imports the actors, which import this

    inbound_batches.flush()
    broker = dramatiq.get_broker()
    if not is_embedded(broker):
        return
    worker = start_embedded_workers()
    for queue in list(broker.queues):
        broker.join(queue, timeout=int(timeout_s * 1000))
    worker.join()


broker = make_broker(get_settings())
dramatiq.set_broker(broker)


def queue_depths() -> dict[str, int]:
    """Messages waiting in each declared queue of the process's broker (for /metrics); a broker
    that cannot be asked right now gives {}."""
    b = dramatiq.get_broker()
    out: dict[str, int] = {}
    try:
        for queue in sorted(b.get_declared_queues()):
            if is_embedded(b):
                out[queue] = b.queues[queue].qsize()
            elif hasattr(b, "get_queue_message_counts"):  # RabbitMQ: (ready, delayed, dead letters)
                out[queue] = b.get_queue_message_counts(queue)[0]
            else:  # Redis: the queue is a list named after it
                out[queue] = b.client.llen(f"{b.namespace}:{queue}")
    except Exception:  # noqa: BLE001 - a scrape reports what it can; the broker's health is elsewhere
        return {}
    return out
