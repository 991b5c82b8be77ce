"""Inbound provider adapters behind one base class, and the hand-written registry."""

from parsers.providers.base import Keys, Payload, PayloadError, Provider
from parsers.providers.mailgun import Mailgun
from parsers.providers.postmark import Postmark
from parsers.providers.raw import Imap, Raw
from parsers.providers.sendgrid import SendGrid
from parsers.providers.ses import SES

PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (SendGrid(), Mailgun(), Postmark(), SES(), Raw(), Imap())
}

__all__ = ["PROVIDERS", "Keys", "Payload", "PayloadError", "Provider"]
