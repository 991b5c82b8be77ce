"""Durable acceptance of inbound mail: stored raw under a dedupe key and committed before the 2xx.

A second copy of the same mail is reported as a duplicate and stores nothing. Signed
webhook tokens (Mailgun's) are remembered in the message's own transaction, so a
replay is refused. The states an inbound message goes through are owned by
app/inbound/process.py:

    received -> processing -> processed | ignored | unverified | failed | quarantined (or back to received)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session

from app.models import InboundMessage, WebhookToken
from parsers.message import address_key, headers_digest
from parsers.providers import Keys


def text(value: str) -> str:
    """Text a database column can hold: PostgreSQL refuses NUL characters, hostile mail has them."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


STATES = ("received", "processing", "processed", "ignored", "unverified", "failed", "quarantined")


class Replayed(Exception):
    """Raised by ``accept`` when its webhook token was already used; nothing is stored."""


def dedupe_key(provider: str, keys: Keys) -> str:
    """Provider id where one exists, else Message-ID + envelope recipient, else the header hash."""
    if keys.provider_id:
        return text(f"{provider}:{keys.provider_id}")[:512]
    if keys.message_id:
        rcpt = address_key(keys.envelope_to[0]) if keys.envelope_to else ""  # one key whatever the case
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
