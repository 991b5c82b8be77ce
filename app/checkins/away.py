"""Out-of-office replies become pauses: the member is not asked again until the day they are back.

An auto-reply that answers a reminder (app.inbound.process recognises it and identifies the
member) and states a return date (parsers.away) pauses its member from their local today up
to the day before they are back, and one email (outbox kind ``away``) tells them so and how to
undo it: the pause's Remove button on their settings page. A pause already covering those days
makes nothing new. An auto-reply without a date makes nothing: the inbound message says so.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from app.checkins.schedules import MAX_PAUSE_DAYS, add_pause
from app.checkins.times import local_date
from app.models import Member, MemberPause, OutboundMessage, Team
from app.relay import outbox
from app.settings import Settings


def planned(member: Member, team: Team, back: date | None, now: datetime) -> tuple[date, date] | None:
    """The pause an auto-reply stating ``back`` asks for: (first, last) local days, or None when
    there is nothing to pause (no date, or the member is back today)."""
    if back is None:
        return None
    today = local_date(now, member.timezone or team.timezone)
    last = min(back - timedelta(days=1), today + timedelta(days=MAX_PAUSE_DAYS - 1))
    return (today, last) if last >= today else None


def note(span: tuple[date, date] | None) -> str:
    """What processing writes on the inbound message about the pause."""
    if span is None:
        return "auto-reply with no return date after today: no pause"
    return (
        f"auto-reply: away until {span[1].isoformat()}, paused {span[0].isoformat()}..{span[1].isoformat()}"
    )


def pause_for_auto_reply(
    s: Session,
    member: Member,
    team: Team,
    span: tuple[date, date],
    *,
    inbound_id: int,
    now: datetime,
    settings: Settings,
) -> int | None:
    """Pause ``member`` over ``span`` and queue the email that says how to undo it; the outbox
    id of that email (to enqueue after commit), or None when a pause already covered the span
    (a second auto-reply, or the same one processed again)."""
    first, last = span
    # two auto-replies processed at once (two workers) must not both pause: the member's row lock
    # orders them, and the second sees the first's pause (SQLite: BEGIN IMMEDIATE already does)
    s.execute(select(Member.id).where(Member.id == member.id).with_for_update())
    covered = s.execute(
        select(MemberPause.id).where(
            MemberPause.member_id == member.id, MemberPause.first_day <= first, MemberPause.last_day >= last
        )
    ).first()
    if covered is not None:
        return None
    pause = add_pause(s, member.id, first, last, now=now)
    mid, created = outbox.create(
        s,
        now=now,
        lease_until=now + timedelta(seconds=settings.lease_s),
        idempotency_key=f"away:{member.id}:{inbound_id}:{first:%Y%m%d}",
        kind="away",
        team_id=team.id,
        member_id=member.id,
        to_addr=member.email,
        subject=f"You are paused until {last:%A %d %B}",
        template="away",
        context={"pause_id": pause.id, "first": first.isoformat(), "last": last.isoformat()},
        message_id=outbox.new_message_id(settings.mail_domain),
    )
    return mid if created else None


def away_context(s: Session, msg: OutboundMessage, stored: dict, settings: Settings) -> dict:
    """Context of ``templates/email/away``: the pause and where to remove it."""
    member = s.get(Member, msg.member_id)
    team = s.get(Team, msg.team_id)
    return {
        "member": member,
        "team": team,
        "first": date.fromisoformat(stored["first"]),
        "last": date.fromisoformat(stored["last"]),
        "undo_url": f"{settings.base_url}/teams/{team.id}/settings/me",
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "away"},
    }
