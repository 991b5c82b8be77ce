import threading

import pytest

from app.errors import TransientSendError
from app.relay.limits import MemoryLimiter, RedisLimiter, wait_turn
from app.relay.routing import SenderInfo


def slots(limiters, n, rate=20.0):
    got, lock = [], threading.Lock()

    def take(lim):
        for _ in range(n):
            wait, slot = lim.reserve("relay", rate, max_wait_s=60)
            assert wait >= 0
            with lock:
                got.append(slot)

    threads = [threading.Thread(target=take, args=(lim,)) for lim in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(got)


def test_processes_sharing_redis_get_slots_one_interval_apart(redis_url):
    # two limiters = two worker processes; three threads each way
    got = slots([RedisLimiter(redis_url), RedisLimiter(redis_url), RedisLimiter(redis_url)], 10, rate=20.0)
    gaps = [b - a for a, b in zip(got, got[1:], strict=False)]
    assert len(got) == 30 and all(abs(g - 0.05) < 1e-6 for g in gaps)


def test_senders_are_limited_separately(redis_url):
    lim = RedisLimiter(redis_url)
    assert lim.reserve("a", 1.0, 10)[0] == 0
    assert lim.reserve("b", 1.0, 10)[0] == 0
    assert lim.reserve("a", 1.0, 10)[0] > 0.9


def test_a_slot_too_far_away_is_refused_and_not_taken(redis_url):
    lim = RedisLimiter(redis_url)
    for _ in range(3):
        lim.reserve("slow", 1.0, 10)
    wait, _ = lim.reserve("slow", 1.0, max_wait_s=1.5)
    assert wait < 0
    assert 1.5 < lim.reserve("slow", 1.0, 10)[0] <= 3.0  # the refused call took no slot


def test_the_memory_limiter_spaces_slots_too():
    got = slots([MemoryLimiter()], 10, rate=100.0)
    assert all(abs((b - a) - 0.01) < 1e-9 for a, b in zip(got, got[1:], strict=False))


def test_a_sender_at_its_limit_defers_the_message(env):
    from app.settings import get_settings

    env.setenv("RATE_MAX_WAIT_S", "0.5")
    from tests.conftest import reset_caches

    reset_caches()
    sender = SenderInfo("limited-test-sender", "memory:", rate_per_s=1.0)
    wait_turn(get_settings(), sender)
    with pytest.raises(TransientSendError, match="rate limit"):
        wait_turn(get_settings(), sender)
