"""Processing stored inbound mail into entries: the body of the process_inbound jobs.

Parse (the provider's adapter on the stored payload, or the raw MIME), apply bounce,
complaint and unsubscribe reports, identify the member, extract the reply and hand the
entries to the check-in domain. Inbound ``state`` is written only here:

    received -> processed | ignored | unverified | failed ;  failed | processed -> received (reprocess)
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlmodel import Session

from app.checkins import entries
from app.checkins.outgoing import reminder_text
from app.checkins.reply_tokens import token_from_address
from app.checkins.times import local_date
from app.inbound.accept import text
from app.inbound.identify import Senders, find_senders, identify, is_automatic
from app.models import Entry, InboundMessage
from app.relay import feedback, tracking
from app.settings import Settings
from parsers.entries import split_entries
from parsers.message import InboundEmail, parse_mime
from parsers.providers import PROVIDERS, Payload
from parsers.reply import extract_reply

log = logging.getLogger("donebox.inbound")


def _set_state(s: Session, inbound_id: int, state: str, expected: tuple[str, ...], **values) -> bool:
    table = InboundMessage.__table__
    res = s.connection().execute(  # core, not ORM: the compare-and-set is all we need
        update(table)
        .where(table.c.id == inbound_id, table.c.state.in_(expected))
        .values(state=state, **values)
    )
    return res.rowcount == 1


class Raced(Exception):
    """Raised when a row left ``received`` under a locked batch (it cannot): nothing is kept."""


def _set_states(s: Session, changes: list[dict]) -> None:
    """Move rows from received to their new state: one executemany UPDATE per set of columns."""
    table = InboundMessage.__table__
    groups: dict[tuple[str, ...], list[dict]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    for columns, rows in groups.items():
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.state == "received")
            .values({c: bindparam(f"b_{c}") for c in columns if c != "id"})
        )
        params = [{f"b_{c}": row[c] for c in columns} for row in rows]
        if s.connection().execute(stmt, params).rowcount != len(rows):
            raise Raced([row["id"] for row in rows])


def unsubscribe_request(s: Session, email: InboundEmail, settings: Settings, now: datetime) -> str:
    """Mail to ``unsubscribe+<token>@`` (the mailto of our List-Unsubscribe header): suppress the
    recipient of the token's message, as the https link does; what happened, or '' for other mail."""
    for addr in (*email.envelope_to, *email.to, *email.cc):
        token = token_from_address(addr, settings.reply_domain, "unsubscribe")
        if token is None:
            continue
        message_id = tracking.verify_mailto_token(settings.secret_key, token)
        if message_id is None:
            return f"unsubscribe request to {addr[:200]}: its token does not verify (nothing changed)"
        agent = f"mail from {email.from_addr}"[:200]
        who = tracking.unsubscribe(s, message_id, now=now, user_agent=agent, via="mailto")
        if who is None:
            return f"unsubscribe request for message {message_id}, which does not exist"
        return f"unsubscribe request (List-Unsubscribe mailto): {who} is suppressed"
    return ""


def _outcome(
    email: InboundEmail,
    senders: Senders,
    settings: Settings,
    now: datetime,
    reminders: dict,
    report: str = "",
):
    """(state, row values, entry drafts and their member/team/day) of one parsed message;
    ``report`` says what a bounce or complaint report in it was (applied by app.relay.feedback)."""
    base = {
        "processed_at": now,
        "message_id": text(email.message_id)[:1000],
        "from_addr": text(email.from_addr)[:320],
        "subject": text(email.subject),
        "notes": text("\n".join(email.notes))[:4000],
    }
    if not email.headers and not email.from_addr:
        why = "; ".join(email.notes) or "the payload holds no message"
        return "failed", {**base, "error": text(why)[:4000]}, None
    why = report or is_automatic(email)
    if why:
        return "ignored", {**base, "error": text(why)[:4000]}, None
    member, team, day, how = identify(email, senders, settings, now=now)
    if member is None:
        return "unverified", {**base, "error": text(how)[:4000]}, None
    day = day or local_date(now, member.timezone or team.timezone)
    # our own reminder is known text: where the quote holds it, the cut is certain
    if (member.id, day) not in reminders:
        reminders[member.id, day] = tuple(
            line for line in reminder_text(member, team, day, settings).splitlines() if line.strip()
        )
    reply = extract_reply(email, known_quotes=reminders[member.id, day])
    values = {
        **base,
        "member_id": member.id,
        "day": day,
        "error": "",
        "reply_text": text(reply.text),
        "quoted_text": text(reply.quoted),
        "signature_text": text(reply.signature),
    }
    return "processed", values, (member, team, day, split_entries(reply.text))


def process_many(s: Session, inbound_ids: list[int], *, now: datetime, settings: Settings) -> dict[int, str]:
    """Turn received messages into entries in one transaction; their new states by id (idempotent).

    The rows are read (and, on PostgreSQL, locked) in one query, their senders in at most
    three, their new states written by one UPDATE per outcome and their entries by one
    INSERT (``entries.add_many``). A message whose parsing or extraction raises is stored
    ``failed`` with the reason and the others go on; a database error fails the whole call
    (nothing is kept).
    """
    table = InboundMessage.__table__
    wanted = sorted(set(inbound_ids))
    rows = s.execute(
        select(
            table.c.id, table.c.provider, table.c.raw, table.c.payload, table.c.payload_type, table.c.state
        )
        .where(table.c.id.in_(wanted))
        .order_by(table.c.id)
        .with_for_update()  # SQLite: the session's BEGIN IMMEDIATE already holds the write lock
    ).all()
    states = dict.fromkeys(wanted, "missing")
    raws = {row.id: row.raw or b"" for row in rows}
    parsed: list[tuple[int, InboundEmail]] = []
    changes: list[dict] = []
    for row in rows:
        if row.state != "received":
            states[row.id] = row.state
            continue
        try:
            parsed.append((row.id, load_email(row)))
        except Exception as e:  # noqa: BLE001 - recorded on the row for `donebox inbound reprocess`
            log.exception("inbound %s failed", row.id)
            states[row.id] = "failed"
            changes.append({"id": row.id, "state": "failed", "error": _why(e), "processed_at": now})
    senders = find_senders(s, [email for _, email in parsed], settings)
    reminders: dict = {}
    replies: list[entries.Reply] = []
    for iid, email in parsed:
        try:
            # List-Unsubscribe mailto requests, and bounces and complaints about our mail (which
            # move it and suppress the address), make no entries
            report = unsubscribe_request(s, email, settings, now) or feedback.record_report(
                s, email, raws[iid], ref=f"inbound:{iid}", now=now
            )
            state, values, made = _outcome(email, senders, settings, now, reminders, report)
        except Exception as e:  # noqa: BLE001 - as above
            log.exception("inbound %s failed", iid)
            state, values, made = "failed", {"error": _why(e), "processed_at": now}, None
        states[iid] = state
        changes.append({"id": iid, "state": state, **values})
        if made is not None:
            member, team, day, drafts = made
            replies.append(entries.Reply(team.id, member.id, day, iid, drafts))
    _set_states(s, changes)
    entries.add_many(s, replies, now=now)
    return states


def _why(e: BaseException) -> str:
    return text(f"{type(e).__name__}: {e}")[:4000]


def process(s: Session, inbound_id: int, *, now: datetime, settings: Settings) -> str:
    """Turn one received message into entries; returns its new state (idempotent)."""
    return process_many(s, [inbound_id], now=now, settings=settings)[inbound_id]


def fail(s: Session, inbound_id: int, error: str, *, now: datetime) -> None:
    """Record that processing failed; the raw message stays, ready for reprocessing."""
    _set_state(s, inbound_id, "failed", ("received",), error=text(error)[:4000], processed_at=now)


def reset_for_reprocess(s: Session, inbound_ids: list[int]) -> list[int]:
    """Put messages back to received (dropping the entries they made); the ids that moved."""
    moved = []
    for iid in inbound_ids:
        s.execute(delete(Entry).where(Entry.inbound_id == iid))
        if _set_state(s, iid, "received", ("failed", "processed", "unverified", "ignored"), error=""):
            moved.append(iid)
    return moved


def load_email(row) -> InboundEmail:
    """The normalized email of a stored message (an InboundMessage or a row with its provider,
    payload, payload_type and raw): its provider's adapter on the stored payload, or the raw MIME."""
    provider = PROVIDERS.get(row.provider)
    if row.payload is not None and provider is not None:
        return provider.parse(Payload(row.payload, row.payload_type))
    return parse_mime(row.raw, provider=row.provider)
