"""API tokens: how applications authenticate to the relay (SMTP AUTH, the JSON API).

Created once and shown once, stored as sha256, checked in constant time. A token carries
scopes, what it may do: ``send`` (POST /api/messages, cancelling them, SMTP submission),
``read`` (every GET) and ``manage`` (changing a team's settings, entries, suppressions, tokens).
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
SCOPES = ("send", "read", "manage")  # in the order pages and documents list them


def scopes_of(text: str) -> tuple[str, ...]:
    """The known scopes named in ``text`` (space- or comma-separated), in SCOPES order."""
    named = set(text.replace(",", " ").split())
    return tuple(s for s in SCOPES if s in named)


def unknown_scopes(text: str) -> list[str]:
    """The names in ``text`` that are not scopes (for the error that lists them)."""
    return [s for s in text.replace(",", " ").split() if s not in SCOPES]


def has_scope(token: ApiToken, scope: str) -> bool:
    """Whether ``token`` may do what ``scope`` covers."""
    return scope in scopes_of(token.scopes)


def missing_scope(scope: str) -> str:
    """The reason given to a token without ``scope`` (403 on the API, 535 at SMTP AUTH)."""
    return f"this API token lacks the {scope!r} scope (its scopes are fixed when it is created)"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    s: Session, name: str, *, now: datetime, team_id: int | None = None, scopes: tuple[str, ...] = SCOPES
) -> str:
    """Store a new token with ``scopes`` (known ones, at least one) and return it; this is the only
    time it is seen in clear."""
    kept = scopes_of(" ".join(scopes))
    if not kept or len(kept) != len(set(scopes)):
        raise ValueError(f"scopes are one or more of {', '.join(SCOPES)}, not {' '.join(scopes)!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    s.add(
        ApiToken(
            name=name, token_sha256=_digest(token), team_id=team_id, scopes=" ".join(kept), created_at=now
        )
    )
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
