"""Providers, one class per file behind one base class, and the hand-written registry.

Adding a provider is a file here (a ``Provider`` subclass), one entry below and one setting
for its secret (app/settings.py); the endpoints name no provider.
"""

from parsers.providers.base import (
    AuthError,
    Forbidden,
    Keys,
    NoWebhook,
    Payload,
    PayloadError,
    Provider,
    S3Object,
)
from parsers.providers.events import DeliveryEvent, EventError
from parsers.providers.mailgun import Mailgun
from parsers.providers.postmark import Postmark
from parsers.providers.raw import Imap, Raw
from parsers.providers.sendgrid import SendGrid
from parsers.providers.ses import SES

PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (SendGrid(), Mailgun(), Postmark(), SES(), Raw(), Imap())
}

__all__ = [
    "PROVIDERS",
    "AuthError",
    "DeliveryEvent",
    "EventError",
    "Forbidden",
    "Keys",
    "NoWebhook",
    "Payload",
    "PayloadError",
    "Provider",
    "S3Object",
]
