"""Sending messages again ("redrive"): one message, or every one a filter matches.

The one rule behind the outbound mail pages' "Send again", ``POST /api/messages/{id}/redrive``,
``POST /api/messages/redrive`` and ``donebox redrive``. A message is sent again when it is
``failed``, ``deferred`` or ``suppressed`` (REDRIVABLE), has not expired, and its recipient is
not suppressed now (a ``suppressed`` message whose entry was since removed goes out; one still
on the list is skipped, with the reason). It moves to ``queued`` with its attempts and error
reset and is due at once (outbox.requeue_many, a compare-and-set: two redrives of the same
messages move each once), with an event naming who redrove it.

Matches are read and moved in batches of BATCH ids in id order, each batch committed on its own,
then handed to ``after_batch`` (the caller's enqueue), so a redrive of a million messages holds
no lock across batches and a crash part-way leaves every moved message queued and findable by
the sweeper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select, true
from sqlmodel import Session

from app.errors import RequestError
from app.models import MAX_ID, OutboundMessage, bad_text, id_in_range
from app.relay import outbox, suppressions
from parsers.message import address_key

REDRIVABLE = ("failed", "deferred", "suppressed")
TIME_FIELDS = ("created", "updated")
BATCH = 500  # ids read and moved per statement
LOST_RACE = "its state changed meanwhile (sent again by someone else, or being sent)"


@dataclass(frozen=True)
class Filter:
    """Which messages to send again: ``ids`` and/or the criteria, within ``scope`` (the teams the
    caller may touch; None: every team). Messages named by id in another state are reported as
    skipped; a filter without ids matches only ``states``."""

    ids: tuple[int, ...] = ()
    team_id: int | None = None
    sender: str = ""  # the Sender that transmitted the last attempt
    states: tuple[str, ...] = REDRIVABLE
    domain: str = ""  # the recipient's domain
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    time_field: str = "created"  # which time since/until bound: created | updated
    scope: tuple[int, ...] | None = None

    def __post_init__(self):
        bad = [s for s in self.states if s not in REDRIVABLE]
        if bad or not self.states:
            raise RequestError(
                f"state must be one of {', '.join(REDRIVABLE)}, not {', '.join(bad) or 'none'}"
            )
        if self.time_field not in TIME_FIELDS:
            raise RequestError(f"time must be one of {', '.join(TIME_FIELDS)}")
        if self.team_id is not None and not id_in_range(self.team_id):
            raise RequestError(f"team_id must be an integer from 1 to {MAX_ID}")
        if not all(id_in_range(i) for i in self.ids):
            raise RequestError(f"ids must be integers from 1 to {MAX_ID}")
        for name, value, most in (("sender", self.sender, 64), ("domain", self.domain, 255)):
            if len(value) > most:
                raise RequestError(f"{name} is longer than {most} characters")
            why = bad_text(value)
            if why:
                raise RequestError(f"{name} {why}", 422)
        for when in (self.since, self.until):
            if when is not None and when.tzinfo is None:
                raise RequestError("since and until need a UTC offset")
        object.__setattr__(self, "domain", self.domain.strip().lower().lstrip("@"))

    def condition(self):
        """The WHERE clause of the messages this filter matches (before the per-message checks)."""
        M = OutboundMessage
        conds = [M.id.in_(sorted(set(self.ids)))] if self.ids else [M.state.in_(self.states)]
        if self.ids and self.states != REDRIVABLE:
            conds.append(M.state.in_(self.states))
        if self.scope is not None:
            conds.append(M.team_id.in_(self.scope))
        if self.team_id is not None:
            conds.append(M.team_id == self.team_id)
        if self.sender:
            conds.append(M.sender == self.sender)
        if self.domain:
            conds.append(func.lower(M.to_addr).endswith("@" + self.domain, autoescape=True))
        column = M.created_at if self.time_field == "created" else M.updated_at
        if self.since is not None:
            conds.append(column >= self.since)
        if self.until is not None:
            conds.append(column < self.until)
        return and_(true(), *conds)


@dataclass
class Result:
    """What a redrive did: the ids sent again (or that would be, in a dry run), the matched ones
    it left alone with the reason, and the asked-for ids that do not exist within reach."""

    redriven: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    not_found: list[int] = field(default_factory=list)


def _why_not(row, reasons: dict[str, str], now: datetime) -> str:
    """'' when the message may be sent again now; otherwise why not, in words."""
    if row.state not in REDRIVABLE:
        return f"it is {row.state}: only {', '.join(REDRIVABLE)} messages are sent again"
    if row.expires_at is not None and row.expires_at <= now:
        return f"it expired at {row.expires_at:%Y-%m-%d %H:%M} UTC"
    reason = reasons.get(address_key(row.to_addr), "")
    if suppressions.stops(reason, row.kind):
        return f"{row.to_addr} is still suppressed ({reason})"
    return ""


def redrive(
    s: Session,
    flt: Filter,
    *,
    actor: str,
    now: datetime,
    lease_s: int,
    dry_run: bool = False,
    after_batch: Callable[[list[int]], None] | None = None,
) -> Result:
    """Send again the messages ``flt`` matches (see the module docstring); ``actor`` names who asked,
    on each message's timeline. Each batch is committed, then its moved ids go to ``after_batch``.
    ``dry_run``: nothing is changed; ``redriven`` lists what would be sent again."""
    M = OutboundMessage
    result, last, cond = Result(), 0, flt.condition()
    columns = (M.id, M.state, M.to_addr, M.kind, M.expires_at)
    while True:
        stmt = select(*columns).where(cond, M.id > last).order_by(M.id).limit(BATCH)
        rows = s.execute(stmt).all()
        if not rows:
            break
        last = rows[-1].id
        reasons = suppressions.reasons(s, (r.to_addr for r in rows), now=now)
        go = []
        for r in rows:
            why = _why_not(r, reasons, now)
            if why:
                result.skipped[r.id] = why
            else:
                go.append(r.id)
        if dry_run:
            result.redriven += go
            continue
        moved = outbox.requeue_many(
            s, go, expected=REDRIVABLE, now=now, lease_s=lease_s, detail=f"sent again by {actor}"
        )
        result.skipped.update({mid: LOST_RACE for mid in go if mid not in moved})
        s.commit()
        ids = sorted(moved)
        result.redriven += ids
        if after_batch is not None and ids:
            after_batch(ids)
    if flt.ids:
        seen = set(result.redriven) | set(result.skipped)
        result.not_found = sorted(set(flt.ids) - seen)
    return result
