"""Renders shared by every recipient of a batch: a team's digest of a day is rendered once.

A kind registered ``shared`` (app.relay.render) has the same context, text and HTML for every
recipient of a team's batch; the pipeline keys them by team and batch (the rows' ``created_at``),
so a key never names another batch and a later batch renders afresh. Building a digest's context
is several database queries and its render a Jinja2 template and CSS inlining, so it is kept:

- in the process (its HTML compressed), SHARED_RENDER_S seconds and at most SHARED_RENDER_MAX
  batches (the least recently used go first, and so do those past their time whenever a render is
  put: a process holds what it rendered lately, not SHARED_RENDER_MAX renders however old). The
  fair queue hands messages out one team at a time round the ring, so every batch in flight is
  wanted again a ring later;
- with what later steps derive from it (``derived``: the tracking plan of its HTML, where the
  tokens go), made once per process and dropped with the render;
- in Redis, when REDIS_URL is set, for the same time: the worker processes render a batch once
  between them, not once each (compressed JSON). Redis being away only costs the render.

What is kept of the context is what the later steps read (its ``_`` keys: ``_headers``,
``_track``, ``_reply_domain``) and its plain values (a kind's per-recipient ``headers`` read them,
the digest's ``day``): JSON, never pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime
from typing import TypeVar

import redis

from app.relay import packing

log = logging.getLogger("donebox.relay")

SHARED_RENDER_S = 300.0  # longer than a big batch takes to drain
SHARED_RENDER_MAX = 2048  # team batches in flight in a process at once
PREFIX = "donebox:render:"
T = TypeVar("T")
_PLAIN = (str, int, float, bool, type(None), date)  # datetime is a date


def portable(context: dict) -> dict:
    """The part of ``context`` that is kept: ``_`` keys and values that are plain, dates or
    dicts of strings (ORM rows and lists of them are dropped)."""
    kept = {}
    for k, v in context.items():
        if isinstance(v, _PLAIN) or (
            isinstance(v, dict) and all(isinstance(x, str) for x in (*v, *v.values()))
        ):
            kept[k] = v
    return kept


def _dumps(context: dict, text: str, html: str) -> bytes:
    def default(v):
        if isinstance(v, datetime):
            return {"$datetime": v.isoformat()}
        if isinstance(v, date):
            return {"$date": v.isoformat()}
        raise TypeError(type(v).__name__)

    # compressed: a digest's HTML shrinks several times, and Redis holds every batch in flight;
    # zlib, as every earlier version wrote and reads it (processes of two versions share Redis
    # while a fleet upgrades); the copy a process keeps for itself is packed (app.relay.packing)
    return zlib.compress(
        json.dumps({"context": context, "text": text, "html": html}, default=default).encode(), 1
    )


def _loads(raw: bytes) -> tuple[dict, str, str]:
    def hook(d: dict):
        if d.keys() == {"$date"}:
            return date.fromisoformat(d["$date"])
        if d.keys() == {"$datetime"}:
            return datetime.fromisoformat(d["$datetime"])
        return d

    got = json.loads(zlib.decompress(raw), object_hook=hook)
    return got["context"], got["text"], got["html"]


class SharedRenders:
    """(context, text, html) by a shared render's key: the process's, then Redis's."""

    def __init__(self, most: int = SHARED_RENDER_MAX):
        self.most = most
        # key -> (until, context, the text's length, text and HTML packed together (app.relay.packing),
        # what was derived from it by name): a process keeps the render of every team's batch in
        # flight (hundreds in a big send, up to SHARED_RENDER_MAX), and their text and HTML were
        # most of a worker's memory
        self._items: OrderedDict[tuple, tuple[float, dict, int, bytes, dict]] = OrderedDict()
        self._lock = threading.Lock()
        self._redis: dict[str, redis.Redis] = {}

    def _r(self, url: str) -> redis.Redis | None:
        if not url:
            return None
        with self._lock:
            if url not in self._redis:
                self._redis[url] = redis.Redis.from_url(url, socket_timeout=2)
            return self._redis[url]

    @staticmethod
    def _name(key: tuple) -> str:
        return PREFIX + hashlib.sha256(repr(key).encode()).hexdigest()

    def _local(self, key: tuple, context: dict, text: str, html: str, until: float) -> None:
        packed = packing.pack((text + html).encode("utf-8"))  # the text's length keeps them apart
        now = time.monotonic()
        with self._lock:
            self._items[key] = (until, context, len(text), packed, {})
            self._items.move_to_end(key)
            while len(self._items) > self.most:
                self._items.popitem(last=False)
            # renders past their time go too, least recently used first: what a process holds is
            # what it rendered in the last SHARED_RENDER_S, not SHARED_RENDER_MAX renders however old
            while self._items and next(iter(self._items.values()))[0] <= now:
                self._items.popitem(last=False)

    def get(self, key: tuple, redis_url: str = "") -> tuple[dict, str, str] | None:
        """The kept render of ``key``, or None."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > now:
                self._items.move_to_end(key)
                both = packing.unpack(hit[3]).decode("utf-8")
                return hit[1], both[: hit[2]], both[hit[2] :]
            if hit is not None:
                del self._items[key]
        r = self._r(redis_url)
        if r is None:
            return None
        try:
            raw = r.get(self._name(key))
        except redis.RedisError as e:
            log.warning("shared render not read from Redis: %s", e)
            return None
        if raw is None:
            return None
        context, text, html = _loads(raw)
        self._local(key, context, text, html, now + SHARED_RENDER_S)
        return context, text, html

    def has(self, key: tuple, redis_url: str = "") -> bool:
        """Whether a render of ``key`` is kept (``get`` without unpacking the process's copy)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return True
        return self.get(key, redis_url) is not None

    def derived(self, key: tuple, name: str, make: Callable[[], T]) -> T:
        """What ``make`` derives from the render of ``key`` (named ``name``): made once while the
        render is kept in this process, and kept with it; made each time when it is not."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and name in hit[4]:
                return hit[4][name]
        value = make()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                hit[4][name] = value
        return value

    def put(self, key: tuple, context: dict, text: str, html: str, redis_url: str = "") -> dict:
        """Keep the render of ``key``; returns the context as kept (``portable``)."""
        context = portable(context)
        self._local(key, context, text, html, time.monotonic() + SHARED_RENDER_S)
        r = self._r(redis_url)
        if r is not None:
            try:
                r.set(self._name(key), _dumps(context, text, html), ex=int(SHARED_RENDER_S))
            except redis.RedisError as e:
                log.warning("shared render not kept in Redis: %s", e)
        return context

    def clear(self) -> None:
        """Forget every kept render (tests: another test's database), in the Redis servers this
        process kept them in too."""
        with self._lock:
            self._items.clear()
            servers = list(self._redis.values())
        for r in servers:
            try:
                names = list(r.scan_iter(PREFIX + "*", count=1000))
                if names:
                    r.delete(*names)
            except redis.RedisError as e:
                log.warning("shared renders not cleared in Redis: %s", e)
