"""API tokens: how applications authenticate to the relay (SMTP AUTH, the JSON API).

Created once and shown once, stored as sha256, checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from app.models import ApiToken

PREFIX = "dbx_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(s: Session, name: str, *, now: datetime, team_id: int | None = None) -> str:
    """Store a new token and return it; this is the only time it is seen in clear."""
    token = PREFIX + secrets.token_urlsafe(32)
    s.add(ApiToken(name=name, token_sha256=_digest(token), team_id=team_id, created_at=now))
    s.flush()
    return token


def check_token(s: Session, token: str) -> ApiToken | None:
    """The live ApiToken for ``token``, or None."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    digest = _digest(token)
    row = s.execute(select(ApiToken).where(ApiToken.token_sha256 == digest)).scalar()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_sha256, digest):
        return None
    return row


def bearer(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ''."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
