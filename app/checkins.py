"""The check-in loop's domain: reminders and digests as outbox producers, and their contexts.

Producers only create outbox rows (idempotent by ``kind:member:local-date``) and
return the new ids; enqueueing them is the caller's job, after commit.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from app import outbox
from app.models import Entry, Member, OutboundMessage, Team
from app.schedule import local_date, local_midnight_after, next_occurrence, previous_workday
from app.settings import Settings
from app.tokens import reply_address

REMINDER_SUBJECT = "What did you get done today?"


def member_tz(member: Member, team: Team) -> str:
    return member.timezone or team.timezone


def _domain(settings: Settings) -> str:
    return settings.mail_from.rsplit("@", 1)[-1]


def create_reminder(s: Session, member: Member, team: Team, day: date, *, now: datetime, settings: Settings):
    """The reminder row for ``member`` on their local ``day``; (id, created)."""
    tz = member_tz(member, team)
    return outbox.create(
        s,
        now=now,
        idempotency_key=f"reminder:{member.id}:{day.isoformat()}",
        kind="reminder",
        team_id=team.id,
        member_id=member.id,
        to_addr=member.email,
        subject=REMINDER_SUBJECT,
        template="reminder",
        context={"day": day.isoformat()},
        message_id=outbox.new_message_id(_domain(settings)),
        expires_at=local_midnight_after(day, tz),  # a reminder is worthless once its day is over
        lease_until=now + timedelta(seconds=settings.lease_s),
    )


def create_digest(s: Session, member: Member, team: Team, day: date, *, now: datetime, settings: Settings):
    """The digest row covering ``day`` for ``member``; (id, created)."""
    return outbox.create(
        s,
        now=now,
        idempotency_key=f"digest:{member.id}:{day.isoformat()}",
        kind="digest",
        team_id=team.id,
        member_id=member.id,
        to_addr=member.email,
        subject=f"What {team.name} got done on {day:%A, %d %B}",
        template="digest",
        context={"day": day.isoformat()},
        message_id=outbox.new_message_id(_domain(settings)),
        lease_until=now + timedelta(seconds=settings.lease_s),
    )


def _members(s: Session, member_ids=None):
    stmt = select(Member, Team).join(Team, Member.team_id == Team.id).where(Member.active)
    if member_ids is not None:
        stmt = stmt.where(Member.id.in_(member_ids))
    return s.execute(stmt.order_by(Member.id)).all()


def remind_now(s: Session, *, now: datetime, settings: Settings) -> list[int]:
    """Reminders for every active (non-observer) member for their local today; new ids."""
    ids = []
    for member, team in _members(s):
        if member.role == "observer":
            continue
        mid, created = create_reminder(
            s, member, team, local_date(now, member_tz(member, team)), now=now, settings=settings
        )
        if created:
            ids.append(mid)
    return ids


def digest_now(s: Session, *, now: datetime, settings: Settings, day: date | None = None) -> list[int]:
    """Digests for every active member covering ``day`` (default: their local today); new ids."""
    ids = []
    for member, team in _members(s):
        d = day or local_date(now, member_tz(member, team))
        mid, created = create_digest(s, member, team, d, now=now, settings=settings)
        if created:
            ids.append(mid)
    return ids


def due(s: Session, *, now: datetime, settings: Settings, limit: int = 500) -> list[int]:
    """Create what fell due (reminders at their local time, digests in the morning); new ids.

    Each due member's ``next_*_at`` moves past ``now`` in the same transaction, and
    the rows are idempotent by key, so a second tick or a second scheduler creates nothing.
    """
    ids = []
    for member, team in s.execute(
        select(Member, Team)
        .join(Team, Member.team_id == Team.id)
        .where(Member.active, Member.next_reminder_at <= now)
        .order_by(Member.next_reminder_at)
        .limit(limit)
    ).all():
        tz = member_tz(member, team)
        day = local_date(member.next_reminder_at, tz)
        too_late = now - member.next_reminder_at > timedelta(seconds=settings.reminder_late_s)
        if member.role != "observer" and not too_late:  # after downtime: no reminder in the night
            mid, created = create_reminder(s, member, team, day, now=now, settings=settings)
            ids += [mid] if created else []
        member.next_reminder_at = next_occurrence(now, team.reminder_time, team.workdays, tz)
        s.add(member)
    for member, team in s.execute(
        select(Member, Team)
        .join(Team, Member.team_id == Team.id)
        .where(Member.active, Member.next_digest_at <= now)
        .order_by(Member.next_digest_at)
        .limit(limit)
    ).all():
        tz = member_tz(member, team)
        day = previous_workday(local_date(member.next_digest_at, tz), team.workdays)
        mid, created = create_digest(s, member, team, day, now=now, settings=settings)
        ids += [mid] if created else []
        member.next_digest_at = next_occurrence(now, team.digest_time, team.workdays, tz)
        s.add(member)
    s.flush()
    return ids


def schedule_member(member: Member, team: Team, now: datetime) -> None:
    """Set a member's next reminder and digest times from the team's schedule."""
    tz = member_tz(member, team)
    member.next_reminder_at = next_occurrence(now, team.reminder_time, team.workdays, tz)
    member.next_digest_at = next_occurrence(now, team.digest_time, team.workdays, tz)


# ---------------------------------------------------------------- contexts for rendering


def reminder_context(s: Session, msg: OutboundMessage, stored: dict, settings: Settings) -> dict:
    member = s.get(Member, msg.member_id)
    team = s.get(Team, msg.team_id)
    day = date.fromisoformat(stored["day"])
    reply_to = reply_address(settings.secret_key, settings.reply_domain, member.id, day)
    return {
        "member": member,
        "team": team,
        "day": day,
        "base_url": settings.base_url,
        "_headers": {"Reply-To": reply_to, "Auto-Submitted": "auto-generated", "X-Donebox-Kind": "reminder"},
    }


def team_day(s: Session, team_id: int, day: date) -> tuple[list[tuple[Member, list[Entry]]], list[Member]]:
    """The team's entries of ``day`` grouped by member, and the members who wrote none."""
    members = list(
        s.execute(
            select(Member).where(Member.team_id == team_id, Member.active).order_by(Member.name)
        ).scalars()
    )
    entries = s.execute(
        select(Entry).where(Entry.team_id == team_id, Entry.day == day).order_by(Entry.member_id, Entry.id)
    ).scalars()
    by_member: dict[int, list[Entry]] = {}
    for e in entries:
        by_member.setdefault(e.member_id, []).append(e)
    groups = [(m, by_member[m.id]) for m in members if m.id in by_member]
    quiet = [m for m in members if m.id not in by_member and m.role != "observer"]
    return groups, quiet


def digest_context(s: Session, msg: OutboundMessage, stored: dict, settings: Settings) -> dict:
    team = s.get(Team, msg.team_id)
    day = date.fromisoformat(stored["day"])
    groups, quiet = team_day(s, team.id, day)
    return {
        "team": team,
        "day": day,
        "groups": groups,
        "quiet": quiet,
        "base_url": settings.base_url,
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "digest"},
    }


digest_context.shared = True  # nothing per recipient: the relay renders a team's digest once per batch
CONTEXT_BUILDERS = {"reminder": reminder_context, "digest": digest_context}
