"""Per-sender rate limits (messages per second), shared by every worker process through Redis.

Each send reserves the sender's next free slot (GCRA: slots ``1 / rate_per_s``
apart, on Redis's clock so every process agrees) and sleeps until it. A slot
further away than RATE_MAX_WAIT_S is not taken: the message is deferred instead
of holding a worker thread. Without Redis the limit holds per process.
"""

from __future__ import annotations

import os
import threading
import time

import redis

from app.errors import TransientSendError

PREFIX = "donebox:rate"

# KEYS[1]: the sender's key. ARGV: interval, max wait (us). Returns {wait_us, slot_us}; wait < 0: refused.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[2]) then return {-wait, tat} end
local ttl_ms = math.floor((wait + tonumber(ARGV[1])) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[1])), 'PX', ttl_ms)
return {wait, tat}
"""


class RedisLimiter:
    """Slots shared by every process using the same Redis."""

    def __init__(self, url: str):
        self.r = redis.Redis.from_url(url)
        self._script = self.r.register_script(_RESERVE)

    def reserve(self, sender: str, rate_per_s: float, max_wait_s: float) -> tuple[float, float]:
        """(seconds to wait, slot time in seconds); a negative wait means refused."""
        wait_us, slot_us = self._script(
            keys=[f"{PREFIX}:{sender}"], args=[int(1_000_000 / rate_per_s), int(max_wait_s * 1_000_000)]
        )
        return wait_us / 1_000_000, slot_us / 1_000_000


class MemoryLimiter:
    """Slots within this process."""

    def __init__(self):
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, sender: str, rate_per_s: float, max_wait_s: float) -> tuple[float, float]:
        now = time.monotonic()
        with self._lock:
            slot = max(self._next.get(sender, 0.0), now)
            wait = slot - now
            if wait > max_wait_s:
                return -wait, slot
            self._next[sender] = slot + 1.0 / rate_per_s
            return wait, slot


_lock = threading.Lock()
_limiters: dict[tuple[str, int], RedisLimiter | MemoryLimiter] = {}


def limiter(settings) -> RedisLimiter | MemoryLimiter:
    """The process's limiter: Redis with REDIS_URL, else in memory."""
    key = (settings.redis_url, os.getpid())
    with _lock:
        if key not in _limiters:
            _limiters[key] = RedisLimiter(settings.redis_url) if settings.redis_url else MemoryLimiter()
        return _limiters[key]


def wait_turn(settings, sender) -> None:
    """Block until ``sender`` may send one more message under its ``rate_per_s``; TransientSendError
    (deferral) when its next slot is more than RATE_MAX_WAIT_S away."""
    if sender.rate_per_s <= 0:
        return
    wait, _ = limiter(settings).reserve(sender.name, sender.rate_per_s, settings.rate_max_wait_s)
    if wait < 0:
        raise TransientSendError(
            f"sender {sender.name} is at its rate limit ({sender.rate_per_s}/s)", retry_in_s=max(1.0, -wait)
        )
    if wait > 0:
        time.sleep(wait)
