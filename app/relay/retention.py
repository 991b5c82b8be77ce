"""Retention: after RETENTION_DAYS, a message's content, the bytes it was sent as
(OutboundContent) and its raw provider response are purged; ``purged_at`` says when.

Metadata (addresses, subject, states, times, sender, provider id) and the event
timeline stay. Only messages that will not be sent again are purged.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select, update
from sqlmodel import Session

from app.models import OutboundContent, OutboundMessage

DONE = ("sent", "delivered", "bounced", "complained", "failed", "cancelled", "suppressed")


def purge(s: Session, *, now: datetime, days: int, limit: int = 5000) -> int:
    """Purge up to ``limit`` messages older than ``days``; returns how many were purged."""
    M = OutboundMessage
    cutoff = now - timedelta(days=days)
    ids = list(
        s.execute(
            select(M.id)
            .where(and_(M.created_at < cutoff, M.purged_at.is_(None), M.state.in_(DONE)))
            .order_by(M.id)
            .limit(limit)
        ).scalars()
    )
    if ids:
        s.execute(
            update(M)
            .where(M.id.in_(ids), M.purged_at.is_(None))
            .values(context="{}", provider_response="", links="", purged_at=now)
            .execution_options(synchronize_session=False)
        )
        s.execute(
            delete(OutboundContent)
            .where(OutboundContent.message_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)
