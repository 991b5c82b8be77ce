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
their senders' rates) are not a person's action and are not counted by those two.

Application mail has its own quota per team, counted the same way from its rows (kind 'api', both
POST /api/messages and SMTP submission make them) in the last hour and the last 24 hours:

    TEAM_QUOTA_HOUR, TEAM_QUOTA_DAY   the defaults (0: no limit); TeamRelay.quota_hour/quota_day
                                      override them for one team (``donebox team-relay``)

``check_team`` runs after a submission's rows are inserted, in their transaction: past a limit it
raises QuotaExceeded and the rows roll back, so a submission of several messages is stored whole
or not at all, and a known idempotency key (no new row) is never refused. Check-in mail is never
counted against it, and a message cancelled before it was sent still counts (it was submitted).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlmodel import Session

from app.errors import QuotaExceeded
from app.models import OutboundMessage, TeamRelay
from app.settings import Settings

ASKED_KINDS = ("invite", "signin")  # the kinds a person's action makes
# the very predicate of the partial index ix_outbound_asked (app.models), so SQLite uses it
_ASKED = text("kind IN ('invite', 'signin')")
WINDOW = timedelta(hours=1)
DAY = timedelta(days=1)
# the very predicate of the partial index ix_outbound_api (app.models): application mail
_API = text("kind = 'api'")


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


@dataclass(frozen=True)
class TeamUsage:
    """A team's application mail in the last hour and 24 hours, and its limits (0: none)."""

    hour: int
    day: int
    hour_limit: int
    day_limit: int


def team_limits(s: Session, team_id: int, *, settings: Settings) -> tuple[int, int]:
    """(per hour, per day) for ``team_id``: its relay row's own, else TEAM_QUOTA_HOUR/DAY; 0 = none."""
    row = s.get(TeamRelay, team_id)
    hour = row.quota_hour if row is not None and row.quota_hour is not None else settings.team_quota_hour
    day = row.quota_day if row is not None and row.quota_day is not None else settings.team_quota_day
    return hour, day


def team_usage(s: Session, team_id: int, *, now: datetime, settings: Settings) -> TeamUsage:
    """What ``team_id`` has submitted in the two windows: one count query over ix_outbound_api."""
    M = OutboundMessage
    stmt = select(func.count().filter(M.created_at > now - WINDOW), func.count()).where(
        _API, M.team_id == team_id, M.created_at > now - DAY
    )
    hour, day = s.execute(stmt).one()
    return TeamUsage(hour, day, *team_limits(s, team_id, settings=settings))


def teams_sending(s: Session, *, now: datetime) -> list[int]:
    """The teams with application mail in the last 24 hours (for the operator's mail page)."""
    M = OutboundMessage
    stmt = select(M.team_id).where(_API, M.team_id.is_not(None), M.created_at > now - DAY).distinct()
    return list(s.execute(stmt).scalars())


def _frees_in(s: Session, team_id: int, window: timedelta, leaving: int, *, now: datetime) -> int:
    """Seconds until the ``leaving`` oldest of the team's rows in ``window`` have left it."""
    M = OutboundMessage
    stmt = (
        select(M.created_at)
        .where(_API, M.team_id == team_id, M.created_at > now - window)
        .order_by(M.created_at)
        .offset(leaving - 1)
        .limit(1)
    )
    at = s.execute(stmt).scalar_one()
    return max(1, math.ceil((at + window - now).total_seconds()))


def check_team(s: Session, team_id: int | None, new: int, *, now: datetime, settings: Settings) -> None:
    """Raise QuotaExceeded when ``team_id``'s application mail, counting the ``new`` rows this
    transaction has just inserted (created at ``now``), is past its hourly or daily limit. Call it
    after inserting them, before the commit: the raise rolls them back."""
    if team_id is None or new <= 0:
        return
    if team_limits(s, team_id, settings=settings) == (0, 0):
        return
    _lock(s, f"team:{team_id}")
    usage = team_usage(s, team_id, now=now, settings=settings)
    for used, limit, window, name in (
        (usage.hour, usage.hour_limit, WINDOW, "hour"),
        (usage.day, usage.day_limit, DAY, "24 hours"),
    ):
        if not limit or used <= limit:
            continue
        what = "1 more message does" if new == 1 else f"{new} more messages do"
        if new > limit:
            raise QuotaExceeded(f"{new} messages are more than the team's quota of {limit} an {name}", None)
        retry_s = _frees_in(s, team_id, window, used - limit, now=now)
        raise QuotaExceeded(
            f"team {team_id} has sent {used - new} of its {limit} messages in the last {name}: "
            f"{what} not fit; try again in {retry_s} s",
            retry_s,
        )
