"""The digest where people read: a team's chat destinations, and its daily digest as chat posts.

A team adds incoming webhooks (Slack, Microsoft Teams, Google Chat, Mattermost, Discord) on its
settings page; when its daily digest goes out (the scheduler's tick, ``donebox digest --now``),
each destination gets one outbox row of kind ``chat`` (idempotent by ``chat:<destination>:<day>``)
whose context is the post, written here from the digest's summary; the relay formats it for the
service and POSTs it (app/relay/chat.py, app/relay/pipeline.py), with the outbox's states,
retries and timeline. Rows name a destination by id, never by its URL.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import String, cast, literal, select
from sqlmodel import Session

from app.checkins.digests import summarize
from app.checkins.teams import TeamError
from app.models import ChatDestination, Entry, Member, OutboundMessage, Team, TeamSettings
from app.relay import chat, outbox
from app.settings import Settings

MAX_DESTINATIONS = 10  # a team's chat destinations
MAX_LABEL = 200
EXPIRES = timedelta(days=2)  # a digest post still undelivered after this is no longer news
# each tick posts the blocker entries of this last span that have no post yet: one written while
# no scheduler ran (a restart, an outage of up to this long) is posted by the next tick; an older
# one is no longer news in a channel (the digest lists it)
BLOCKER_WINDOW = timedelta(days=1)
BLOCKERS_PER_TICK = 500  # (channel, blocker) posts a tick makes at most; the next tick goes on


def destinations(s: Session, team_id: int) -> list[ChatDestination]:
    """The team's chat destinations, oldest first."""
    stmt = select(ChatDestination).where(ChatDestination.team_id == team_id).order_by(ChatDestination.id)
    return list(s.execute(stmt).scalars())


def add_destination(
    s: Session,
    team_id: int,
    service: str,
    url: str,
    *,
    label: str = "",
    blockers: bool = False,
    now: datetime,
    settings: Settings,
) -> ChatDestination:
    """A new destination for the team; TeamError naming the field (service, url, label) when refused:
    an unknown service, a URL that cannot be that service's webhook (app.relay.chat.check_url: https
    on its hosts; http on loopback only with CHAT_ALLOW_LOCAL), too many destinations."""
    service = (service or "").strip().lower()
    if service not in chat.SERVICES:
        raise TeamError(f"the service must be one of {', '.join(chat.SERVICES)}", "service")
    try:
        url = chat.check_url(service, url, allow_local=settings.chat_allow_local)
    except chat.ChatURLError as e:
        raise TeamError(str(e), "url") from None
    label = " ".join((label or "").split())
    if len(label) > MAX_LABEL:
        raise TeamError(f"a label has at most {MAX_LABEL} characters", "label")
    if len(destinations(s, team_id)) >= MAX_DESTINATIONS:
        raise TeamError(f"a team has at most {MAX_DESTINATIONS} chat destinations: remove one first", "url")
    if not isinstance(blockers, bool):
        raise TeamError("blockers must be true or false", "blockers")
    dest = ChatDestination(
        team_id=team_id, service=service, url=url, label=label, blockers=blockers, created_at=now
    )
    s.add(dest)
    s.flush()
    return dest


def remove_destination(s: Session, team_id: int, dest_id: int) -> ChatDestination:
    """Take a destination off the team (posts not yet sent to it then fail); TeamError when it is
    not one of the team's."""
    dest = s.get(ChatDestination, dest_id)
    if dest is None or dest.team_id != team_id:
        raise TeamError(f"no chat destination {dest_id} in this team")
    s.delete(dest)
    s.flush()
    return dest


def describe(dest: ChatDestination) -> dict:
    """A destination as pages, the API and the CLI show it: the URL masked."""
    return {
        "id": dest.id,
        "service": dest.service,
        "service_label": chat.SERVICES[dest.service].label if dest.service in chat.SERVICES else dest.service,
        "label": dest.label,
        "url": chat.mask(dest.url),
        "blockers": dest.blockers,
        "created_at": dest.created_at,
    }


def day_url(settings: Settings, team_id: int, day: date) -> str:
    """The team's day page, where a post links back to."""
    return f"{settings.base_url}/teams/{team_id}?day={day.isoformat()}"


def _who(member) -> str:
    return member.name or member.email


def digest_post(
    s: Session, team: Team, day: date, settings: Settings, *, include_quiet: bool = True
) -> chat.Post:
    """The daily digest of ``team`` for ``day`` as a chat post: blockers first, a section per member
    who wrote, then who did not reply and who was away; bounded as the email digest is."""
    ctx = summarize(s, team, day, day, settings)
    sections = []
    if ctx["blockers"]:
        lines = [f"{_who(m)}: {e.text}" for m, e in ctx["blockers"]]
        if ctx["blocker_count"] > len(lines):
            lines.append(f"and {ctx['blocker_count'] - len(lines)} more")
        sections.append(chat.Section(f"Blockers ({ctx['blocker_count']})", tuple(lines)))
    for g in ctx["groups"]:
        lines = [
            ("[goal] " if e.kind == "goal" else "[blocked] " if e.kind == "blocker" else "") + e.text
            for e in g.entries
        ]
        if g.more:
            lines.append(f"and {g.more} more")
        sections.append(chat.Section(_who(g.member), tuple(lines)))
    notes = []
    if include_quiet and ctx["quiet"]:
        notes.append("No reply from: " + ", ".join(_who(m) for m in ctx["quiet"]))
    if ctx["away"]:
        notes.append("Away: " + ", ".join(_who(m) for m in ctx["away"]))
    return chat.Post(
        title=f"What {team.name} got done on {day:%A, %d %B}",
        url=day_url(settings, team.id, day),
        intro="" if ctx["groups"] else "Nobody wrote in on this day.",
        sections=tuple(sections),
        footer=" · ".join(notes),
        link_text="Open the day in donebox",
    )


def _row(
    dest_id: int, team: Team, key: str, subject: str, post: chat.Post, domain: str, now: datetime
) -> dict:
    return {
        "idempotency_key": key,
        "kind": chat.CHAT_KIND,
        "team_id": team.id,
        "member_id": None,
        "to_addr": chat.to_addr(dest_id),
        "subject": subject,
        "template": "",
        "context": post.to_json(),
        "message_id": outbox.new_message_id(domain),
        "expires_at": now + EXPIRES,
    }


def digest_rows(
    s: Session, team_days: set[tuple[int, date]], *, now: datetime, settings: Settings
) -> list[dict]:
    """Outbox rows posting each (team id, day)'s digest to every destination of the team (one
    query for all the teams' destinations; a post is written only for teams that have one, once per
    team and day); idempotent by ``chat:<destination>:<day>``."""
    team_ids = {t for t, _ in team_days}
    if not team_ids:
        return []
    by_team: dict[int, list[int]] = {}
    stmt = select(ChatDestination.id, ChatDestination.team_id).where(ChatDestination.team_id.in_(team_ids))
    for dest_id, team_id in s.execute(stmt.order_by(ChatDestination.id)):
        by_team.setdefault(team_id, []).append(dest_id)
    wanted = {f"chat:{d}:{day.isoformat()}" for t, day in team_days for d in by_team.get(t, ())}
    made = outbox.known_keys(s, wanted)
    domain = settings.mail_domain
    rows = []
    for team_id, day in sorted(team_days):
        if all(f"chat:{d}:{day.isoformat()}" in made for d in by_team.get(team_id, ())):
            continue  # no destination, or posted already (an earlier batch of this tick)
        team, opts = s.get(Team, team_id), s.get(TeamSettings, team_id)
        quiet = opts is None or opts.digest_include_quiet
        post = digest_post(s, team, day, settings, include_quiet=quiet)
        subject = f"{team.name}: the digest of {day.isoformat()}"
        key = "chat:{}:" + day.isoformat()
        rows += [_row(d, team, key.format(d), subject, post, domain, now) for d in by_team[team_id]]
    return rows


def create_digest_posts(
    s: Session, team_days: set[tuple[int, date]], *, now: datetime, settings: Settings
) -> list[int]:
    """The chat rows of ``digest_rows``, created (skipping those that exist); the new ids."""
    rows = digest_rows(s, team_days, now=now, settings=settings)
    return outbox.create_many(s, rows, now=now, lease_until=now + timedelta(seconds=settings.lease_s))


def send_test_post(s: Session, team: Team, dest_id: int, *, now: datetime, settings: Settings) -> int:
    """A post saying the destination works (the settings page's "Send a test post"): a new outbox row
    each time; its id. TeamError when the destination is not the team's."""
    dest = s.get(ChatDestination, dest_id)
    if dest is None or dest.team_id != team.id:
        raise TeamError(f"no chat destination {dest_id} in this team")
    post = chat.Post(
        title=f"donebox: a test post for {team.name}",
        url=f"{settings.base_url}/teams/{team.id}",
        intro=f"{team.name}'s daily digest will be posted here.",
        link_text="Open the team in donebox",
    )
    row = _row(
        dest.id,
        team,
        f"chat-test:{dest.id}:{uuid.uuid4().hex}",
        "a test post",
        post,
        settings.mail_domain,
        now,
    )
    ids = outbox.create_many(s, [row], now=now, lease_until=now + timedelta(seconds=settings.lease_s))
    return ids[0]


def blocker_key(dest_id, entry_id):
    """``chat-blocker:<destination>:<entry>``: the idempotency key of a blocker's post (ints, or
    SQL columns, for which it is the same text built by the database)."""
    if isinstance(dest_id, int):
        return f"chat-blocker:{dest_id}:{entry_id}"
    return literal("chat-blocker:") + cast(dest_id, String) + ":" + cast(entry_id, String)


def blocker_rows(s: Session, *, now: datetime, settings: Settings) -> list[dict]:
    """Outbox rows posting each blocker entry written in the last BLOCKER_WINDOW to the channels of
    its team that asked for blockers (added before the entry was written); one per channel and
    entry (key ``blocker_key``). Only pairs without a post yet are read, oldest first and at most
    BLOCKERS_PER_TICK, so a backlog drains over ticks and none is skipped."""
    posted = select(OutboundMessage.id).where(
        OutboundMessage.idempotency_key == blocker_key(ChatDestination.id, Entry.id)
    )
    stmt = (
        select(ChatDestination, Entry, Member)
        .join(Entry, Entry.team_id == ChatDestination.team_id)
        .join(Member, Member.id == Entry.member_id)
        .where(
            ChatDestination.blockers,
            Entry.kind == "blocker",
            Entry.created_at > now - BLOCKER_WINDOW,
            Entry.created_at <= now,
            Entry.created_at >= ChatDestination.created_at,
            ~posted.exists(),
        )
        .order_by(Entry.id, ChatDestination.id)
        .limit(BLOCKERS_PER_TICK)
    )
    domain = settings.mail_domain
    teams: dict[int, Team] = {}
    rows = []
    for d, e, m in s.execute(stmt):
        key = blocker_key(d.id, e.id)
        team = teams.get(e.team_id) or teams.setdefault(e.team_id, s.get(Team, e.team_id))
        post = chat.Post(
            title=f"{_who(m)} is blocked",
            url=day_url(settings, team.id, e.day),
            intro=e.text[: settings.max_entry_chars],
            footer=f"{team.name}, {e.day:%A, %d %B}",
            link_text="Open the day in donebox",
        )
        rows.append(_row(d.id, team, key, f"{team.name}: a blocker", post, domain, now))
    return rows


def create_blocker_posts(s: Session, *, now: datetime, settings: Settings) -> list[int]:
    """The rows of ``blocker_rows``, created; the new ids (the scheduler's tick enqueues them)."""
    rows = blocker_rows(s, now=now, settings=settings)
    return outbox.create_many(s, rows, now=now, lease_until=now + timedelta(seconds=settings.lease_s))
