"""Messages applications compose (the full send API, SMTP submission), stored as bytes.

A composed message is stored once (OutboundBody, zlib) for all its recipients; each recipient's
outbox row names it by ``body_id`` and carries the application's From in ``from_addr``. When the
relay sends a copy it keeps the bytes as given and adds only what it owns.
"""

from __future__ import annotations

import zlib

from sqlmodel import Session

from app.models import OutboundBody, utcnow


def store(s: Session, raw: bytes) -> int:
    """Store ``raw`` (flushed, not committed: the caller commits it with the outbox rows); its id."""
    row = OutboundBody(raw_zlib=zlib.compress(raw, 6), size=len(raw), created_at=utcnow())
    s.add(row)
    s.flush()
    return row.id


def load(s: Session, body_id: int) -> bytes | None:
    """The stored bytes, or None when there are none (never stored, or purged)."""
    row = s.get(OutboundBody, body_id)
    return zlib.decompress(row.raw_zlib) if row else None
