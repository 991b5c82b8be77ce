"""Quotas on the mail a person's action makes: per recipient and per actor, counted from the outbox.

A signed-in user can make donebox send mail to any address (an invitation), and anyone can make it
send a sign-in link to a known one. Without a bound, an invite/remove loop mail-bombs an address
from our servers. The counts come from the outbox itself (the rows are the mail), so the quota
holds across web processes; on PostgreSQL a transaction-scoped advisory lock per recipient and per
actor makes two concurrent requests count one after the other (SQLite's writers are serialized
already by BEGIN IMMEDIATE).

    MAILS_PER_HOUR_PER_RECIPIENT   invitations and sign-in links to one address in the last hour
    INVITES_PER_HOUR_PER_ADMIN     invitations one user sent in the last hour, to anyone

Mail the scheduler makes (reminders and digests, one per member and day by their idempotency keys)
and mail applications send through the API or SMTP (authenticated by their own tokens, limited by
their senders' rates) are not a person's action and are not counted here.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlmodel import Session

from app.models import OutboundMessage
from app.settings import Settings

ASKED_KINDS = ("invite", "signin")  # the kinds a person's action makes
# the very predicate of the partial index ix_outbound_asked (app.models), so SQLite uses it
_ASKED = text("kind IN ('invite', 'signin')")
WINDOW = timedelta(hours=1)


def _lock(s: Session, *keys: str) -> None:
    """PostgreSQL: serialize quota checks on the same keys until the transaction ends."""
    if s.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({zlib.crc32(k.encode()) for k in keys}):  # one order everywhere: no deadlock
        s.execute(select(func.pg_advisory_xact_lock(key)))


def to_recipient(s: Session, to_addr: str, *, now: datetime) -> int:
    """Invitations and sign-in links created for ``to_addr`` in the last WINDOW."""
    M = OutboundMessage
    stmt = select(func.count()).where(_ASKED, M.to_addr == to_addr.lower(), M.created_at > now - WINDOW)
    return s.execute(stmt).scalar_one()


def invites_by(s: Session, actor: str, *, now: datetime) -> int:
    """Invitations ``actor`` asked for in the last WINDOW."""
    M = OutboundMessage
    stmt = select(func.count()).where(M.actor == actor, M.kind == "invite", M.created_at > now - WINDOW)
    return s.execute(stmt).scalar_one()


def refusal(
    s: Session, kind: str, to_addr: str, *, actor: str = "", now: datetime, settings: Settings
) -> str:
    """'' when a ``kind`` mail to ``to_addr`` asked for by ``actor`` ('' for nobody signed in) is
    within the quotas; otherwise why not, in words for the person who asked. Call it in the
    transaction that creates the message, just before creating it."""
    to_addr = to_addr.lower()
    _lock(s, f"to:{to_addr}", *([f"actor:{actor}"] if actor else []))
    limit = settings.mails_per_hour_per_recipient
    if to_recipient(s, to_addr, now=now) >= limit:
        return (
            f"{to_addr} has been sent {limit} invitations or sign-in links in the last hour, "
            "the most donebox sends one address: try again later"
        )
    if kind == "invite" and actor:
        limit = settings.invites_per_hour_per_admin
        if invites_by(s, actor, now=now) >= limit:
            return f"you have sent {limit} invitations in the last hour, the most one person may: try later"
    return ""
