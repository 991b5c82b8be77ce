"""Postmark inbound webhook: one JSON document, HTTP Basic; ``RawEmail`` (when enabled) is preferred.

Postmark's document has no verdict fields: its SPF result is a Received-SPF header among the
mail's own headers, where a sender can write one too, so it is no provider verdict here
(docs/inbound.md, "Who wrote it").
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from datetime import datetime

from parsers.message import Attachment, InboundEmail, html_to_text, parse_date, parse_mime
from parsers.message import raw_message_id as mime_message_id
from parsers.providers.base import (
    BASIC_CHALLENGE,
    Headers,
    Keys,
    Payload,
    PayloadError,
    Provider,
    address_list,
    check_basic,
    decode_words,
    first,
    sender,
    sha256,
    threading_fields,
)


def _s(value) -> str:
    return value if isinstance(value, str) else ""


def _full(value) -> tuple[str, ...]:
    """The addresses of a ``ToFull``/``CcFull`` list, as received."""
    if not isinstance(value, list):
        return ()
    return tuple(
        _s(v.get("Email")).strip() for v in value if isinstance(v, dict) and "@" in _s(v.get("Email"))
    )


# The inbound document's fields, all optional: a JSON object with none of them is no Postmark post.
FIELDS = frozenset(
    "From FromName FromFull To ToFull Cc CcFull Bcc BccFull OriginalRecipient ReplyTo Subject Date"
    " MessageID MailboxHash TextBody HtmlBody StrippedTextReply Tag Headers Attachments RawEmail".split()
)


class Postmark(Provider):
    """Postmark's inbound JSON; ``MessageID`` is Postmark's own id and the dedupe key."""

    name = "postmark"
    setting = "POSTMARK_INBOUND_AUTH"
    challenge = BASIC_CHALLENGE

    def verify(self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300) -> None:
        check_basic(headers, secret)

    def _doc(self, payload: Payload) -> dict:
        doc = payload.json
        if FIELDS.isdisjoint(doc):
            raise PayloadError(
                "not a Postmark inbound document (none of its fields: From, To, Subject, MessageID, ...)"
            )
        return doc

    def _headers(self, doc: dict) -> tuple[tuple[str, str], ...]:
        items = doc.get("Headers") if isinstance(doc.get("Headers"), list) else []
        return tuple(
            (_s(h.get("Name")), decode_words(_s(h.get("Value"))))
            for h in items
            if isinstance(h, dict) and h.get("Name")
        )

    def _envelope_to(self, doc: dict) -> tuple[str, ...]:
        return address_list(_s(doc.get("OriginalRecipient")))

    def keys(self, payload: Payload) -> Keys:
        doc = self._doc(payload)
        raw = _s(doc.get("RawEmail")).encode("utf-8", "surrogatepass") or None
        mid = mime_message_id(raw) if raw else threading_fields(self._headers(doc))["message_id"]
        headers = self._headers(doc)
        # no header list either: the document itself names the mail (a retry posts the same JSON)
        hh = "" if raw else sha256(repr(headers)) if headers else sha256(payload.body)
        return Keys(_s(doc.get("MessageID"))[:200], mid, self._envelope_to(doc), raw, hh)

    def parse(self, payload: Payload) -> InboundEmail:
        doc = self._doc(payload)
        headers = self._headers(doc)
        common = {
            "provider": self.name,
            "provider_id": _s(doc.get("MessageID"))[:200],
            "envelope_to": self._envelope_to(doc),
            "mailbox_hash": _s(doc.get("MailboxHash")),
        }
        if _s(doc.get("RawEmail")):
            email = parse_mime(doc["RawEmail"].encode("utf-8", "surrogatepass"), provider=self.name)
            return replace(email, **common)
        notes: list[str] = []
        sender_full = doc.get("FromFull") if isinstance(doc.get("FromFull"), dict) else {}
        text = _s(doc.get("TextBody")) or None
        html = _s(doc.get("HtmlBody")) or None
        derived = bool(text is None and html is not None)
        if derived:
            text = html_to_text(html, notes)
            notes.append("HTML-only mail: text derived from the HTML")
        attachments = []
        items = doc.get("Attachments") if isinstance(doc.get("Attachments"), list) else []
        for a in items:
            if not isinstance(a, dict):
                continue
            try:
                content = base64.b64decode(_s(a.get("Content")), validate=False)
            except (binascii.Error, ValueError):
                content = b""
                notes.append(f"attachment {_s(a.get('Name'))!r} is not valid base64")
            attachments.append(
                Attachment(
                    _s(a.get("Name")),
                    _s(a.get("ContentType")) or "application/octet-stream",
                    len(content),
                    content,
                )
            )
        # FromFull in today's documents; older ones have only From, as '"Name" <addr>' or bare
        parsed_name, parsed_addr = sender(_s(doc.get("From")), first(headers, "From"))
        from_addr = _s(sender_full.get("Email")).strip() if "@" in _s(sender_full.get("Email")) else ""
        from_name = _s(sender_full.get("Name")) if from_addr else ""

        def field(name: str, header: str) -> str:  # the document's field, else the header's copy
            return _s(doc.get(name)) or first(headers, header)

        return InboundEmail(
            from_addr=from_addr or parsed_addr,
            from_name=from_name or _s(doc.get("FromName")) or parsed_name,
            to=_full(doc.get("ToFull")) or address_list(field("To", "To")),
            cc=_full(doc.get("CcFull")) or address_list(field("Cc", "Cc")),
            reply_to=address_list(field("ReplyTo", "Reply-To")),
            subject=field("Subject", "Subject"),
            date=parse_date(field("Date", "Date"), notes),
            text=text,
            text_from_html=derived,
            html=html,
            attachments=tuple(attachments),
            headers=headers,
            notes=tuple(notes),
            **threading_fields(headers),
            **common,
        )
