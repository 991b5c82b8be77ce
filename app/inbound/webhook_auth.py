"""Webhook authentication per provider: verify before trusting, constant-time compares, fail closed.

Exceptions::

    AuthError          the request is not proven to come from the provider (401)
    +-- Replayed       a signed token was already used (401)
    NotConfigured      the provider has no secret configured (404 in production)

SendGrid's Event Webhook is signed with ECDSA (P-256, SHA-256) over the timestamp header
followed by the raw body; its public key (base64 DER, from SendGrid's settings) is
SENDGRID_EVENT_PUBLIC_KEY.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from datetime import datetime
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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


@lru_cache(maxsize=4)
def ecdsa_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from base64 DER (as SendGrid shows it) or PEM; ValueError when it is not one."""
    value = value.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
    except (binascii.Error, ValueError, TypeError) as e:
        raise ValueError(f"not a public key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def check_sendgrid(
    body: bytes, signature: str, timestamp: str, *, public_key: str, max_age_s: int, now: datetime
) -> None:
    """SendGrid's signed Event Webhook: ECDSA over timestamp + body, and a fresh timestamp; raises AuthError.

    A replay inside the window is harmless: every event is recorded once (by its event id).
    """
    if not (signature and timestamp):
        raise AuthError(
            "missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp (turn on the Signed Event Webhook)"
        )
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise AuthError("malformed X-Twilio-Email-Event-Webhook-Timestamp")
    try:
        sig = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("malformed X-Twilio-Email-Event-Webhook-Signature") from None
    try:
        ecdsa_public_key(public_key).verify(sig, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AuthError("SendGrid event signature does not verify") from None
    if abs(now.timestamp() - int(timestamp)) > max_age_s:
        raise AuthError(f"stale SendGrid event timestamp (more than {max_age_s} s from now)")
