"""What a digest says: the team's entries of a day (or a week) grouped by member, and who was silent.

Context builders the relay renders digests with (app.checkins.outgoing registers them); entries
are text and the templates autoescape them, so what a member wrote can never become markup. A
digest's size is bounded whatever the day holds: DIGEST_ENTRIES_PER_MEMBER entries (and as many
blockers) a member, each at most MAX_ENTRY_CHARS, then "and N more".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import NamedTuple

from sqlalchemy import Row, Select, bindparam, func, select
from sqlmodel import Session

from app.checkins import goals, questions
from app.checkins.asked import not_heard_from, reached_pairs
from app.checkins.comments import comments_of_days, written_on
from app.checkins.entries import Shown, first_per_member, shelves_of_days
from app.checkins.reply_tokens import team_reply_domain
from app.db import in_list
from app.models import Entry, Member, MemberPause, OutboundMessage, Team, TeamSettings
from app.relay import render
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


_MEMBER = tuple(Member.__table__.c)


class _ByList(NamedTuple):
    """The batch prefetches' look-ups by a list of ids, built once; each binds its list as one
    parameter (app.db.in_list): on PostgreSQL one statement text whatever the batch, which
    psycopg prepares, where an expanding IN is a text per list length."""

    teams: Select  # Team objects by id (:ids)
    options: Select  # TeamSettings objects by team id (:ids)
    members_by_id: Select  # Member objects by id (:ids)
    active_members: Select  # rows of Member's columns, active members of teams (:ids), by name, then id
    pauses: Select  # (member, first day, last day) of members (:ids) overlapping :first..:last


@cache
def by_list() -> _ByList:
    """The prefetch statements (see _ByList)."""
    P = MemberPause
    return _ByList(
        teams=select(Team).where(in_list(Team.__table__.c.id, "ids")),
        options=select(TeamSettings).where(in_list(TeamSettings.__table__.c.team_id, "ids")),
        members_by_id=select(Member).where(in_list(Member.__table__.c.id, "ids")),
        active_members=select(*_MEMBER)
        .where(in_list(Member.__table__.c.team_id, "ids"), Member.active)
        .order_by(Member.name, Member.id),
        pauses=select(P.member_id, P.first_day, P.last_day).where(
            in_list(P.__table__.c.member_id, "ids"),
            P.first_day <= bindparam("last", type_=P.__table__.c.first_day.type),
            P.last_day >= bindparam("first", type_=P.__table__.c.last_day.type),
        ),
    )


def teams_and_options(s: Session, team_ids) -> tuple[dict[int, Team], dict[int, TeamSettings | None]]:
    """``team_ids``' Team objects, held in the session (``s.get`` finds them), and their options
    (None for a team without a row), kept as ("opts", id) for the builders: two queries."""
    ids = list(team_ids)
    found = by_list()
    teams = {t.id: t for t in s.execute(found.teams, {"ids": ids}).scalars()}
    opts: dict[int, TeamSettings | None] = dict.fromkeys(ids)
    opts.update((o.team_id, o) for o in s.execute(found.options, {"ids": ids}).scalars())
    render.hold(s, teams.values())
    render.keep(s, {("opts", tid): o for tid, o in opts.items()})
    return teams, opts


def _members_of(s: Session, team_ids) -> dict[int, list[Row]]:
    """The active members of each of ``team_ids``, by name, then id: read-only rows of Member's
    columns, not ORM objects (a batch's digests read the members of dozens of teams at once)."""
    members: dict[int, list[Row]] = {t: [] for t in team_ids}
    for mem in s.execute(by_list().active_members, {"ids": list(team_ids)}):
        members[mem.team_id].append(mem)
    return members


def _members(s: Session, team_id: int) -> list[Row]:
    return _members_of(s, [team_id])[team_id]


def _pauses(s: Session, member_ids, first: date, last: date) -> list[tuple[int, date, date]]:
    """(member, first day, last day) of the pauses of ``member_ids`` overlapping first..last."""
    if not member_ids:
        return []
    params = {"ids": list(member_ids), "first": first, "last": last}
    return [tuple(r) for r in s.execute(by_list().pauses, params)]


def _away_of(pauses, member_ids, first: date, last: date) -> dict[int, date]:
    """Members among ``member_ids`` with a pause overlapping first..last, and the last day of their
    latest such pause."""
    away: dict[int, date] = {}
    for mid, first_day, last_day in pauses:
        if mid in member_ids and first_day <= last and last_day >= first:
            away[mid] = max(last_day, away.get(mid, last_day))
    return away


def _away(s: Session, member_ids: list[int], first: date, last: date) -> dict[int, date]:
    return _away_of(_pauses(s, member_ids, first, last), set(member_ids), first, last)


def summarize(s: Session, team: Team, first: date, last: date, settings: Settings) -> dict:
    """Entries of days first..last grouped by member (bounded: DIGEST_ENTRIES_PER_MEMBER each); who
    was away; who was asked and did not answer (app.checkins.asked: a reminder reached them)."""
    members = render.kept(s, ("members", team.id), lambda: _members(s, team.id))
    per_member, chars = settings.digest_entries_per_member, settings.max_entry_chars
    shelves = render.kept(
        s,
        ("shelves", team.id, first, last, per_member, chars),
        lambda: first_per_member(s, team.id, first, last, per_member=per_member, chars=chars),
    )
    groups = {m.id: Group(m) for m in members}
    for mid, shelf in shelves.items():
        if mid in groups:
            groups[mid] = Group(groups[mid].member, *shelf)
    away = render.kept(
        s, ("away", team.id, first, last), lambda: _away(s, [m.id for m in members], first, last)
    )
    written = [g for g in groups.values() if g.entries]
    present = [m for m in members if m.id not in away]  # the away are listed as such
    wrote = {g.member.id for g in written}
    reached = render.kept(s, ("asked", team.id, first, last), lambda: None)  # every member's, when kept
    if reached is None:
        quiet = not_heard_from(s, present, first, last, wrote=wrote)
    else:  # not_heard_from with the members' reached reminders read already
        quiet = [m for m in present if m.id in reached and m.id not in wrote]
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
    opts = render.kept(s, ("opts", team.id), lambda: s.get(TeamSettings, team.id))
    if opts is not None and not opts.digest_include_quiet:
        ctx["quiet"] = []
    asks = questions.of(opts)
    carried = []  # goals set on earlier days and still open, by member
    if questions.goal_question(asks) is not None:
        members = render.kept(s, ("members", team.id), lambda: _members(s, team.id))
        still = render.kept(
            s, ("open_goals", team.id, day), lambda: goals.open_goals(s, [m.id for m in members], day)
        )
        carried = [(m, still[m.id]) for m in members if still.get(m.id)]
    return ctx | {
        "questions": asks,
        "carried": carried,
        "day": day,
        "base_url": settings.base_url,
        # replies to earlier digests, written on this day
        "comments": render.kept(s, ("comments", team.id, day), lambda: written_on(s, team, day)),
        # each reader's Reply-To is their own digest+ address (comments.digest_headers) on this domain
        "_reply_domain": team_reply_domain(opts.reply_domain if opts else "", settings.reply_domains),
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "digest"},
    }


def prefetch_daily(s: Session, messages: list, settings: Settings) -> None:
    """What ``daily_context`` reads for a batch's digests (each team and day once), in about eight
    queries however many teams and days: teams and options, members, entries, pauses, reached
    reminders, comments (and their authors and entries). Goals carried (a goal question) are
    still read per digest."""
    pairs: set[tuple[int, date]] = set()
    for m in messages:
        try:
            pairs.add((m.team_id, date.fromisoformat(json.loads(m.context or "{}")["day"])))
        except (ValueError, KeyError, TypeError):
            continue  # its builder fails on its own, as it would have
    team_ids = {t for t, _ in pairs if t is not None}
    pairs = {(t, d) for t, d in pairs if t in team_ids}
    if not pairs:
        return
    teams, opts = teams_and_options(s, team_ids)
    members = _members_of(s, team_ids)
    per_member, chars = settings.digest_entries_per_member, settings.max_entry_chars
    shelves = shelves_of_days(s, pairs, per_member=per_member, chars=chars)
    days = [d for _, d in pairs]
    everyone = [mem.id for ms in members.values() for mem in ms]
    pauses = _pauses(s, everyone, min(days), max(days))
    reached = reached_pairs(s, [(mem.id, d) for t, d in pairs for mem in members[t]])
    comments = comments_of_days(s, [(teams[t], d) for t, d in pairs if t in teams])
    asking = [(t, d) for t, d in pairs if questions.goal_question(questions.of(opts[t])) is not None]
    still = goals.open_goals_many(s, [(mem.id, d) for t, d in asking for mem in members[t]])
    kept: dict = {}
    for t, d in pairs:
        ids = {mem.id for mem in members[t]}
        kept |= {
            ("members", t): members[t],
            ("shelves", t, d, d, per_member, chars): shelves[t, d],
            ("away", t, d, d): _away_of(pauses, ids, d, d),
            ("asked", t, d, d): {mid for mid in ids if (mid, d) in reached},
        }
        if t in teams:
            kept["comments", t, d] = comments[teams[t].id, d]
        if (t, d) in asking:
            kept["open_goals", t, d] = {
                mid: found for (mid, day), found in still.items() if day == d and mid in ids and found
            }
    render.keep(s, kept)


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
