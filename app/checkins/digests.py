"""What a digest says: the team's entries of a day (or a week) grouped by member, and who was silent.

Context builders the relay renders digests with (app.checkins.outgoing registers them); entries
are text and the templates autoescape them, so what a member wrote can never become markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlmodel import Session

from app.checkins.schedules import effective
from app.models import Entry, Member, MemberPause, OutboundMessage, Team, TeamSettings

WEEK_DAYS = 7


@dataclass
class Group:
    """One member's entries in a digest, goals and blockers counted."""

    member: Member
    entries: list[Entry] = field(default_factory=list)

    @property
    def blockers(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "blocker"]

    @property
    def goals(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "goal"]


def _members(s: Session, team_id: int) -> list[Member]:
    stmt = select(Member).where(Member.team_id == team_id, Member.active).order_by(Member.name, Member.id)
    return list(s.execute(stmt).scalars())


def _away(s: Session, member_ids: list[int], first: date, last: date) -> set[int]:
    """Members with a pause overlapping first..last."""
    if not member_ids:
        return set()
    rows = s.execute(
        select(MemberPause.member_id).where(
            MemberPause.member_id.in_(member_ids),
            MemberPause.first_day <= last,
            MemberPause.last_day >= first,
        )
    )
    return set(rows.scalars())


def summarize(s: Session, team: Team, first: date, last: date) -> dict:
    """Entries of days first..last grouped by member; who was away; who was asked and did not answer."""
    members = _members(s, team.id)
    entries = s.execute(
        select(Entry)
        .where(Entry.team_id == team.id, Entry.day >= first, Entry.day <= last)
        .order_by(Entry.day, Entry.id)
    ).scalars()
    groups = {m.id: Group(m) for m in members}
    for e in entries:
        if e.member_id in groups:
            groups[e.member_id].entries.append(e)
    away = _away(s, [m.id for m in members], first, last)
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def was_asked(m: Member) -> bool:
        sched = effective(m, team)
        return sched.asked and any(str(d.isoweekday()) in sched.reminder_days for d in span)

    written = [g for g in groups.values() if g.entries]
    return {
        "team": team,
        "first": first,
        "last": last,
        "groups": written,
        "blockers": [(g.member, e) for g in written for e in g.blockers],
        "entry_count": sum(len(g.entries) for g in written),
        "away": [m for m in members if m.id in away and not groups[m.id].entries],
        "quiet": [m for m in members if not groups[m.id].entries and m.id not in away and was_asked(m)],
    }


def daily_context(s: Session, msg: OutboundMessage, stored: dict, settings) -> dict:
    """Context of ``templates/email/digest``: the covered day of the message's team."""
    team = s.get(Team, msg.team_id)
    day = date.fromisoformat(stored["day"])
    ctx = summarize(s, team, day, day)
    opts = s.get(TeamSettings, team.id)
    if opts is not None and not opts.digest_include_quiet:
        ctx["quiet"] = []
    return ctx | {
        "day": day,
        "base_url": settings.base_url,
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "digest"},
    }


def weekly_context(s: Session, msg: OutboundMessage, stored: dict, settings) -> dict:
    """Context of ``templates/email/weekly``: the seven days ending on the stored ``last`` day."""
    team = s.get(Team, msg.team_id)
    last = date.fromisoformat(stored["last"])
    ctx = summarize(s, team, last - timedelta(days=WEEK_DAYS - 1), last)
    days: dict[date, int] = {}
    for g in ctx["groups"]:
        for e in g.entries:
            days[e.day] = days.get(e.day, 0) + 1
    return ctx | {
        "per_day": sorted(days.items()),
        "base_url": settings.base_url,
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "weekly"},
    }
