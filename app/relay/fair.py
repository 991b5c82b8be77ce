"""Fair delivery order: one queue of message ids per team, served round-robin.

The broker carries interchangeable "deliver the next fair message" ticks, not
ids: which message a tick delivers is decided when it runs, by taking the next
team in a ring and the oldest id of that team. So a team that enqueued 50,000
messages gets every other turn, and another team's 10 go out within a few
turns, whatever the broker's FIFO order holds.

Shared in Redis when REDIS_URL is set (every producer and worker process sees
the same ring), in process memory otherwise (the embedded default, where the
producers and the worker threads are one process). An id already waiting is
not queued twice (the sweeper re-enqueues every row of a long backlog whose
lease ran out). An id popped by a worker
that then dies is not lost: its row is still ``queued`` and the sweeper
enqueues it again when its lease runs out.
"""

from __future__ import annotations

import os
import threading
from collections import deque

import redis

PREFIX = "donebox:fair"

# KEYS: ring, queue prefix, pending set. ARGV: how many. Up to that many times: rotates the ring
# until a team with ids is found and takes its oldest id; drops empty teams; the ids leave the pending set.
_POP = """
local ring = KEYS[1]
local out = {}
for _ = 1, tonumber(ARGV[1]) do
  local found = false
  for _ = 1, redis.call('LLEN', ring) do
    local team = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')
    if not team then break end
    local id = redis.call('LPOP', KEYS[2] .. team)
    if id then
      if redis.call('LLEN', KEYS[2] .. team) == 0 then redis.call('LREM', ring, 0, team) end
      redis.call('SREM', KEYS[3], id)
      out[#out + 1] = id
      found = true
      break
    end
    redis.call('LREM', ring, 0, team)
  end
  if not found then break end
end
return out
"""

# KEYS: ring, team queue, pending set. ARGV: team, ids... Appends the ids not already waiting (the
# sweeper re-enqueues rows of a long backlog: they must not pile up); puts the team in the ring once.
_PUSH = """
local added = 0
for i = 2, #ARGV do
  if redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    added = added + 1
  end
end
if added > 0 and redis.call('LPOS', KEYS[1], ARGV[1]) == false then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return added
"""


class MemoryFairQueue:
    """Round-robin across teams in this process."""

    def __init__(self):
        self._queues: dict[str, deque[int]] = {}
        self._ring: deque[str] = deque()
        self._pending: set[int] = set()
        self._lock = threading.Lock()

    def push(self, team: str, ids: list[int]) -> None:
        with self._lock:
            new = [i for i in ids if i not in self._pending]  # already waiting: not twice
            if not new:
                return
            self._pending.update(new)
            if team not in self._queues:
                self._queues[team] = deque()
                self._ring.append(team)
            self._queues[team].extend(new)

    def pop(self) -> int | None:
        """The next id in round-robin order, or None when every team's queue is empty."""
        ids = self.pop_many(1)
        return ids[0] if ids else None

    def pop_many(self, n: int) -> list[int]:
        """Up to ``n`` ids, each the next one in round-robin order (a batch alternates between teams)."""
        out: list[int] = []
        with self._lock:
            while self._ring and len(out) < n:
                team = self._ring[0]
                self._ring.rotate(-1)
                q = self._queues[team]
                if q:
                    mid = q.popleft()
                    self._pending.discard(mid)
                    out.append(mid)
                if not q:
                    self._drop(team)
            return out

    def _drop(self, team: str) -> None:
        self._ring.remove(team)
        del self._queues[team]

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
            self._ring.clear()
            self._pending.clear()


class RedisFairQueue:
    """Round-robin across teams, shared by every process through Redis (atomic Lua scripts)."""

    def __init__(self, url: str):
        self.r = redis.Redis.from_url(url)
        self._push = self.r.register_script(_PUSH)
        self._pop = self.r.register_script(_POP)

    def push(self, team: str, ids: list[int]) -> None:
        for i in range(0, len(ids), 5000):  # bounded arguments per script call
            self._push(
                keys=[f"{PREFIX}:ring", f"{PREFIX}:q:{team}", f"{PREFIX}:pending"],
                args=[team, *ids[i : i + 5000]],
            )

    def pop(self) -> int | None:
        """The next id in round-robin order, or None when every team's queue is empty."""
        ids = self.pop_many(1)
        return ids[0] if ids else None

    def pop_many(self, n: int) -> list[int]:
        """Up to ``n`` ids, each the next one in round-robin order: one round trip."""
        ids = self._pop(keys=[f"{PREFIX}:ring", f"{PREFIX}:q:", f"{PREFIX}:pending"], args=[n])
        return [int(i) for i in ids]

    def clear(self) -> None:
        for key in self.r.scan_iter(f"{PREFIX}:*"):
            self.r.delete(key)


_lock = threading.Lock()
_queues: dict[tuple[str, int], MemoryFairQueue | RedisFairQueue] = {}


def fair_queue(settings) -> MemoryFairQueue | RedisFairQueue:
    """The process's fair queue: Redis-backed with REDIS_URL, else in memory."""
    key = (settings.redis_url, os.getpid())
    with _lock:
        if key not in _queues:
            _queues[key] = RedisFairQueue(settings.redis_url) if settings.redis_url else MemoryFairQueue()
        return _queues[key]


def reset() -> None:
    """Forget this process's in-memory queues (tests: ids of another test's database)."""
    with _lock:
        for q in _queues.values():
            if isinstance(q, MemoryFairQueue):
                q.clear()
