"""What a digest says: the team's entries of a day (or a week) grouped by member, and who was silent.

Context builders the relay renders digests with (app.checkins.outgoing registers them); entries
are text and the templates autoescape them, so what a member wrote can never become markup. A
digest's size is bounded whatever the day holds: DIGEST_ENTRIES_PER_MEMBER entries (and as many
blockers) a member, each at most MAX_ENTRY_CHARS, then "and N more".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from app.checkins import goals, questions
from app.checkins.asked import not_heard_from
from app.checkins.comments import written_on
from app.checkins.entries import Shown, first_per_member
from app.checkins.reply_tokens import team_reply_domain
from app.models import Entry, Member, MemberPause, OutboundMessage, Team, TeamSettings
from app.settings import Settings

WEEK_DAYS = 7


@dataclass
class Group:
    """One member's entries in a digest (the first ones), their blockers, and how many are left out."""

    member: Member
    entries: list[Shown] = field(default_factory=list)
    blockers: list[Shown] = field(default_factory=list)
    total: int = 0
    blocker_total: int = 0

    @property
    def more(self) -> int:
        """Entries the digest does not list ("and N more")."""
        return self.total - len(self.entries)

    @property
    def goals(self) -> list[Shown]:
        return [e for e in self.entries if e.kind == "goal"]

    def answering(self, question: int, last: bool = False) -> list[Shown]:
        """The listed entries answering the team's question ``question`` (from 0); the ``last``
        question also takes answers to questions the team no longer asks (it asked more then)."""
        return [e for e in self.entries if e.question == question or (last and e.question > question)]


def _members(s: Session, team_id: int) -> list[Member]:
    stmt = select(Member).where(Member.team_id == team_id, Member.active).order_by(Member.name, Member.id)
    return list(s.execute(stmt).scalars())


def _away(s: Session, member_ids: list[int], first: date, last: date) -> dict[int, date]:
    """Members with a pause overlapping first..last, and the last day of their latest such pause."""
    if not member_ids:
        return {}
    rows = s.execute(
        select(MemberPause.member_id, func.max(MemberPause.last_day))
        .where(
            MemberPause.member_id.in_(member_ids),
            MemberPause.first_day <= last,
            MemberPause.last_day >= first,
        )
        .group_by(MemberPause.member_id)
    )
    return dict(rows.all())


def summarize(s: Session, team: Team, first: date, last: date, settings: Settings) -> dict:
    """Entries of days first..last grouped by member (bounded: DIGEST_ENTRIES_PER_MEMBER each); who
    was away; who was asked and did not answer (app.checkins.asked: a reminder reached them)."""
    members = _members(s, team.id)
    shelves = first_per_member(
        s,
        team.id,
        first,
        last,
        per_member=settings.digest_entries_per_member,
        chars=settings.max_entry_chars,
    )
    groups = {m.id: Group(m) for m in members}
    for mid, shelf in shelves.items():
        if mid in groups:
            groups[mid] = Group(groups[mid].member, *shelf)
    away = _away(s, [m.id for m in members], first, last)
    written = [g for g in groups.values() if g.entries]
    present = [m for m in members if m.id not in away]  # the away are listed as such
    quiet = not_heard_from(s, present, first, last, wrote=[g.member.id for g in written])
    return {
        "team": team,
        "first": first,
        "last": last,
        "groups": written,
        "blockers": [(g.member, e) for g in written for e in g.blockers],
        "blocker_count": sum(g.blocker_total for g in written),
        "entry_count": sum(g.total for g in written),
        "away": [m for m in members if m.id in away and not groups[m.id].entries],
        "away_until": away,  # member id -> the last day of their pause ("away until ...")
        "quiet": quiet,
    }


def daily_context(s: Session, msg: OutboundMessage, stored: dict, settings) -> dict:
    """Context of ``templates/email/digest``: the covered day of the message's team."""
    team = s.get(Team, msg.team_id)
    day = date.fromisoformat(stored["day"])
    ctx = summarize(s, team, day, day, settings)
    opts = s.get(TeamSettings, team.id)
    if opts is not None and not opts.digest_include_quiet:
        ctx["quiet"] = []
    asks = questions.of(opts)
    carried = []  # goals set on earlier days and still open, by member
    if questions.goal_question(asks) is not None:
        members = _members(s, team.id)
        still = goals.open_goals(s, [m.id for m in members], day)
        carried = [(m, still[m.id]) for m in members if still.get(m.id)]
    return ctx | {
        "questions": asks,
        "carried": carried,
        "day": day,
        "base_url": settings.base_url,
        "comments": written_on(s, team, day),  # replies to earlier digests, written on this day
        # each reader's Reply-To is their own digest+ address (comments.digest_headers) on this domain
        "_reply_domain": team_reply_domain(opts.reply_domain if opts else "", settings.reply_domains),
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "digest"},
    }


def weekly_context(s: Session, msg: OutboundMessage, stored: dict, settings) -> dict:
    """Context of ``templates/email/weekly``: the seven days ending on the stored ``last`` day."""
    team = s.get(Team, msg.team_id)
    last = date.fromisoformat(stored["last"])
    first = last - timedelta(days=WEEK_DAYS - 1)
    ctx = summarize(s, team, first, last, settings)
    written = [g.member.id for g in ctx["groups"]]
    days = s.execute(
        select(Entry.day, func.count())
        .where(Entry.team_id == team.id, Entry.day >= first, Entry.day <= last, Entry.member_id.in_(written))
        .group_by(Entry.day)
        .order_by(Entry.day)
    ).all()
    return ctx | {
        "per_day": [(d, n) for d, n in days],
        "base_url": settings.base_url,
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "weekly"},
    }
