"""Inbound mail: durable acceptance, then processing into entries.

``accept`` stores the raw bytes under a dedupe key and commits; a second copy of
the same mail is reported as a duplicate and stores nothing. ``process`` is the
body of the process_inbound job: identify the member, extract the reply, store
entries. Inbound ``state`` is written only here:

    received -> processed | ignored | unverified | failed ;  failed | processed -> received (reprocess)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session

from app import events
from app.checkins import reminder_text
from app.models import Entry, InboundMessage, Member, OutboundMessage, Team, WebhookToken
from app.relay import tracking
from app.schedule import local_date
from app.settings import Settings
from app.tokens import token_from_address, verify_reply_token
from parsers.entries import split_entries
from parsers.message import InboundEmail, headers_digest, parse_mime
from parsers.providers import PROVIDERS, Keys, Payload
from parsers.reply import extract_reply

log = logging.getLogger("donebox.inbound")

_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|auto(matic)?[ -]?reply|autoreply|abwesenheit|absence|"
    r"réponse automatique|respuesta automática|vacation|on vacation)\b",
    re.IGNORECASE,
)


def text(value: str) -> str:
    """Text a database column can hold: PostgreSQL refuses NUL characters, hostile mail has them."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


STATES = ("received", "processed", "ignored", "unverified", "failed")


class Replayed(Exception):
    """Raised by ``accept`` when its webhook token was already used; nothing is stored."""


def dedupe_key(provider: str, keys: Keys) -> str:
    """Provider id where one exists, else Message-ID + envelope recipient, else the header hash."""
    if keys.provider_id:
        return text(f"{provider}:{keys.provider_id}")[:512]
    if keys.message_id:
        rcpt = keys.envelope_to[0] if keys.envelope_to else ""
        return text(f"msgid:{keys.message_id}|{rcpt}")[:512]
    return f"sha256:{keys.header_hash or headers_digest(b'')}"


def _insert(s: Session):
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


def remember_token(s: Session, provider: str, token: str, *, now: datetime) -> None:
    """Record a signed webhook token as used; raises Replayed when it already was."""
    table = WebhookToken.__table__
    stmt = (
        _insert(s)(table)
        .values(provider=provider, token=token[:255], seen_at=now)
        .on_conflict_do_nothing(index_elements=["token"])
        .returning(table.c.id)
    )
    if s.execute(stmt).scalar() is None:
        raise Replayed(token)


def forget_tokens(s: Session, *, before: datetime) -> int:
    """Drop used tokens older than ``before`` (their timestamps are refused as stale anyway)."""
    return s.execute(delete(WebhookToken).where(WebhookToken.seen_at < before)).rowcount


def accept(
    s: Session,
    *,
    provider: str,
    raw: bytes,
    key: str,
    now: datetime,
    payload: bytes | None = None,
    payload_type: str = "",
    **fields,
) -> tuple[int, bool]:
    """Store one inbound message (raw MIME and the provider's payload) unless ``key`` is known;
    (id, duplicate). The caller commits before answering."""
    table = InboundMessage.__table__
    insert = _insert(s)
    stmt = (
        insert(table)
        .values(
            provider=provider,
            dedupe_key=key,
            raw=raw,
            state="received",
            received_at=now,
            error="",
            subject="",
            reply_text="",
            quoted_text="",
            signature_text="",
            payload=payload,
            payload_type=payload_type[:255],
            notes="",
            **fields,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.id)
    )
    new_id = s.execute(stmt).scalar()
    if new_id is not None:
        return new_id, False
    return s.execute(select(table.c.id).where(table.c.dedupe_key == key)).scalar_one(), True


def accept_many(conn: Connection, items: list[tuple], *, now: datetime) -> list[tuple[int, bool]]:
    """Store several messages in one statement; items are (provider, raw, key, payload, payload_type).

    Returns (id, duplicate) per item, in order; within the group, the first of two equal keys wins.
    ``conn`` is a Core connection (the group-commit writer's own); the caller commits.
    """
    table = InboundMessage.__table__
    rows = [
        {
            "provider": provider,
            "dedupe_key": key,
            "raw": raw,
            "state": "received",
            "received_at": now,
            "error": "",
            "subject": "",
            "reply_text": "",
            "quoted_text": "",
            "signature_text": "",
            "payload": payload,
            "payload_type": payload_type[:255],
            "notes": "",
            "message_id": "",
            "from_addr": "",
        }
        for provider, raw, key, payload, payload_type in items
    ]
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.id, table.c.dedupe_key)
    )
    # executemany: compiled once and cached, sent as one multi-row INSERT by SQLAlchemy's insertmanyvalues
    new = {key: iid for iid, key in conn.execute(stmt, rows).all()}
    missing = {r["dedupe_key"] for r in rows} - set(new)
    old = {}
    if missing:
        old = dict(
            conn.execute(select(table.c.dedupe_key, table.c.id).where(table.c.dedupe_key.in_(missing))).all()
        )
    out, seen = [], set()
    for r in rows:
        key = r["dedupe_key"]
        if key in new and key not in seen:
            out.append((new[key], False))
        else:
            out.append((new.get(key) or old[key], True))
        seen.add(key)
    return out


def is_automatic(email: InboundEmail) -> str:
    """Why this mail is an auto-reply or a bounce, or '' for mail a person wrote."""
    auto = email.header("Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if email.header("X-Autoreply") or email.header("X-Autorespond"):
        return "X-Autoreply header"
    if email.header("Precedence").strip().lower() in ("bulk", "auto_reply", "junk", "list"):
        return f"Precedence: {email.header('Precedence').strip()}"
    ctype = email.header("Content-Type").replace(" ", "").replace('"', "").lower()
    if "report-type=delivery-status" in ctype or any(
        a.content_type.startswith("message/delivery-status") for a in email.attachments
    ):
        return "delivery status notification"
    if email.from_addr.startswith(("mailer-daemon@", "postmaster@")):
        return "bounce from " + email.from_addr
    if _AUTO_SUBJECT.search(email.subject):
        return "auto-reply subject"
    return ""


def _tokens(email: InboundEmail, settings: Settings):
    for addr in (*email.envelope_to, *email.to, *email.cc):
        token = token_from_address(addr, settings.reply_domain)
        if token is not None:
            yield token, addr
    if email.mailbox_hash:
        yield email.mailbox_hash, "MailboxHash"


def authenticated_sender(email: InboundEmail) -> bool:
    """True when SPF or DKIM passed, by the provider's verdict or the Authentication-Results header."""
    return "pass" in (email.spf, email.dkim)


@dataclass
class Senders:
    """What identifying a batch of messages needs from the database, read in a few queries.

    ``members``: (member, team) by member id, for reply tokens; ``sent``: our Message-IDs with
    their member, team and reminder day; ``by_email``: active members by address, for an
    authenticated From.
    """

    members: dict[int, tuple[Member, Team]] = field(default_factory=dict)
    sent: dict[str, tuple[Member, Team, date | None]] = field(default_factory=dict)
    by_email: dict[str, list[tuple[Member, Team]]] = field(default_factory=dict)


def _first_token(email: InboundEmail, settings: Settings) -> tuple[str, str] | None:
    return next(_tokens(email, settings), None)


def _refs(email: InboundEmail) -> list[str]:
    return [ref for ref in (email.in_reply_to, *reversed(email.references)) if ref]


def _day_of(context: str | None) -> date | None:
    day = json.loads(context or "{}").get("day")
    return datetime.fromisoformat(day).date() if day else None


def find_senders(s: Session, emails: list[InboundEmail], settings: Settings) -> Senders:
    """The members ``identify`` may need for ``emails``: at most three queries for the whole batch."""
    found = Senders()
    member_ids, refs = set(), set()
    for email in emails:
        first = _first_token(email, settings)
        if first is not None:
            verified = verify_reply_token(settings.secret_key, first[0])
            if verified is not None:
                member_ids.add(verified[0])
        else:
            refs.update(_refs(email))
    pair = select(Member, Team).join(Team, Team.id == Member.team_id)
    for chunk in _chunks(sorted(member_ids)):
        for member, team in s.execute(pair.where(Member.id.in_(chunk))).all():
            found.members[member.id] = (member, team)
    for chunk in _chunks(sorted(refs)):
        sent = (
            select(OutboundMessage.message_id, OutboundMessage.context, Member, Team)
            .join(Member, Member.id == OutboundMessage.member_id)
            .join(Team, Team.id == Member.team_id)
            .where(OutboundMessage.message_id.in_(chunk))
            .order_by(OutboundMessage.id)
        )
        for message_id, context, member, team in s.execute(sent).all():
            found.sent.setdefault(message_id, (member, team, _day_of(context)))
    senders = {
        email.from_addr
        for email in emails
        if email.from_addr
        and authenticated_sender(email)
        and _first_token(email, settings) is None
        and not any(ref in found.sent for ref in _refs(email))
    }
    for chunk in _chunks(sorted(senders)):
        active = pair.where(Member.email.in_(chunk), Member.active.is_(True)).order_by(Member.id)
        for member, team in s.execute(active).all():
            found.by_email.setdefault(member.email, []).append((member, team))
    return found


def _chunks(values: list, size: int = 500):
    for i in range(0, len(values), size):
        yield values[i : i + size]


def identify(email: InboundEmail, senders: Senders, settings: Settings):
    """(member, team, day or None, how) for a reply, or (None, None, None, why-not).

    In order: the signed reply+token address (envelope recipient, To, Cc, Postmark's
    MailboxHash), In-Reply-To/References naming a Message-ID we sent, then From, but
    only when SPF or DKIM passed. ``senders`` comes from ``find_senders``.
    """
    first = _first_token(email, settings)
    if first is not None:
        token, addr = first
        found = verify_reply_token(settings.secret_key, token)
        if found is None:
            return None, None, None, f"bad reply token in {addr}"
        if found[0] not in senders.members:
            return None, None, None, "reply token names no member"
        return *senders.members[found[0]], found[1], "reply token"
    for ref in _refs(email):
        if ref in senders.sent:
            return *senders.sent[ref], "In-Reply-To"
    if not email.from_addr:
        return None, None, None, "no reply token, no known In-Reply-To and no From address"
    if not authenticated_sender(email):
        return (
            None,
            None,
            None,
            "no reply token or known In-Reply-To, and From is not authenticated (no SPF/DKIM pass)",
        )
    members = senders.by_email.get(email.from_addr, [])
    if len(members) == 1:
        return *members[0], None, "From with SPF/DKIM pass"
    if members:
        return None, None, None, f"From {email.from_addr} is a member of several teams: cannot tell which"
    return None, None, None, f"From {email.from_addr} (authenticated) is no member"


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
    ``report`` says what a bounce or complaint report in it was (applied by app.events)."""
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
    member, team, day, how = identify(email, senders, settings)
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
    multi-row INSERT. A message whose parsing or extraction raises is stored ``failed`` with
    the reason and the others go on; a database error fails the whole call (nothing is kept).
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
    entries = []
    for iid, email in parsed:
        try:
            # List-Unsubscribe mailto requests, and bounces and complaints about our mail (which
            # move it and suppress the address), make no entries
            report = unsubscribe_request(s, email, settings, now) or events.record_report(
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
            entries += [
                {
                    "team_id": team.id,
                    "member_id": member.id,
                    "day": day,
                    "text": text(draft.text),
                    "kind": draft.kind,
                    "tags": " ".join(draft.tags),
                    "mentions": " ".join(draft.mentions),
                    "inbound_id": iid,
                    "created_at": now,
                }
                for draft in drafts
            ]
    _set_states(s, changes)
    if entries:
        s.connection().execute(Entry.__table__.insert(), entries)
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


def enqueue_processing(inbound_ids: int | list[int]) -> None:
    """Hand committed messages' ids to process_inbound (one broker message for a group); a broker
    fault is only logged (the sweeper finds the rows later)."""
    from jobs.actors import process_inbound, process_inbound_batch

    ids = [inbound_ids] if isinstance(inbound_ids, int) else list(inbound_ids)
    try:
        if len(ids) == 1:
            process_inbound.send(ids[0])
        elif ids:
            process_inbound_batch.send(ids)
    except Exception:  # noqa: BLE001 - stored and committed already
        log.exception("inbound %s stored but not enqueued", ids)


def load_email(row) -> InboundEmail:
    """The normalized email of a stored message (an InboundMessage or a row with its provider,
    payload, payload_type and raw): its provider's adapter on the stored payload, or the raw MIME."""
    provider = PROVIDERS.get(row.provider)
    if row.payload is not None and provider is not None:
        return provider.parse(Payload(row.payload, row.payload_type))
    return parse_mime(row.raw, provider=row.provider)
