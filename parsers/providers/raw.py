"""``/inbound/raw`` and the IMAP poller: the payload is the RFC 5322 message itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from parsers.message import InboundEmail, looks_like_message, parse_mime, raw_envelope_to, raw_message_id
from parsers.providers.base import Headers, Keys, Payload, PayloadError, Provider, check_bearer


class Raw(Provider):
    """A whole message as ``message/rfc822`` bytes, with a bearer token."""

    name = "raw"
    setting = "INBOUND_RAW_TOKEN"
    content_types = ("message/rfc822",)
    open_in_development = False  # development generates a token, so unset means misconfigured
    stores_payload = False
    created_status = 202

    def verify(self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300) -> None:
        check_bearer(headers, secret)

    def keys(self, payload: Payload) -> Keys:
        if not payload.body.strip():
            raise PayloadError("not an RFC 5322 message: empty body")
        # anything else is stored: a message without From, or that does not start with a header
        # field, is mail we mark (parse_mime notes it), not mail we refuse
        return Keys(
            message_id=raw_message_id(payload.body),
            envelope_to=raw_envelope_to(payload.body),
            raw_mime=payload.body,
        )

    def parse(self, payload: Payload) -> InboundEmail:
        email = parse_mime(payload.body, provider=self.name)
        why = looks_like_message(payload.body)
        return replace(email, notes=(*email.notes, f"not a well-formed message: {why}")) if why else email


class Imap(Raw):
    """A message fetched from an IMAP mailbox (same payload as raw)."""

    name = "imap"
    webhook = False
    setting = ""
