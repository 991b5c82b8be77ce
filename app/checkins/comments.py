"""Replies to a team's digest become comments: on the entry they quote, the member they name, or the day.

Every digest carries its reader's signed ``digest+`` reply address (app.checkins.reply_tokens,
added per recipient to the team's shared render by ``digest_headers``). app.inbound.process
identifies a reply to it (that address, or In-Reply-To naming a digest we sent) and hands the
reply here: ``add_from_reply`` decides what the comment is on (parsers.digest_reply), stores it
and queues one email (outbox kind ``comment``) to the person it is about, unless they wrote it.
Comments show on the team's day page (``of_day``), in the digest of the day they were
written (``written_on``), in the JSON API (``page``, ``on_entry``) and in the export
(app.checkins.export).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, delete, select
from sqlmodel import Session

from app.checkins.reply_tokens import digest_reply_address
from app.checkins.times import local_midnight_after
from app.db import in_list
from app.models import Comment, Entry, Member, OutboundMessage, Team
from app.relay import outbox
from app.settings import Settings
from parsers.digest_reply import named_member, quoted_entry

MAX_COMMENT_CHARS = 4000  # a comment longer than this is cut (the reply is kept on its inbound row)
DAY_ENTRIES = 2000  # a day's entries a quote is matched against
SHOWN = 200  # comments a page or a digest lists


@dataclass
class Shown:
    """A comment as a page or a digest shows it: who wrote it, and what it is on."""

    id: int
    author: str
    text: str
    day: date
    on_entry: str  # the entry's text, '' when on a member or the day
    on_member: str  # the member's name, '' when on an entry or the day
    entry_id: int | None


def _name(m: Member | None) -> str:
    return (m.name or m.email) if m is not None else ""


def add_from_reply(
    s: Session,
    author: Member,
    team: Team,
    day: date,
    *,
    body: str,
    reply: str,
    inbound_id: int,
    now: datetime,
    settings: Settings,
) -> tuple[str, int | None]:
    """Store ``author``'s reply to the digest of ``day`` as a comment; (what it became, the outbox
    id of the notice to enqueue after commit, or None). ``body``: the mail's plain text (for
    the quote); ``reply``: the new text. A reply with no text, or one already stored (the same
    inbound message again), makes nothing."""
    text = reply.strip()[:MAX_COMMENT_CHARS]
    if not text:
        return "digest reply with no text: no comment", None
    if s.execute(select(Comment.id).where(Comment.inbound_id == inbound_id)).first() is not None:
        return "digest reply already a comment", None
    day_entries = s.execute(
        select(Entry.id, Entry.text, Entry.member_id)
        .where(Entry.team_id == team.id, Entry.day == day)
        .order_by(Entry.id)
        .limit(DAY_ENTRIES)
    ).all()
    entry_id = quoted_entry(body, text, [(e.id, e.text) for e in day_entries])
    member_id = None
    if entry_id is None:
        members = s.execute(select(Member).where(Member.team_id == team.id, Member.active)).scalars().all()
        member_id = named_member(text, [(m.id, m.name, m.email) for m in members])
    comment = Comment(
        team_id=team.id,
        day=day,
        entry_id=entry_id,
        member_id=member_id,
        author_id=author.id,
        text=text,
        inbound_id=inbound_id,
        created_at=now,
    )
    s.add(comment)
    s.flush()
    about = next((e.member_id for e in day_entries if e.id == entry_id), None) if entry_id else member_id
    what = f"comment {comment.id} on " + (
        f"entry {entry_id}"
        if entry_id
        else f"member {member_id}"
        if member_id
        else f"the day {day.isoformat()}"
    )
    if about is None or about == author.id:
        return what, None
    target = s.get(Member, about)
    if target is None or not target.active:
        return what, None
    mid, created = outbox.create(
        s,
        now=now,
        lease_until=now + timedelta(seconds=settings.lease_s),
        idempotency_key=f"comment:{comment.id}",
        kind="comment",
        team_id=team.id,
        member_id=target.id,
        to_addr=target.email,
        subject=f"{_name(author)} commented on your {'entry' if entry_id else 'day'} of {day:%A %d %B}",
        template="comment",
        context={"comment_id": comment.id},
        message_id=outbox.new_message_id(settings.mail_domain),
    )
    return what, (mid if created else None)


def forget(s: Session, inbound_ids: list[int]) -> None:
    """Drop the comments these inbound messages made (they are processed again)."""
    s.execute(delete(Comment).where(Comment.inbound_id.in_(inbound_ids)))


@cache
def _by_list() -> tuple[Select, Select, Select]:
    """(members by id, entries' texts by id, comments of teams :ids written from :start to before
    :end), built once; each list bound as one parameter (app.db.in_list)."""
    return (
        select(Member).where(in_list(Member.__table__.c.id, "ids")),
        select(Entry.id, Entry.text).where(in_list(Entry.__table__.c.id, "ids")),
        select(Comment)
        .where(
            in_list(Comment.__table__.c.team_id, "ids"),
            Comment.created_at >= bindparam("start", type_=Comment.__table__.c.created_at.type),
            Comment.created_at < bindparam("end", type_=Comment.__table__.c.created_at.type),
        )
        .order_by(Comment.id),
    )


def _shown(s: Session, rows: list[Comment]) -> list[Shown]:
    members, entries, _ = _by_list()
    ids = list({c.author_id for c in rows} | {c.member_id for c in rows if c.member_id})
    people = {m.id: m for m in s.execute(members, {"ids": ids}).scalars()} if rows else {}
    wanted = [c.entry_id for c in rows if c.entry_id]
    texts = dict(s.execute(entries, {"ids": wanted}).all()) if wanted else {}
    return [
        Shown(
            c.id,
            _name(people.get(c.author_id)),
            c.text,
            c.day,
            texts.get(c.entry_id, "") if c.entry_id else "",
            _name(people.get(c.member_id)) if c.member_id else "",
            c.entry_id if c.entry_id in texts else None,
        )
        for c in rows
    ]


def of_day(s: Session, team_id: int, day: date) -> list[Shown]:
    """The comments on ``day``'s entries, members and the day itself (the team's day page)."""
    rows = s.execute(
        select(Comment)
        .where(Comment.team_id == team_id, Comment.day == day)
        .order_by(Comment.id)
        .limit(SHOWN)
    ).scalars()
    return _shown(s, list(rows))


def written_on(s: Session, team: Team, day: date) -> list[Shown]:
    """The comments written during ``day`` in the team's time zone: the digest of that day shows
    them, so each comment reaches the team once, in the digest after it was written."""
    start, end = (
        local_midnight_after(day - timedelta(days=1), team.timezone),
        local_midnight_after(day, team.timezone),
    )
    rows = s.execute(
        select(Comment)
        .where(Comment.team_id == team.id, Comment.created_at >= start, Comment.created_at < end)
        .order_by(Comment.id)
        .limit(SHOWN)
    ).scalars()
    return _shown(s, list(rows))


def comments_of_days(s: Session, team_days: list[tuple[Team, date]]) -> dict[tuple[int, date], list[Shown]]:
    """{(team id, day): ``written_on(s, team, day)``} of each pair, in three queries however many."""
    windows = {
        (team.id, day): (
            local_midnight_after(day - timedelta(days=1), team.timezone),
            local_midnight_after(day, team.timezone),
        )
        for team, day in team_days
    }
    out: dict[tuple[int, date], list[Comment]] = {key: [] for key in windows}
    if not windows:
        return {}
    params = {
        "ids": list({t for t, _ in windows}),
        "start": min(start for start, _ in windows.values()),
        "end": max(end for _, end in windows.values()),
    }
    rows = s.execute(_by_list()[2], params).scalars()
    for c in rows:
        for (team_id, day), (start, end) in windows.items():
            found = out[team_id, day]
            if c.team_id == team_id and start <= c.created_at < end and len(found) < SHOWN:
                found.append(c)
    shown = {sh.id: sh for sh in _shown(s, [c for found in out.values() for c in found])}
    return {key: [shown[c.id] for c in found] for key, found in out.items()}


def page(
    s: Session,
    team_id: int,
    *,
    first: date | None = None,
    last: date | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[Comment]:
    """The team's comments of the days ``first`` to ``last`` (either may be None: no bound), with
    ids below ``before``, newest first, at most ``limit`` (the API's pages)."""
    stmt = select(Comment).where(Comment.team_id == team_id)
    if first is not None:
        stmt = stmt.where(Comment.day >= first)
    if last is not None:
        stmt = stmt.where(Comment.day <= last)
    if before is not None:
        stmt = stmt.where(Comment.id < before)
    return list(s.execute(stmt.order_by(Comment.id.desc()).limit(limit)).scalars())


def on_entry(s: Session, entry: Entry) -> list[Comment]:
    """The comments on ``entry``, oldest first (at most SHOWN)."""
    stmt = (
        select(Comment)
        .where(Comment.team_id == entry.team_id, Comment.entry_id == entry.id)
        .order_by(Comment.id)
        .limit(SHOWN)
    )
    return list(s.execute(stmt).scalars())


def digest_headers(message, context: dict, settings: Settings) -> dict[str, str]:
    """The Reply-To of one reader's digest: their own signed ``digest+`` address for the day
    (the shared render knows the team's reply domain; the row knows the reader)."""
    day = context.get("day")
    domain = context.get("_reply_domain")
    if not isinstance(day, date) or not domain or not message.member_id:
        return {}
    return {"Reply-To": digest_reply_address(settings.secret_key, domain, message.member_id, day)}


def comment_context(s: Session, msg: OutboundMessage, stored: dict, settings: Settings) -> dict:
    """Context of ``templates/email/comment``: the comment and what it is on."""
    comment = s.get(Comment, stored["comment_id"])
    team = s.get(Team, msg.team_id)
    shown = _shown(s, [comment])[0] if comment is not None else None
    return {
        "member": s.get(Member, msg.member_id),
        "team": team,
        "comment": shown,
        "day_url": f"{settings.base_url}/teams/{team.id}?day={shown.day.isoformat()}"
        if shown
        else settings.base_url,
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": "comment"},
    }
