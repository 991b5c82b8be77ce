"""Delivery feedback applied: provider webhooks and bounce mail -> message state, suppressions, events.

The one place that decides what a ``DeliveryEvent`` (parsers/providers/events.py) does: ``EFFECTS``
maps our event kinds to a state (through app.relay.outbox's compare-and-set, so a late event
never moves a message backwards) and a suppression. ``apply_events`` applies a batch in
one transaction with a fixed number of statements:

    drop events already recorded (provider event ids are unique: a retried batch adds nothing)
    find each event's message (our id, our Message-ID, the provider's id)
    move messages, by target state, in the order states follow each other
    insert the remaining events, and the suppressions (through app.relay.suppressions)

Soft bounces suppress nothing one by one: an address with SOFT_BOUNCE_LIMIT of them recorded
within SOFT_BOUNCE_WINDOW_DAYS (since its last soft-bounce entry, if any) is suppressed for
SOFT_BOUNCE_SUPPRESS_DAYS (``soft_bounced``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.models import MessageEvent, OutboundMessage, Suppression
from app.relay import outbox, suppressions, verp, webhooks
from app.relay.tracking import is_machine
from app.settings import Settings, get_settings
from parsers.dsn import Report, delivery_events, parse_report
from parsers.message import InboundEmail
from parsers.providers.events import DeliveryEvent

log = logging.getLogger("donebox.events")


@dataclass(frozen=True)
class Effect:
    """What one kind of event does: a state to move to (from ``expected``) and a suppression."""

    state: str = ""
    expected: tuple[str, ...] = ()
    suppress: str = ""  # a reason of app.relay.suppressions: bounce | complaint | unsubscribe


DELIVERED = Effect("delivered", ("sent",))
HIT_KINDS = (
    "open",
    "click",
    "unsubscribe",
)  # provider events that are webhooks as they are (webhooks.FROM_EVENT)
EFFECTS: dict[str, Effect] = {
    "processed": Effect(),
    "delivered": DELIVERED,
    "deferred": Effect(),
    "soft_bounce": Effect(),  # not proof the address is bad: the message keeps its state
    "bounce": Effect("bounced", ("sent", "delivered"), "bounce"),
    "dropped": Effect(),  # the suppression depends on why (DROPPED)
    "complaint": Effect("complained", ("sent", "delivered"), "complaint"),
    "unsubscribe": Effect(suppress="unsubscribe"),
    "open": Effect(),
    "click": Effect(),
}
# a provider dropped the message because of the address: suppress it here too
DROPPED = {"bounce": "bounce", "invalid": "bounce", "complaint": "complaint", "unsubscribe": "unsubscribe"}
# state changes of one batch are applied in the order states follow each other (DESIGN.md)
ORDER = ("delivered", "bounced", "complained")
CHUNK = 500  # ids per IN (...) lookup
MAX_RAW = 8000  # characters of the provider's record kept with an event


@dataclass
class Counts:
    """What a batch did, for the webhook's answer and the log."""

    received: int = 0
    applied: int = 0  # events recorded (with or without a state change)
    moved: int = 0  # messages whose state changed
    suppressed: int = 0  # addresses added to (or strengthened in) the suppression list
    duplicates: int = 0  # events recorded before (a provider's retry)
    unknown: int = 0  # events about no message of ours
    unknown_refs: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        """The counts, as the webhooks answer them."""
        keys = ("received", "applied", "moved", "suppressed", "duplicates", "unknown")
        return {k: getattr(self, k) for k in keys}


def _chunks(values: list, size: int = CHUNK):
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _known_ids(s: Session, event_ids: list[str]) -> set[str]:
    col = MessageEvent.provider_event_id
    found: set[str] = set()
    for part in _chunks(event_ids):
        found.update(s.execute(select(col).where(col.in_(part))).scalars())
    return found


def all_recorded(s: Session, events: list[DeliveryEvent]) -> bool:
    """Whether every event of ``events`` was recorded before (a provider's retry of a request)."""
    ids = list({e.event_id for e in events})
    return len(_known_ids(s, ids)) == len(ids)


def _messages(s: Session, column, values: Iterable, *, every: bool = False) -> dict:
    """{value of ``column``: (id, to_addr, team_id)} for the messages whose ``column`` is in
    ``values`` (the first by id; ``every``: a list of all of them, in id order)."""
    M = OutboundMessage
    values = sorted({v for v in values if v})
    out: dict = {}
    for part in _chunks(values):
        stmt = select(column, M.id, M.to_addr, M.team_id).where(column.in_(part))
        if column is M.provider_id:  # its index holds only the set ones (migration 0032): say so
            stmt = stmt.where(column != "")
        rows = s.execute(stmt.order_by(M.id))
        for key, mid, to, team_id in rows:
            if every:
                out.setdefault(key, []).append((mid, to, team_id))
            else:
                out.setdefault(key, (mid, to, team_id))
    return out


def _match(s: Session, events: list[DeliveryEvent]) -> list[tuple[int, str, int | None] | None]:
    """Each event's message (id, to_addr, team_id): by our id, then our Message-ID, then the provider's id."""
    M = OutboundMessage
    by_id = _messages(s, M.id, (e.outbound_id for e in events))
    by_msgid = _messages(s, M.message_id, (i for e in events for i in e.message_ids), every=True)
    rest = [e.provider_id for e in events if e.outbound_id not in by_id and e.provider_id]
    by_provider = _messages(s, M.provider_id, rest)
    out = []
    for e in events:
        found = by_id.get(e.outbound_id)
        found = found or next(
            (_recipients(by_msgid[i], e.recipient) for i in e.message_ids if i in by_msgid), None
        )
        out.append(found or by_provider.get(e.provider_id))
    return out


def _recipients(rows: list[tuple[int, str, int | None]], recipient: str) -> tuple[int, str, int | None]:
    """Of the messages sharing one Message-ID (a composed message's recipients), the one to
    ``recipient``; the first when none is."""
    return next((r for r in rows if r[1].lower() == recipient), rows[0])


def _detail(e: DeliveryEvent, mismatch: str = "") -> str:
    info: dict = {"source": e.source, "event": e.kind}
    if e.kind in ("open", "click"):  # the same shape as our own tracking hits (app.relay.tracking)
        ua = e.detail.get("user_agent", "")
        info["ua"] = ua[:500]
        info["machine"] = is_machine(ua) if ua else bool(e.detail.get("machine_open"))
    info.update({k: v for k, v in e.detail.items() if k != "user_agent"})
    if e.recipient:
        info["recipient"] = e.recipient
    if e.cause:
        info["cause"] = e.cause
    if e.at is not None:
        info["at"] = e.at.isoformat()
    if mismatch:
        info["note"] = mismatch
    if e.raw:
        raw = json.dumps(e.raw, sort_keys=True, default=str)
        info["raw"] = e.raw if len(raw) <= MAX_RAW else f"omitted ({len(raw)} characters)"
    return json.dumps(info, default=str)


def _suppression(e: DeliveryEvent) -> str:
    if e.kind == "dropped":
        return DROPPED.get(e.cause, "")
    return EFFECTS[e.kind].suppress


def _insert(s: Session):
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


def soft_bounced(s: Session, addresses: Iterable[str], *, now: datetime, settings: Settings) -> list[str]:
    """Those of ``addresses`` (address keys) with SOFT_BOUNCE_LIMIT soft bounces recorded within
    the window, counting only those after the address's last soft-bounce entry; one statement."""
    wanted = sorted(set(addresses))
    if not wanted:
        return []
    to = func.lower(OutboundMessage.to_addr)
    earlier = (Suppression.email == to) & (Suppression.reason == "soft_bounce")
    stmt = (
        select(to)
        .select_from(MessageEvent)
        .join(OutboundMessage, OutboundMessage.id == MessageEvent.message_id)
        .outerjoin(Suppression, earlier)
        .where(
            MessageEvent.kind == "soft_bounce",
            MessageEvent.created_at >= now - timedelta(days=settings.soft_bounce_window_days),
            to.in_(wanted),
            or_(Suppression.id.is_(None), MessageEvent.created_at > Suppression.created_at),
        )
        .group_by(to)
        .having(func.count() >= settings.soft_bounce_limit)
    )
    return sorted(s.execute(stmt).scalars())


def apply_events(
    s: Session, events: list[DeliveryEvent], *, now: datetime, settings: Settings | None = None
) -> Counts:
    """Apply a batch of events in the caller's transaction (see the module docstring); the counts.

    An event about no message of ours is counted (``unknown``) and logged, not an error; one whose
    recipient is not the message's is recorded with a note and changes nothing.
    """
    counts = Counts(received=len(events))
    unique: dict[str, DeliveryEvent] = {}
    for e in events:
        if e.kind in EFFECTS:
            unique.setdefault(e.event_id, e)
    counts.duplicates = len(events) - len(unique)
    known = _known_ids(s, list(unique))
    counts.duplicates += len(known)
    fresh = [e for eid, e in unique.items() if eid not in known]
    if not fresh:
        return counts
    matched = _match(s, fresh)
    moves: dict[str, dict[int, dict]] = {state: {} for state in ORDER}
    expected = {state: () for state in ORDER}
    plain: list[tuple[int, DeliveryEvent, str]] = []  # (message, event, note): events that move nothing
    to_suppress: dict[str, suppressions.Item] = {}  # {address: entry} of the batch
    soft: dict[str, suppressions.Item] = {}  # {address: the entry its last soft bounce would make}
    for e, found in zip(fresh, matched, strict=True):
        if found is None:
            counts.unknown += 1
            counts.unknown_refs.append(e.event_id)
            continue
        mid, to_addr, team_id = found
        to_addr = to_addr.lower()
        if e.recipient and e.recipient != to_addr:
            plain.append((mid, e, f"the recipient is not the message's ({to_addr}): nothing changed"))
            continue
        effect = EFFECTS[e.kind]
        if effect.state and mid not in moves[effect.state]:
            moves[effect.state][mid] = e
            expected[effect.state] = effect.expected
        else:
            plain.append((mid, e, ""))
        reason = _suppression(e)
        earlier = to_suppress.get(to_addr, suppressions.Item("", "", team_id))
        status = e.detail.get("status", "")
        why = e.detail.get("diagnostic") or e.detail.get("reason") or e.detail.get("response") or ""
        detail = f"{e.source} {e.kind} {status} {why}".strip() + f" (message {mid})"
        if reason and reason == earlier.reason and team_id != earlier.team_id:  # two teams' mail
            to_suppress[to_addr] = earlier._replace(team_id=None)
        elif reason and suppressions.stronger(reason, earlier.reason):
            to_suppress[to_addr] = suppressions.Item(reason, detail, team_id, None, e.kind, e.event_id, mid)
        if e.kind == "soft_bounce":
            soft[to_addr] = suppressions.Item("soft_bounce", detail, team_id, None, e.kind, e.event_id, mid)
    hooks: list[tuple[int, str, str]] = []  # the webhooks owed, written in one go below
    for state in ORDER:
        pending = moves[state]
        if not pending:
            continue
        fields = {mid: {"detail": _detail(e), "provider_event_id": e.event_id} for mid, e in pending.items()}
        moved = outbox.transition_many(s, state, fields, expected=expected[state], now=now, hooks=hooks)
        counts.moved += len(moved)
        # a late event (the message is past this state) is still recorded, as what it is
        plain += [(mid, e, "") for mid, e in pending.items() if mid not in moved]
    if plain:
        rows = [
            {
                "message_id": mid,
                "kind": e.kind,
                "from_state": "",
                "detail": _detail(e, note),
                "provider_event_id": e.event_id,
                "created_at": now,
            }
            for mid, e, note in plain
        ]
        stmt = _insert(s)(MessageEvent.__table__).on_conflict_do_nothing(
            index_elements=["provider_event_id"], index_where=MessageEvent.provider_event_id.is_not(None)
        )
        s.execute(stmt, rows)
        # engagement the provider tracked is an event of its own; a late state event is not again
        hooks += [(r["message_id"], r["kind"], r["detail"]) for r in rows if r["kind"] in HIT_KINDS]
    webhooks.emit_messages(s, hooks, now=now)
    counts.applied = len(fresh) - counts.unknown
    settings = settings or get_settings()
    until = now + timedelta(days=settings.soft_bounce_suppress_days)
    for addr in soft_bounced(s, soft, now=now, settings=settings):
        if addr not in to_suppress:
            item = soft[addr]
            limit, days = settings.soft_bounce_limit, settings.soft_bounce_window_days
            detail = f"{limit} soft bounces within {days} days, the last: {item.detail}"
            to_suppress[addr] = item._replace(detail=detail, expires_at=until)
    counts.suppressed = suppressions.add_many(s, to_suppress, now=now)
    if counts.unknown:
        log.info("%d event(s) about no message of ours, e.g. %s", counts.unknown, counts.unknown_refs[:3])
    return counts


def record_report(
    s: Session, email: InboundEmail, raw: bytes = b"", *, ref: str, now: datetime, secret: str = ""
) -> str:
    """For inbound mail: when it is a bounce or complaint report, apply it and say what it was.

    Returns '' for any other mail. ``ref`` names the inbound message (``inbound:<id>``), so
    processing it again records nothing twice. With ``secret`` (SECRET_KEY), a VERP address among
    the mail's recipients names the message the report is about.
    """
    to = (*email.envelope_to, *email.to) if secret else ()
    return apply_report(s, parse_report(email, raw), ref=ref, now=now, to=to, secret=secret)


def apply_report(
    s: Session,
    report: Report | None,
    *,
    ref: str,
    now: datetime,
    to: Iterable[str] = (),
    secret: str = "",
) -> str:
    """Apply a report already parsed (``parsers.dsn.parse_report``, outside any transaction) and
    say what it was; '' for None. Idempotent by ``ref``, as ``record_report``.

    A ``bounces+<token>@`` address among ``to`` (the mail's recipients) whose token checks under
    ``secret`` names the message, before any Message-ID the report quotes; a token that does not
    check is ignored, and said in the answer."""
    if report is None:
        return ""
    events = delivery_events(report, ref)
    outbound_id, note = verp.message_of(to, secret) if secret else (None, "")
    if outbound_id is not None:
        events = [replace(e, outbound_id=outbound_id) for e in events]
    elif note:
        log.info("report %s: %s", ref, note)
    note = f"; {note}" if note else ""
    counts = apply_events(s, events, now=now)
    kinds = ", ".join(sorted({e.kind for e in events})) or "no recipient named"
    label = {"dsn": "delivery status notification", "arf": "complaint report"}.get(report.kind, "bounce")
    if counts.unknown == len(events) and events:
        return (
            f"{label} ({kinds}) about no message of ours ({report.original_message_id or 'no Message-ID'})"
            + note
        )
    return f"{label} ({kinds}): {counts.applied} event(s) recorded, {counts.moved} message(s) moved" + note
