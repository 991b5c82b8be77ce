"""Pass-through mode: when the outbox falls behind, bulk mail goes out untracked.

One PassThrough row (id 1) holds the state every worker of a fleet shares. The scheduler's tick
(``evaluate``) measures how long the oldest due message has waited (outbox.oldest_due, two index
look-ups) and decides, by the operator's mode:

    auto  active once the oldest due message has waited PASS_THROUGH_AFTER_S (0: never), inactive
          again once it waits less than OFF_FRACTION of that: between the two levels it stays as
          it is, so a queue hovering at the threshold does not make it flap
    on    active, whatever the queue;  off: inactive, whatever the queue

While active, the pipeline skips the open pixel and link rewriting of bulk mail (``is_bulk``:
reminders, digests, and API sends of a batch) and notes it on each such message's timeline (a
``pass_through`` event); a single transactional message (an API send without batch_id, an SMTP
submission, a sign-in link, an invitation) is always sent as its producer asked. Workers read the
state through a per-process cache of CACHE_S seconds (``skips_tracking``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.db import session
from app.errors import RequestError
from app.models import MessageEvent, PassThrough
from app.relay import outbox
from app.settings import Settings, get_settings

MODES = ("auto", "on", "off")
OFF_FRACTION = 0.5  # auto switches off below this share of the threshold (hysteresis)
CACHE_S = 5.0  # how long a process believes the state it read
BULK_KINDS = frozenset({"digest", "reminder"})
EVENT = "pass_through"  # the MessageEvent kind of a message sent untracked because of it

_cache: dict[str, tuple[float, bool]] = {}  # database_url -> (monotonic deadline, active)
_lock = threading.Lock()


def reset() -> None:
    """Forget the cached state (tests: another test's database)."""
    with _lock:
        _cache.clear()


def is_bulk(message) -> bool:
    """Whether pass-through may skip the tracking of ``message`` (a row with kind and batch_id)."""
    return message.kind in BULK_KINDS or bool(getattr(message, "batch_id", None))


def is_active(settings: Settings | None = None) -> bool:
    """Whether pass-through is on, as this process last read it (at most CACHE_S seconds ago)."""
    settings = settings or get_settings()
    key, now = settings.database_url, time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit and hit[0] > now:
        return hit[1]
    with session() as s:
        active = current(s).active
    with _lock:
        _cache[key] = (now + CACHE_S, active)
    return active


def skips_tracking(message, settings: Settings | None = None) -> bool:
    """True when the tracking ``message``'s producer asked for is to be skipped now: pass-through is
    active and the message is bulk mail. Every path that adds tracking asks this first; one that
    skips records it (``note``; the pipeline's ``record`` does)."""
    return is_bulk(message) and is_active(settings)


def current(s: Session) -> PassThrough:
    """The state (read-only; a fresh default when no row was written yet)."""
    row = s.get(PassThrough, 1)
    return row if row is not None else PassThrough(id=1)


def _locked(s: Session) -> PassThrough:
    """The row, created when missing, locked until the transaction ends (PostgreSQL; SQLite's
    transactions hold the write lock already)."""
    table = PassThrough.__table__
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    s.execute(insert(table).values(id=1, mode="auto", **_ZERO).on_conflict_do_nothing(index_elements=["id"]))
    return s.execute(select(PassThrough).where(PassThrough.id == 1).with_for_update()).scalar_one()


_ZERO = {"active": False, "threshold_s": 0, "switched_on": 0, "passed": 0, "mode_by": ""}


def _decide(row: PassThrough, wait_s: int, threshold_s: int) -> bool:
    if row.mode != "auto":
        return row.mode == "on"
    if threshold_s <= 0:
        return False
    return wait_s >= threshold_s * (OFF_FRACTION if row.active else 1)


def evaluate(s: Session, *, now: datetime, settings: Settings) -> str | None:
    """Measure the oldest due message's wait, apply the mode and record it all (the caller commits);
    "on" or "off" when this call switched it, else None. Several schedulers may call it at once:
    the row's lock counts each switch once."""
    oldest = outbox.oldest_due(s, now=now)
    wait_s = 0 if oldest is None else max(0, int((now - oldest).total_seconds()))
    row = _locked(s)
    threshold_s = settings.pass_through_after_s
    want = _decide(row, wait_s, threshold_s)
    switched = None
    if want != row.active:
        row.active, row.changed_at = want, now
        row.switched_on += 1 if want else 0
        switched = "on" if want else "off"
    row.oldest_wait_s = None if oldest is None else wait_s
    row.threshold_s, row.evaluated_at = threshold_s, now
    s.add(row)
    s.flush()
    reset()  # this process sees its own change at once; others within CACHE_S
    return switched


def set_mode(s: Session, mode: str, *, by: str, now: datetime, settings: Settings) -> PassThrough:
    """The operator's choice (auto, on or off), applied at once; the state as it is now. RequestError
    naming ``mode`` for anything else."""
    if mode not in MODES:
        raise RequestError(f"mode must be one of {', '.join(MODES)}, not {str(mode)[:20]!r}")
    row = _locked(s)
    row.mode, row.mode_by, row.mode_at = mode, by[:320], now
    s.add(row)
    s.flush()
    evaluate(s, now=now, settings=settings)
    return row


def note(s: Session, message_id: int, *, now: datetime) -> None:
    """Record on the message's timeline that this attempt skipped its tracking."""
    detail = "pass-through: sent without open and click tracking (the queue is behind)"
    s.add(
        MessageEvent(message_id=message_id, kind=EVENT, from_state="sending", detail=detail, created_at=now)
    )
    s.flush()


def count_passed(s: Session, n: int) -> None:
    """Add ``n`` messages to the count of those sent untracked (once per delivery batch, not per
    message: workers do not queue up on the one row)."""
    if n:
        table = PassThrough.__table__
        if not s.execute(update(table).where(table.c.id == 1).values(passed=table.c.passed + n)).rowcount:
            _locked(s).passed += n


def threshold_of(row: PassThrough, settings: Settings) -> int:
    """The threshold the state was last evaluated with, or this process's before any evaluation."""
    return row.threshold_s if row.evaluated_at is not None else settings.pass_through_after_s


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC" if t else ""


def describe(row: PassThrough, settings: Settings) -> list[str]:
    """The state in lines a person reads (``donebox pass-through status``)."""
    by = f" (set by {row.mode_by} at {_when(row.mode_at)})" if row.mode_by else ""
    since = f", since {_when(row.changed_at)}" if row.changed_at else ""
    if row.evaluated_at is None:
        wait = "not measured yet (no scheduler tick since the database was made)"
    elif row.oldest_wait_s is None:
        wait = f"nothing waiting (at {_when(row.evaluated_at)})"
    else:
        wait = f"{row.oldest_wait_s} s (at {_when(row.evaluated_at)})"
    threshold = threshold_of(row, settings)
    level = (
        f"{threshold} s; off again below {int(threshold * OFF_FRACTION)} s"
        if threshold
        else "0: never by itself"
    )
    return [
        f"mode: {row.mode}{by}",
        f"active: {'yes' if row.active else 'no'}{since}",
        f"oldest waiting: {wait}",
        f"threshold (PASS_THROUGH_AFTER_S): {level}",
        f"switched on: {row.switched_on} time(s); passed through: {row.passed} message(s)",
    ]
