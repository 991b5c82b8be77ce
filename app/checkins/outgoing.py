"""The check-in loop's domain: reminders and digests as outbox producers, and their contexts.

Producers only create outbox rows (idempotent by ``kind:member:local-date``) and
return the new ids; enqueueing them is the caller's job, after commit.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import NamedTuple

from jinja2 import UndefinedError
from sqlalchemy import select
from sqlmodel import Session

from app.checkins import chat, goals, questions
from app.checkins.asked import checkin_key, not_heard_from
from app.checkins.away import away_context
from app.checkins.comments import comment_context, digest_headers
from app.checkins.digests import by_list, daily_context, prefetch_daily, teams_and_options, weekly_context
from app.checkins.entries import Shelf, first_per_member
from app.checkins.notices import still_blocked, still_blocked_many
from app.checkins.questions import DEFAULT as DEFAULT_QUESTION
from app.checkins.reply_tokens import reply_address, team_reply_domain
from app.checkins.summary import summary_context
from app.checkins.times import local_date, local_midnight_after
from app.models import Member, OutboundMessage, Team, TeamSettings
from app.relay import outbox, render
from app.settings import Settings

REMINDER_SUBJECT = "What did you get done today?"
NUDGE_SUBJECT = "Still time: what did you get done today?"
PAGE_ENTRIES_PER_MEMBER = 100  # the team page lists this many of a member's day, then "and N more"


def member_tz(member: Member, team: Team) -> str:
    return member.timezone or team.timezone


def checkin_row(
    kind: str,
    member: Member,
    team: Team,
    tz: str,
    day: date,
    message_id: str,
    *,
    track: bool = False,
    midnight=local_midnight_after,
) -> dict:
    """The outbox row of a reminder, nudge or digest for ``member`` on ``day``: one shape for the
    scheduler's bulk tick and the by-hand commands (``member`` needs ``id`` and ``email``).

    ``track`` is the team's tracking setting now: stored in the row's context as ``_track``, the
    relay's one question (it never reads check-in settings), so a message is tracked as its team
    said when it was made."""
    iso = day.isoformat()
    if kind == "reminder":
        subject, expires = REMINDER_SUBJECT, midnight(day, tz)  # worthless once its day is over
    elif kind == "nudge":
        subject, expires = NUDGE_SUBJECT, midnight(day, tz)
    else:
        subject, expires = f"What {team.name} got done on {day:%A, %d %B}", None
    return {
        "idempotency_key": checkin_key(kind, member.id, day),
        "kind": kind,
        "team_id": team.id,
        "member_id": member.id,
        "to_addr": member.email,
        "subject": subject,
        "template": kind,
        "context": f'{{"day": "{iso}", "_track": true}}' if track else f'{{"day": "{iso}"}}',
        "message_id": message_id,
        "expires_at": expires,
    }


def _create(
    kind: str, s: Session, member: Member, team: Team, day: date, *, now: datetime, settings: Settings
):
    row = checkin_row(
        kind,
        member,
        team,
        member_tz(member, team),
        day,
        outbox.new_message_id(settings.mail_domain),
        track=tracking_on(s, team.id),
    )
    return outbox.create(s, now=now, lease_until=now + timedelta(seconds=settings.lease_s), **row)


def create_reminder(s: Session, member: Member, team: Team, day: date, *, now: datetime, settings: Settings):
    """The reminder row for ``member`` on their local ``day``; (id, created)."""
    return _create("reminder", s, member, team, day, now=now, settings=settings)


def create_digest(s: Session, member: Member, team: Team, day: date, *, now: datetime, settings: Settings):
    """The digest row covering ``day`` for ``member``; (id, created)."""
    return _create("digest", s, member, team, day, now=now, settings=settings)


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


def tracking_on(s: Session, team_id: int) -> bool:
    """The team's tracking setting (off for a team that never set it)."""
    opts = s.get(TeamSettings, team_id)
    return opts is not None and opts.tracking


def digests_on(s: Session, team_id: int) -> bool:
    """False when the team turned its morning digest off (team settings)."""
    opts = s.get(TeamSettings, team_id)
    return opts is None or opts.digest_enabled


def digest_now(s: Session, *, now: datetime, settings: Settings, day: date | None = None) -> list[int]:
    """Digests for every active member covering ``day`` (default: their local today), and the posts
    to their teams' chat destinations; new ids."""
    ids, team_days = [], set()
    for member, team in _members(s):
        if not digests_on(s, team.id):
            continue
        d = day or local_date(now, member_tz(member, team))
        mid, created = create_digest(s, member, team, d, now=now, settings=settings)
        team_days.add((team.id, d))
        if created:
            ids.append(mid)
    return ids + chat.create_digest_posts(s, team_days, now=now, settings=settings)


# ---------------------------------------------------------------- contexts for rendering


def reminder_context(s: Session, msg: OutboundMessage, stored: dict, settings: Settings) -> dict:
    """Context of ``templates/email/reminder`` (and nudge); what ``prefetch_reminders`` kept for a
    batch is read from the session, the rest from the database."""
    member = s.get(Member, msg.member_id)
    team = s.get(Team, msg.team_id)
    day = date.fromisoformat(stored["day"])
    opts = render.kept(s, ("opts", team.id), lambda: s.get(TeamSettings, team.id))
    domain = team_reply_domain(opts.reply_domain if opts else "", settings.reply_domains)
    reply_to = reply_address(settings.secret_key, domain, member.id, day)
    asks = questions.of(opts)
    listed = goals.listed if questions.goal_question(asks) is not None else None
    blocked = msg.kind == "reminder"
    at = msg.created_at
    return {
        "member": member,
        "team": team,
        "day": day,
        "questions": asks,
        # the goals a reply closes by number: listed only where a question asks for goals
        "goals": render.kept(s, ("listed", member.id, day), lambda: listed(s, member.id, day))
        if listed
        else [],
        "base_url": settings.base_url,
        # the member's blockers open for more than a day, as of when the reminder was made
        "still_blocked": render.kept(
            s, ("still_blocked", member.id, at), lambda: still_blocked(s, member.id, at=at)
        )
        if blocked
        else [],
        "_headers": {"Reply-To": reply_to, "Auto-Submitted": "auto-generated", "X-Donebox-Kind": msg.kind},
    }


def prefetch_reminders(s: Session, messages: list, settings: Settings) -> None:
    """What ``reminder_context`` reads for each of a batch's reminders and nudges, in at most five
    queries however many they are: members, teams and their options, listed goals, still-open
    blockers."""
    member_ids = [m.member_id for m in messages if m.member_id]
    _, opts = teams_and_options(s, {m.team_id for m in messages if m.team_id})
    render.hold(s, s.execute(by_list().members_by_id, {"ids": member_ids}).scalars())
    kept: dict = {}
    days = {}
    for m in messages:
        try:
            days[m.id] = date.fromisoformat(json.loads(m.context or "{}")["day"])
        except (ValueError, KeyError, TypeError):
            continue  # its builder fails on its own, as it would have
    pairs = {
        (m.member_id, days[m.id])
        for m in messages
        if m.id in days and questions.goal_question(questions.of(opts.get(m.team_id))) is not None
    }
    kept |= {("listed", mid, day): found for (mid, day), found in goals.listed_many(s, pairs).items()}
    asks = {(m.member_id, m.created_at) for m in messages if m.kind == "reminder" and m.member_id}
    kept |= {("still_blocked", mid, at): found for (mid, at), found in still_blocked_many(s, asks).items()}
    render.keep(s, kept)


def reminder_text(
    member: Member, team: Team, day: date, settings: Settings, *, questions: tuple[str, ...] = (), goals=()
) -> str:
    """The text part of ``member``'s reminder of ``day`` (asking ``questions``, listing ``goals``):
    what a reply quotes back to us."""
    return (
        render.environment()
        .get_template("email/reminder.txt")
        .render(
            member=member,
            team=team,
            day=day,
            base_url=settings.base_url,
            questions=questions or (DEFAULT_QUESTION,),
            goals=list(goals),
            still_blocked=(),
        )
    )


class _Addressee(NamedTuple):
    """Who a reminder rendered for many members greets: markers, or a member without a name."""

    name: str | None
    email: str


# where a member's name and address go in a reminder rendered once for many (no name holds a NUL)
_NAME, _EMAIL = "\x00member.name\x00", "\x00member.email\x00"


class ReminderTexts:
    """``reminder_text`` of many members (a batch of replies, each quoting its reminder): the
    template is rendered once per team, day, questions and whether the member has a name, with
    markers where the member's name and address go; each member's text is that with the markers
    replaced. A template that reads more of a member, or changes what it reads, gets a render per
    member: the text is always reminder_text's (tests/app/checkins/test_reminder_texts.py)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._shared: dict[tuple, str | None] = {}

    def __call__(self, member: Member, team: Team, day: date, *, questions: tuple[str, ...] = ()) -> str:
        key = (team.id, team.name, day, questions, bool(member.name))
        if key not in self._shared:
            self._shared[key] = self._with_markers(team, day, questions, member.name)
        shared = self._shared[key]
        if shared is None:
            return reminder_text(member, team, day, self.settings, questions=questions)
        if member.name:
            shared = shared.replace(_NAME, member.name)
        return shared.replace(_EMAIL, member.email)

    def _with_markers(
        self, team: Team, day: date, questions: tuple[str, ...], name: str | None
    ) -> str | None:
        """The reminder with markers for the member's address and name (an empty ``name`` is
        kept: the template may greet by address then); None when the template reads more of a
        member than these or does not show them as they are."""
        try:
            text = reminder_text(
                _Addressee(_NAME if name else name, _EMAIL),
                team,
                day,
                self.settings,
                questions=questions,
            )
        except UndefinedError:
            return None
        return None if "\x00" in text.replace(_NAME, "").replace(_EMAIL, "") else text


def team_day(
    s: Session, team_id: int, day: date, *, per_member: int = PAGE_ENTRIES_PER_MEMBER, chars: int = 2000
) -> tuple[list[tuple[Member, Shelf]], list[Member]]:
    """The team's entries of ``day`` by member (the first ``per_member`` each, text cut at ``chars``,
    and how many more), and the members asked that day who wrote none (app.checkins.asked)."""
    members = list(
        s.execute(
            select(Member).where(Member.team_id == team_id, Member.active).order_by(Member.name)
        ).scalars()
    )
    by_member = first_per_member(s, team_id, day, day, per_member=per_member, chars=chars)
    groups = [(m, by_member[m.id]) for m in members if m.id in by_member]
    return groups, not_heard_from(s, members, day, day, wrote=by_member)


# how the relay makes these messages' context at send time; a digest says nothing per recipient,
# so the relay renders a team's digest once per batch
render.register_context("reminder", reminder_context, prefetch=prefetch_reminders)
render.register_context(
    "nudge", reminder_context, prefetch=prefetch_reminders
)  # the same signed reply address: a reply counts
render.register_context("digest", daily_context, shared=True, headers=digest_headers, prefetch=prefetch_daily)
render.register_context("weekly", weekly_context, shared=True)
render.register_context("away", away_context)  # app.checkins.away: an auto-reply made a pause
render.register_context("comment", comment_context)  # app.checkins.comments: a reply to a digest
# app.checkins.summary: the admins' weekly participation, the same for every admin of a team and week
render.register_context("participation", summary_context, shared=True)
