"""Who wrote an inbound message: the signed reply address, our Message-ID, then an authenticated From.

Also what is no person's reply at all (auto-replies, bounces). ``find_senders`` reads
what a whole batch needs in at most three queries; ``identify`` decides for one message.
A reply address or a reply to our Message-ID counts only while its member is on the team,
and (with a day) until REPLY_WINDOW_DAYS after that day; whether a From is authenticated is
app/inbound/authentication.py's decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache

from sqlalchemy import func, select
from sqlmodel import Session

from app.checkins.reply_tokens import token_from_address, verify_digest_token, verify_reply_token
from app.checkins.times import local_date
from app.db import in_list
from app.inbound.authentication import authenticate_sender
from app.models import Member, OutboundMessage, Team, TeamSettings
from app.settings import Settings
from parsers.message import InboundEmail, address_key

_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|auto(matic)?[ -]?reply|autoreply|abwesenheit|absence|"
    r"réponse automatique|respuesta automática|vacation|on vacation)\b",
    re.IGNORECASE,
)


def is_automatic(email: InboundEmail) -> str:
    """Why this mail is an auto-reply or a bounce, or '' for mail a person wrote."""
    auto = email.header("Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if email.header("X-Autoreply") or email.header("X-Autorespond"):
        return "X-Autoreply header"
    if email.header("Precedence").strip().lower() in ("bulk", "auto_reply", "junk", "list"):
        return f"Precedence: {email.header('Precedence').strip()}"
    ctype = email.header("Content-Type").replace(" ", "").replace('"', "").lower()
    if "report-type=delivery-status" in ctype or any(
        a.content_type.startswith("message/delivery-status") for a in email.attachments
    ):
        return "delivery status notification"
    if address_key(email.from_addr).startswith(("mailer-daemon@", "postmaster@")):
        return "bounce from " + email.from_addr
    if _AUTO_SUBJECT.search(email.subject):
        return "auto-reply subject"
    return ""


_NOT_AUTO_REPLIES = (
    "precedence: bulk",
    "precedence: junk",
    "precedence: list",
    "delivery status",
    "bounce from",
)


def is_auto_reply(why: str) -> bool:
    """True when ``why`` (is_automatic's answer) is a person's auto-reply (out of office,
    vacation), not a bounce, a list or bulk mail; it may say when they are back."""
    low = why.lower()
    return bool(low) and not low.startswith(_NOT_AUTO_REPLIES) and low != "auto-submitted: auto-generated"


def _tokens(email: InboundEmail, settings: Settings):
    for addr in (*email.envelope_to, *email.to, *email.cc):
        token = token_from_address(addr, settings.reply_domains)  # REPLY_DOMAIN or INBOUND_DOMAINS
        if token is not None:
            yield token, addr
    if email.mailbox_hash:
        yield email.mailbox_hash, "MailboxHash"


def authenticated_sender(email: InboundEmail, authserv_ids: tuple[str, ...] = ()) -> bool:
    """True when a trusted, aligned SPF, DKIM or DMARC pass vouches for From and nothing failed
    (app.inbound.authentication); ``authserv_ids`` are the hosts whose headers are believed."""
    return authenticate_sender(email, authserv_ids).authenticated


@dataclass
class Senders:
    """What identifying a batch of messages needs from the database, read in a few queries.

    ``members``: (member, team) by member id, for reply tokens; ``sent``: our Message-IDs with
    their member, team and reminder day; ``by_email``: active members by address, for an
    authenticated From, keyed by ``address_key`` (members' addresses are stored folded);
    ``questions``: each of those teams' questions as stored ('' for the default), read in the same queries.
    """

    members: dict[int, tuple[Member, Team]] = field(default_factory=dict)
    sent: dict[str, tuple[Member, Team, date | None]] = field(default_factory=dict)
    by_email: dict[str, list[tuple[Member, Team]]] = field(default_factory=dict)
    digests: set[str] = field(default_factory=set)  # those of ``sent`` that are digests
    questions: dict[int, str] = field(
        default_factory=dict
    )  # TeamSettings.questions by team id, read alongside


def _first_token(email: InboundEmail, settings: Settings) -> tuple[str, str] | None:
    return next(_tokens(email, settings), None)


def _digest_token(email: InboundEmail, settings: Settings) -> tuple[str, str] | None:
    """The first ``digest+<token>`` recipient (a reply to a digest: a comment), and the address."""
    for addr in (*email.envelope_to, *email.to, *email.cc):
        token = token_from_address(addr, settings.reply_domains, tag="digest")
        if token is not None:
            return token, addr
    return None


def _refs(email: InboundEmail) -> list[str]:
    return [ref for ref in (email.in_reply_to, *reversed(email.references)) if ref]


def _day_of(context: str | None) -> date | None:
    day = json.loads(context or "{}").get("day")
    return datetime.fromisoformat(day).date() if day else None


def find_senders(s: Session, emails: list[InboundEmail], settings: Settings) -> Senders:
    """The members ``identify`` may need for ``emails``: at most three queries for the whole batch."""
    found = Senders()
    member_ids, refs = set(), set()
    for email in emails:
        first = _first_token(email, settings) or _digest_token(email, settings)
        if first is not None:
            digest = verify_digest_token(settings.secret_key, first[0])
            if digest is not None:
                member_ids.add(digest[0])
                continue
            verified = verify_reply_token(settings.secret_key, first[0])
            if verified is not None:
                member_ids.add(verified[0])
        else:
            refs.update(_refs(email))
    by_id, by_message_id, by_email = _lookups()
    for chunk in _chunks(sorted(member_ids)):
        for member, team, questions in s.execute(by_id, {"ids": chunk}).all():
            found.members[member.id] = (member, team)
            found.questions[team.id] = questions
    for chunk in _chunks(sorted(refs)):
        for message_id, context, kind, member, team, questions in s.execute(
            by_message_id, {"ids": chunk}
        ).all():
            if message_id not in found.sent and kind == "digest":
                found.digests.add(message_id)
            found.sent.setdefault(message_id, (member, team, _day_of(context)))
            found.questions[team.id] = questions
    senders = {
        address_key(email.from_addr)
        for email in emails
        if email.from_addr
        and _first_token(email, settings) is None
        and _digest_token(email, settings) is None
        and not any(ref in found.sent for ref in _refs(email))
        and authenticated_sender(email, settings.authserv_ids)  # the costliest test last
    }
    for chunk in _chunks(sorted(senders)):
        for member, team, questions in s.execute(by_email, {"emails": chunk}).all():
            found.by_email.setdefault(address_key(member.email), []).append((member, team))
            found.questions[team.id] = questions
    return found


@cache
def _lookups():
    """find_senders' three statements (members by id, our messages by Message-ID, active members
    by address), built once; each binds its list as one parameter (app.db.in_list)."""
    asks = func.coalesce(TeamSettings.questions, "")
    pair = (
        select(Member, Team, asks)
        .join(Team, Team.id == Member.team_id)
        .outerjoin(TeamSettings, TeamSettings.team_id == Team.id)
    )
    sent = (
        select(OutboundMessage.message_id, OutboundMessage.context, OutboundMessage.kind, Member, Team, asks)
        .join(Member, Member.id == OutboundMessage.member_id)
        .join(Team, Team.id == Member.team_id)
        .outerjoin(TeamSettings, TeamSettings.team_id == Team.id)
        .where(in_list(OutboundMessage.__table__.c.message_id, "ids"))
        .order_by(OutboundMessage.id)
    )
    return (
        pair.where(in_list(Member.__table__.c.id, "ids")),
        sent,
        pair.where(in_list(Member.__table__.c.email, "emails"), Member.active.is_(True)).order_by(Member.id),
    )


def _chunks(values: list, size: int = 500):
    for i in range(0, len(values), size):
        yield values[i : i + size]


def stale(member: Member, team: Team, day: date | None, settings: Settings, now: datetime) -> str:
    """Why a reply to ``member``'s reminder of ``day`` no longer counts, or '' when it does:
    the member left the team, or the day is more than REPLY_WINDOW_DAYS behind their today."""
    if not member.active:
        return f"member {member.id} is no longer on the team"
    if day is None:
        return ""
    today = local_date(now, member.timezone or team.timezone)
    window = settings.reply_window_days
    if (today - day).days > window:
        return f"reply address for {day.isoformat()} expired after {window} days"
    if day > today + timedelta(days=1):  # no reminder of ours is for a later day
        return f"reply address for {day.isoformat()} is for a day that has not come"
    return ""


def identify_digest(email: InboundEmail, senders: Senders, settings: Settings, *, now: datetime):
    """For a reply to a digest: (member, team, day of the digest, how), or (None, None, None,
    why-not) when its digest+ address is bad or stale; None when it is no reply to a digest.

    Its signed ``digest+`` address first (the reader and the day), then In-Reply-To/References
    naming a digest we sent; the same conditions as a reminder's reply (``stale``)."""
    found = _digest_token(email, settings)
    if found is not None:
        token, addr = found
        verified = verify_digest_token(settings.secret_key, token)
        if verified is None:
            return None, None, None, f"bad digest reply token in {addr}"
        if verified[0] not in senders.members:
            return None, None, None, "digest reply token names no member (member no longer on the team)"
        member, team = senders.members[verified[0]]
        why = stale(member, team, verified[1], settings, now)
        return (None, None, None, why) if why else (member, team, verified[1], "digest reply token")
    if _first_token(email, settings) is not None:
        return None  # a reminder's reply address decides
    for ref in _refs(email):
        if ref in senders.sent:
            if ref not in senders.digests:
                return None  # a reply to a reminder
            member, team, day = senders.sent[ref]
            why = stale(member, team, day, settings, now) if day else "the digest names no day"
            if why:
                return None, None, None, f"In-Reply-To our digest: {why}"
            return member, team, day, "In-Reply-To a digest"
    return None


def identify(email: InboundEmail, senders: Senders, settings: Settings, *, now: datetime):
    """(member, team, day or None, how) for a reply, or (None, None, None, why-not).

    In order: the signed reply+token address (envelope recipient, To, Cc, Postmark's
    MailboxHash), In-Reply-To/References naming a Message-ID we sent, then From, but
    only when it is authenticated (app.inbound.authentication). The first two count only
    while the member is on the team and within REPLY_WINDOW_DAYS of their day (``now``
    decides). ``senders`` comes from ``find_senders``.
    """
    if not email.from_addr:  # it is mail, stored and shown; but no reply without a sender counts
        return None, None, None, "the mail has no From address: stored, not attributed to anyone"
    first = _first_token(email, settings)
    if first is not None:
        token, addr = first
        found = verify_reply_token(settings.secret_key, token)
        if found is None:
            return None, None, None, f"bad reply token in {addr}"
        if found[0] not in senders.members:
            return None, None, None, "reply token names no member (member no longer on the team)"
        member, team = senders.members[found[0]]
        why = stale(member, team, found[1], settings, now)
        if why:
            return None, None, None, why
        return member, team, found[1], "reply token"
    for ref in _refs(email):
        if ref in senders.sent:
            member, team, day = senders.sent[ref]
            why = stale(member, team, day, settings, now)
            if why:
                return None, None, None, f"In-Reply-To our message: {why}"
            return member, team, day, "In-Reply-To"
    verdict = authenticate_sender(email, settings.authserv_ids)
    if not verdict.authenticated:
        return (
            None,
            None,
            None,
            f"no reply token or known In-Reply-To, and From is not authenticated: {verdict.why}",
        )
    members = senders.by_email.get(address_key(email.from_addr), [])
    if len(members) == 1:
        return *members[0], None, f"From authenticated by {verdict.why}"
    if members:
        return None, None, None, f"From {email.from_addr} is a member of several teams: cannot tell which"
    return None, None, None, f"From {email.from_addr} (authenticated) is no member"
