"""The broker's own middleware: what a worker built by the time it starts is frozen out of the
collector's reach while it runs, and thawed when it stops."""

import gc

import dramatiq
from dramatiq.brokers.stub import StubBroker

from app.settings import get_settings
from jobs.broker import FrozenBoot, make_broker


def test_every_broker_made_freezes_its_workers_boot():
    assert any(isinstance(m, FrozenBoot) for m in make_broker(get_settings()).middleware)


def test_a_worker_freezes_what_it_built_at_boot_and_thaws_it_at_shutdown():
    gc.unfreeze()
    broker = StubBroker()
    broker.add_middleware(FrozenBoot())
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert gc.get_freeze_count() > 1000  # the modules and everything else alive by now
    finally:
        worker.stop()
    assert gc.get_freeze_count() == 0
