"""Durable acceptance of inbound mail: stored raw under a dedupe key and committed before the 2xx.

The dedupe key is the provider's id of the mail where it has one, else its Message-ID +
envelope recipient, else a hash of its header block. A copy under a known key is a duplicate
(answered as such, nothing stored) when it is the same mail: the key is a provider's id (the
provider says so), or its content fingerprint (``Keys.fingerprint``: the raw MIME without
trace fields, or the parsed fields, never the form or JSON carrying them, so a retry with a
new boundary or signature matches) is the stored one's. Another mail under a Message-ID or
header-hash key (a client reusing a Message-ID, a resend with edits, a hostile sender) is
stored under ``other_key`` and linked to the first (``same_message_id_as``) with a note;
its own retries are its duplicates. Nothing is lost. Processing (app/inbound/process.py)
links mail stored under provider ids by ``message_key`` and makes no entries twice for the
same content delivered again.

Signed webhook tokens (Mailgun's) are remembered in the message's own transaction, so a
replay is refused. The states an inbound message goes through are owned by
app/inbound/process.py:

    received -> processing -> processed | ignored | unverified | failed | quarantined (or back to received)
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session

from app.db import pg_insert_rows
from app.models import InboundMessage, WebhookToken
from parsers.message import address_key, headers_digest
from parsers.providers import Keys
from parsers.storable import storable as text  # what mail carried, kept storable

STATES = ("received", "processing", "processed", "ignored", "unverified", "failed", "quarantined")


class Replayed(Exception):
    """Raised by ``accept`` when its webhook token was already used; nothing is stored."""


# dedupe keys that name a mail by its headers (not a provider's id of it): another mail can have
# the same, so a copy with other content under one is stored (``other_key``)
CONTENT_KEYS = ("msgid:", "sha256:")


def dedupe_key(provider: str, keys: Keys) -> str:
    """Provider id where one exists, else Message-ID + envelope recipient, else the header hash."""
    if keys.provider_id:
        return text(f"{provider}:{keys.provider_id}")[:512]
    if keys.message_id:
        return message_key(keys)
    return f"sha256:{keys.header_hash or headers_digest(b'')}"


def message_key(keys: Keys) -> str | None:
    """Message-ID + envelope recipient, the same for every copy of a mail whatever its dedupe key;
    None without a Message-ID. Rows sharing it are retries, second deliveries or reused Message-IDs."""
    if not keys.message_id:
        return None
    rcpt = address_key(keys.envelope_to[0]) if keys.envelope_to else ""  # one key whatever the case
    return text(f"msgid:{keys.message_id}|{rcpt}")[:512]


def _dialect_insert(s: Session):
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


def remember_token(s: Session, provider: str, token: str, *, now: datetime) -> None:
    """Record a signed webhook token as used; raises Replayed when it already was."""
    table = WebhookToken.__table__
    stmt = (
        _dialect_insert(s)(table)
        .values(provider=provider, token=token[:255], seen_at=now)
        .on_conflict_do_nothing(index_elements=["token"])
        .returning(table.c.id)
    )
    if s.execute(stmt).scalar() is None:
        raise Replayed(token)


def forget_tokens(s: Session, *, before: datetime) -> int:
    """Drop used tokens older than ``before`` (their timestamps are refused as stale anyway)."""
    return s.execute(delete(WebhookToken).where(WebhookToken.seen_at < before)).rowcount


class Item(NamedTuple):
    """One message for ``accept_many``: where it came from, its bytes, and how it is told apart."""

    provider: str
    raw: bytes
    key: str  # dedupe_key
    payload: bytes | None = None
    payload_type: str = ""
    fingerprint: str = ""  # Keys.fingerprint; '' when unknown (a copy under a known key is then a duplicate)
    message_key: str | None = None  # message_key(keys)


def item(provider: str, keys: Keys, payload: bytes | None = None, payload_type: str = "") -> Item:
    """The Item of one mail from its provider's Keys."""
    return Item(
        provider, keys.raw_mime or b"", dedupe_key(provider, keys), payload, payload_type,
        keys.fingerprint, message_key(keys),
    )  # fmt: skip


def accept(
    s: Session,
    *,
    provider: str,
    raw: bytes,
    key: str,
    now: datetime,
    payload: bytes | None = None,
    payload_type: str = "",
    fingerprint: str = "",
    message_key: str | None = None,
) -> tuple[int, bool]:
    """Store one inbound message (raw MIME and the provider's payload) unless it is a copy of a
    stored one (``accept_many``); (id, duplicate). The caller commits before answering."""
    one = Item(provider, raw, key, payload, payload_type, fingerprint, message_key)
    return accept_many(s.connection(), [one], now=now)[0]


def other_key(key: str, fingerprint: str) -> str:
    """The dedupe key of a mail whose key was taken by a mail with other content."""
    return f"{key[: 511 - len(fingerprint)]}#{fingerprint}"


def accept_many(conn: Connection, items: list, *, now: datetime) -> list[tuple[int, bool]]:
    """Store several messages (``Item``s) in one statement; (id, duplicate) per item, in order.

    A message whose dedupe key is taken is a duplicate (stores nothing) when it is the same mail:
    the key is a provider's id, or the fingerprints are equal (or one is unknown). A mail with
    other content under a Message-ID or header-hash key is stored under ``other_key``; when it
    has a Message-ID it links to the first (``same_message_id_as``) with a note. Within the group
    the first of two equal keys wins. Costs one INSERT, one SELECT when a key was taken, and one
    INSERT and SELECT more only for mail with other content. ``conn`` is a Core connection (the
    group-commit writer's own, or a session's); the caller commits.
    """
    items = [Item(*i) for i in items]
    stored = _insert(conn, items, now)
    others = []
    for n, (i, (iid, duplicate, fingerprint)) in enumerate(zip(items, stored, strict=True)):
        if (
            duplicate
            and i.key.startswith(CONTENT_KEYS)
            and i.fingerprint
            and fingerprint not in ("", i.fingerprint)
        ):
            linked = iid if i.message_key else None
            note = f"same Message-ID as inbound message {iid}, different content" if linked else ""
            others.append((n, i._replace(key=other_key(i.key, i.fingerprint)), linked, note))
    out = [(iid, duplicate) for iid, duplicate, _ in stored]
    if others:
        again = _insert(
            conn, [i for _, i, _, _ in others], now, [(link, note) for _, _, link, note in others]
        )
        for (n, *_), (iid, duplicate, _) in zip(others, again, strict=True):
            out[n] = (iid, duplicate)
    return out


# the columns every new row gets the same value in (besides received_at)
_NEW = {"state": "received"} | dict.fromkeys(
    ("error", "subject", "reply_text", "quoted_text", "signature_text", "message_id", "from_addr"), ""
)
_ON_CONFLICT = "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"


def _insert(conn: Connection, items: list[Item], now: datetime, links=None) -> list[tuple[int, bool, str]]:
    """Insert ``items`` (ON CONFLICT DO NOTHING); (id, duplicate, the fingerprint stored under its
    key) per item. ``links``: (same_message_id_as, notes) per item."""
    table = InboundMessage.__table__
    rows = [
        {
            "provider": i.provider,
            "dedupe_key": i.key,
            "raw": i.raw,
            "payload": i.payload,
            "payload_type": i.payload_type[:255],
            "notes": links[n][1] if links else "",
            "fingerprint": i.fingerprint[:64],
            "message_key": i.message_key,
            "same_message_id_as": links[n][0] if links else None,
        }
        for n, i in enumerate(items)
    ]
    same = {**_NEW, "received_at": now}
    if conn.dialect.name == "postgresql":  # in one statement of a fixed text (app.db.pg_insert_rows)
        inserted = pg_insert_rows(conn, table, rows, same=same, tail=_ON_CONFLICT).all()
    else:  # executemany: compiled once and cached, sent as one multi-row INSERT (insertmanyvalues)
        stmt = (
            sqlite_insert(table)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.id, table.c.dedupe_key)
        )
        inserted = conn.execute(stmt, [{**r, **same} for r in rows]).all()
    new = {key: iid for iid, key in inserted}
    held = {}  # key -> (id, fingerprint): the group's first item with the key, or the stored row
    for i in items:
        if i.key in new and i.key not in held:
            held[i.key] = (new[i.key], i.fingerprint)
    missing = {i.key for i in items} - set(new)
    if missing:
        found = select(table.c.dedupe_key, table.c.id, table.c.fingerprint).where(
            table.c.dedupe_key.in_(missing)
        )
        held.update((key, (iid, fp)) for key, iid, fp in conn.execute(found).all())
    out, seen = [], set()
    for i in items:
        iid, fingerprint = held[i.key]
        out.append((iid, i.key not in new or i.key in seen, fingerprint))
        seen.add(i.key)
    return out
