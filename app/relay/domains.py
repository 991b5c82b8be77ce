"""Sending domains: the domains applications may send From, and whether a From may be used.

``check_from`` is the one rule every way in asks (the full send API, SMTP submission): the
domain of MAIL_FROM is the instance's own and always allowed; any other domain must be a
SendingDomain of the team (or of every team, ``team_id`` None) whose DNS records were verified.
In development an unverified domain may send, with a warning in the log.
"""

from __future__ import annotations

import logging

from sqlmodel import Session, or_, select

from app.errors import RenderError
from app.models import SendingDomain
from app.relay.render import ascii_address
from app.settings import Settings

log = logging.getLogger("donebox.domains")


def domain_of(address: str) -> str:
    """The IDNA, lower-case domain of ``address``; RenderError when it is not an address."""
    return ascii_address(address).rpartition("@")[2]


def find(s: Session, domain: str, team_id: int | None) -> SendingDomain | None:
    """The team's (or every team's) SendingDomain row for ``domain``."""
    cond = SendingDomain.team_id.is_(None)
    if team_id is not None:
        cond = or_(cond, SendingDomain.team_id == team_id)
    return s.exec(select(SendingDomain).where(SendingDomain.domain == domain, cond)).first()


def check_from(s: Session, team_id: int | None, address: str, settings: Settings) -> str | None:
    """Why ``address`` may not be the From of a team's message, or None when it may."""
    try:
        domain = domain_of(address)
    except RenderError as e:
        return str(e)
    if domain == domain_of(settings.mail_from):
        return None
    row = find(s, domain, team_id)
    if row is None:
        return f"{domain} is not a sending domain of this team (add it: donebox domain add {domain})"
    if row.verified_at is None:
        if settings.production:
            return f"{domain} is not verified yet (publish its records, then: donebox domain verify {domain})"
        log.warning("sending from unverified domain %s (allowed in development only)", domain)
    return None
