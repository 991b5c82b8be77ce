"""People who sign in: magic links (signed, single-use, 15 minutes), roles per team, operators.

A User is linked to the Members whose email matches theirs, so one person can be
in several teams with a role in each. The sign-in link carries a random nonce
signed with SECRET_KEY; only the nonce's sha256 is stored, and ``consume`` marks
it used with a compare-and-set, so a link works once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlmodel import Session

from app.models import ROLES, Member, SigninToken, Team, User
from app.relay import outbox, quotas
from app.settings import Settings
from parsers.message import mailbox_key

SIGNIN_TTL = timedelta(minutes=15)
SIGNIN_MAX_OPEN = 5  # unused links per address within SIGNIN_TTL; more requests send nothing
RANK = {role: len(ROLES) - i for i, role in enumerate(ROLES)}  # admin > member > observer


def normalize_email(value: str) -> str:
    """The address's identity key (parsers.message.address_key: stripped, case folded); '' when it
    does not look like an address. Members and users are stored by it."""
    return mailbox_key(value)


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt="donebox-signin")


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def may_sign_in(s: Session, email: str) -> bool:
    """Known people (a user or an active member) may sign in; on an empty instance (no user, no team),
    anyone: the first to sign in becomes the operator."""
    if s.execute(select(User.id).where(User.email == email)).first():
        return True
    if s.execute(select(Member.id).where(func.lower(Member.email) == email, Member.active)).first():
        return True
    return is_empty(s)


def is_empty(s: Session) -> bool:
    """No user and no team yet: a fresh instance waiting for its operator."""
    return (
        s.execute(select(User.id).limit(1)).first() is None
        and s.execute(select(Team.id).limit(1)).first() is None
    )


def request_signin(s: Session, email: str, *, now: datetime, settings: Settings) -> int | None:
    """Store a sign-in nonce and queue its email; the outbox id, or None (unknown address,
    SIGNIN_MAX_OPEN links still open, or MAILS_PER_HOUR_PER_RECIPIENT reached: app.relay.quotas)."""
    if not may_sign_in(s, email):
        return None
    open_links = s.execute(
        select(func.count()).where(
            SigninToken.email == email,
            SigninToken.used_at.is_(None),
            SigninToken.created_at > now - SIGNIN_TTL,
        )
    ).scalar()
    if open_links >= SIGNIN_MAX_OPEN:  # someone is flooding this address: the links already sent still work
        return None
    # the same answer as for an unknown address: a refusal in words would tell who is a user
    if quotas.refusal(s, "signin", email, now=now, settings=settings):
        return None
    nonce = secrets.token_urlsafe(24)
    token = SigninToken(email=email, nonce_sha256=_sha(nonce), expires_at=now + SIGNIN_TTL, created_at=now)
    s.add(token)
    s.flush()
    link = f"{settings.base_url}/signin/{_serializer(settings).dumps(nonce)}"
    mid, _ = outbox.create(
        s,
        now=now,
        idempotency_key=f"signin:{token.id}",
        kind="signin",
        to_addr=email,
        subject="Your donebox sign-in link",
        template="signin",
        context={"link": link, "minutes": int(SIGNIN_TTL.total_seconds() // 60)},
        message_id=outbox.new_message_id(settings.mail_domain),
    )
    return mid


def consume(s: Session, signed: str, *, now: datetime, settings: Settings) -> User | None:
    """The User a valid, unused, unexpired link signs in (created on first sign-in), else None."""
    try:
        nonce = _serializer(settings).loads(signed, max_age=int(SIGNIN_TTL.total_seconds()))
    except BadSignature:
        return None
    digest = _sha(str(nonce))
    res = s.execute(
        update(SigninToken)
        .where(
            SigninToken.nonce_sha256 == digest,
            SigninToken.used_at.is_(None),
            SigninToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        return None
    email = s.execute(select(SigninToken.email).where(SigninToken.nonce_sha256 == digest)).scalar_one()
    user = s.execute(select(User).where(User.email == email)).scalar()
    if user is None:
        user = User(email=email, is_operator=is_empty(s), created_at=now)
    user.last_signin_at = now
    s.add(user)
    s.flush()
    return user


def make_operator(s: Session, email: str, *, now: datetime) -> User:
    """Create the user if needed and make them an instance operator."""
    user = s.execute(select(User).where(User.email == email)).scalar()
    if user is None:
        user = User(email=email, created_at=now)
    user.is_operator = True
    s.add(user)
    s.flush()
    return user


def memberships(s: Session, email: str) -> list[tuple[Member, Team]]:
    """The user's active memberships with their teams, by team name."""
    stmt = (
        select(Member, Team)
        .join(Team, Member.team_id == Team.id)
        .where(func.lower(Member.email) == email, Member.active)
        .order_by(Team.name, Team.id)
    )
    return [(m, t) for m, t in s.execute(stmt).all()]


def membership(s: Session, email: str, team_id: int) -> Member | None:
    """The user's active Member row in ``team_id``, or None."""
    stmt = select(Member).where(func.lower(Member.email) == email, Member.team_id == team_id, Member.active)
    return s.execute(stmt).scalars().first()
