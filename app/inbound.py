"""Inbound mail: durable acceptance, then processing into entries.

``accept`` stores the raw bytes under a dedupe key and commits; a second copy of
the same mail is reported as a duplicate and stores nothing. ``process`` is the
body of the process_inbound job: identify the member, extract the reply, store
entries. Inbound ``state`` is written only here:

    received -> processed | ignored | unverified | failed ;  failed | processed -> received (reprocess)
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.checkins import reminder_text
from app.models import Entry, InboundMessage, Member, OutboundMessage, Team
from app.schedule import local_date
from app.settings import Settings
from app.tokens import token_from_address, verify_reply_token
from parsers.entries import split_entries
from parsers.message import InboundEmail, headers_digest, parse_mime
from parsers.reply import extract_reply

_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|auto(matic)?[ -]?reply|autoreply|abwesenheit|absence|"
    r"réponse automatique|respuesta automática|vacation|on vacation)\b",
    re.IGNORECASE,
)


def dedupe_key(provider: str, email_message_id: str, raw: bytes, provider_id: str = "") -> str:
    """Provider id where one exists, else Message-ID, else a hash of the raw headers."""
    if provider_id:
        return f"{provider}:{provider_id}"[:512]
    if email_message_id:
        return f"msgid:{email_message_id}"[:512]
    return f"sha256:{headers_digest(raw)}"


def accept(s: Session, *, provider: str, raw: bytes, key: str, now: datetime, **fields) -> tuple[int, bool]:
    """Store one inbound message unless ``key`` is known; (id, duplicate)."""
    table = InboundMessage.__table__
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
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
            **fields,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.id)
    )
    new_id = s.execute(stmt).scalar()
    if new_id is not None:
        return new_id, False
    return s.execute(select(table.c.id).where(table.c.dedupe_key == key)).scalar_one(), True


def is_automatic(email: InboundEmail) -> str:
    """Why this mail is an auto-reply or a bounce, or '' for mail a person wrote."""
    auto = email.header("Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if email.header("X-Autoreply") or email.header("X-Autorespond"):
        return "X-Autoreply header"
    if email.header("Precedence").strip().lower() in ("bulk", "auto_reply", "junk", "list"):
        return f"Precedence: {email.header('Precedence').strip()}"
    if "report-type=delivery-status" in email.header("Content-Type").replace(" ", "").lower():
        return "delivery status notification"
    if email.from_addr.startswith(("mailer-daemon@", "postmaster@")):
        return "bounce from " + email.from_addr
    if _AUTO_SUBJECT.search(email.subject):
        return "auto-reply subject"
    return ""


def identify(s: Session, email: InboundEmail, settings: Settings):
    """(member, day or None, how) for a reply, or (None, None, why-not)."""
    for addr in (*email.envelope_to, *email.to, *email.cc):
        token = token_from_address(addr, settings.reply_domain)
        if token is None:
            continue
        found = verify_reply_token(settings.secret_key, token)
        if found is None:
            return None, None, f"bad reply token in {addr}"
        member = s.get(Member, found[0])
        if member is None:
            return None, None, "reply token names no member"
        return member, found[1], "reply token"
    for ref in (email.in_reply_to, *reversed(email.references)):
        if not ref:
            continue
        out = s.execute(select(OutboundMessage).where(OutboundMessage.message_id == ref)).scalars().first()
        if out is not None and out.member_id is not None:
            member = s.get(Member, out.member_id)
            day = json.loads(out.context or "{}").get("day")
            return member, (datetime.fromisoformat(day).date() if day else None), "In-Reply-To"
    return None, None, "no reply token or known In-Reply-To"


def _set_state(s: Session, inbound_id: int, state: str, expected: tuple[str, ...], **values) -> bool:
    res = s.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id, InboundMessage.state.in_(expected))
        .values(state=state, **values)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1


def process(s: Session, inbound_id: int, *, now: datetime, settings: Settings) -> str:
    """Turn one received message into entries; returns its new state (idempotent)."""
    row = s.get(InboundMessage, inbound_id)
    if row is None:
        return "missing"
    if row.state != "received":
        return row.state
    email = parse_mime(row.raw, provider=row.provider)
    base = {
        "processed_at": now,
        "message_id": email.message_id[:1000],
        "from_addr": email.from_addr[:320],
        "subject": email.subject,
    }
    why = is_automatic(email)
    if why:
        _set_state(s, inbound_id, "ignored", ("received",), error=why, **base)
        return "ignored"
    member, day, how = identify(s, email, settings)
    if member is None:
        _set_state(s, inbound_id, "unverified", ("received",), error=how, **base)
        return "unverified"
    team = s.get(Team, member.team_id)
    day = day or local_date(now, member.timezone or team.timezone)
    # our own reminder is known text: where the quote holds it, the cut is certain
    known = tuple(line for line in reminder_text(member, team, day, settings).splitlines() if line.strip())
    reply = extract_reply(email, known_quotes=known)
    if not _set_state(
        s,
        inbound_id,
        "processed",
        ("received",),
        member_id=member.id,
        day=day,
        error="",
        reply_text=reply.text,
        quoted_text=reply.quoted,
        signature_text=reply.signature,
        **base,
    ):
        return "raced"  # another worker took it; our transaction adds nothing
    for draft in split_entries(reply.text):
        s.add(
            Entry(
                team_id=team.id,
                member_id=member.id,
                day=day,
                text=draft.text,
                kind=draft.kind,
                tags=" ".join(draft.tags),
                mentions=" ".join(draft.mentions),
                inbound_id=inbound_id,
                created_at=now,
            )
        )
    s.flush()
    return "processed"


def fail(s: Session, inbound_id: int, error: str, *, now: datetime) -> None:
    """Record that processing failed; the raw message stays, ready for reprocessing."""
    _set_state(s, inbound_id, "failed", ("received",), error=error[:4000], processed_at=now)


def reset_for_reprocess(s: Session, inbound_ids: list[int]) -> list[int]:
    """Put messages back to received (dropping the entries they made); the ids that moved."""
    moved = []
    for iid in inbound_ids:
        s.execute(delete(Entry).where(Entry.inbound_id == iid))
        if _set_state(s, iid, "received", ("failed", "processed", "unverified", "ignored"), error=""):
            moved.append(iid)
    return moved
