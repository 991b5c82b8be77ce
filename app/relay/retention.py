"""Retention: after RETENTION_DAYS, a message's content, the bytes it was sent as
(OutboundContent) and its raw provider response are purged; ``purged_at`` says when.

Metadata (addresses, subject, states, times, sender, provider id) and the event
timeline stay. Only messages that will not be sent again are purged. A composed message's
body (OutboundBody, shared by its recipients' rows) goes once it is older than RETENTION_DAYS
and none of its rows may still be sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, select, update
from sqlmodel import Session

from app.models import OutboundBody, OutboundContent, OutboundMessage

DONE = ("sent", "delivered", "bounced", "complained", "failed", "cancelled", "suppressed")


def purge(s: Session, *, now: datetime, days: int, limit: int = 5000) -> int:
    """Purge up to ``limit`` messages older than ``days`` (and up to ``limit`` composed bodies no
    message needs any more); returns how many messages were purged."""
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
    purge_bodies(s, cutoff=cutoff, limit=limit)
    return len(ids)


def purge_bodies(s: Session, *, cutoff: datetime, limit: int = 5000) -> int:
    """Delete up to ``limit`` composed bodies stored before ``cutoff`` whose messages are all done;
    returns how many."""
    M, B = OutboundMessage, OutboundBody
    unsent = exists().where(M.body_id == B.id, M.state.not_in(DONE))
    ids = list(
        s.execute(select(B.id).where(B.created_at < cutoff, ~unsent).order_by(B.id).limit(limit)).scalars()
    )
    if ids:
        s.execute(delete(B).where(B.id.in_(ids)).execution_options(synchronize_session=False))
    return len(ids)
