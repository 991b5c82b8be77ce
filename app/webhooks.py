"""Webhook authentication per provider: verify before trusting, constant-time compares, fail closed.

Exceptions::

    AuthError          the request is not proven to come from the provider (401)
    +-- Replayed       a signed token was already used (401)
    NotConfigured      the provider has no secret configured (404 in production)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from datetime import datetime

from app.settings import Settings

log = logging.getLogger("donebox.webhooks")

WEBHOOKS = ("sendgrid", "mailgun", "postmark", "ses")  # providers that post to /inbound/{name}


class AuthError(Exception):
    """Raised when a webhook request is not proven to come from the provider; the text says why."""


class Replayed(AuthError):
    """Raised when a signed token (Mailgun's) was seen before."""


def secret_of(name: str, settings: Settings) -> str | tuple:
    """The setting that authenticates ``name``'s webhook; empty when not configured."""
    return {
        "sendgrid": settings.sendgrid_inbound_auth,
        "postmark": settings.postmark_inbound_auth,
        "mailgun": settings.mailgun_signing_key,
        "ses": settings.ses_topic_arns,
        "raw": settings.inbound_raw_token,
    }.get(name, "")


SETTING_NAMES = {
    "sendgrid": "SENDGRID_INBOUND_AUTH",
    "postmark": "POSTMARK_INBOUND_AUTH",
    "mailgun": "MAILGUN_SIGNING_KEY",
    "ses": "SES_TOPIC_ARNS",
    "raw": "INBOUND_RAW_TOKEN",
}


def warn_unconfigured(name: str) -> None:
    """Development only: say loudly that a provider's webhook is open to anyone."""
    log.warning(
        "!!! %s inbound webhook has no %s: accepting UNAUTHENTICATED requests (development only; "
        "production refuses them with 404) !!!",
        name,
        SETTING_NAMES[name],
    )


def check_basic(authorization: str, expected: str) -> None:
    """HTTP Basic credentials must equal ``expected`` (``user:password``); raises AuthError."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise AuthError("missing HTTP Basic credentials (put user:password in the webhook URL)")
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("malformed HTTP Basic credentials") from None
    if not hmac.compare_digest(given, expected.encode()):
        raise AuthError("wrong HTTP Basic credentials")


def check_bearer(authorization: str, expected: str) -> None:
    """``Authorization: Bearer <expected>``; raises AuthError."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected.encode()):
        raise AuthError("missing or wrong bearer token")


def check_mailgun(
    timestamp: str, token: str, signature: str, *, key: str, max_age_s: int, now: datetime
) -> None:
    """Mailgun's HMAC-SHA256(key, timestamp + token) and a fresh timestamp; raises AuthError.

    Replays (a token seen before) are caught when the token is stored, in the same
    transaction as the message (app.inbound.accept).
    """
    if not (timestamp and token and signature):
        raise AuthError("missing Mailgun signature fields (timestamp, token, signature)")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise AuthError("malformed Mailgun timestamp")
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise AuthError("wrong Mailgun signature")
    if abs(now.timestamp() - int(timestamp)) > max_age_s:
        raise AuthError(f"stale Mailgun timestamp (more than {max_age_s} s from now)")
