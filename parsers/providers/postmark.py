"""Postmark inbound webhook: one JSON document, HTTP Basic; ``RawEmail`` (when enabled) is preferred.
Postmark's webhooks (delivery, bounce, spam complaint, open, click, subscription change): one JSON
document per event, HTTP Basic with POSTMARK_EVENT_AUTH.

Postmark's events do not carry the Message-ID header; they carry Postmark's ``MessageID`` and
the ``Metadata`` the message was sent with: the SMTP transport adds ``X-PM-Metadata-donebox_id``
when it hands a message to Postmark, and it comes back as ``Metadata.donebox_id``.

Postmark's document has no verdict fields: its SPF result is a Received-SPF header among the
mail's own headers, where a sender can write one too, so it is no provider verdict here
(docs/inbound.md, "Who wrote it").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime

from parsers.inline import cid_references, inline_cid
from parsers.message import Attachment, InboundEmail, first_values, html_to_text, parse_date, parse_mime
from parsers.message import raw_message_id as mime_message_id
from parsers.providers.base import (
    BASIC_CHALLENGE,
    Headers,
    Keys,
    Payload,
    PayloadError,
    Provider,
    address_list,
    attachment_fields,
    check_basic,
    content_fingerprint,
    decode_words,
    sender,
    sha256,
    threading_fields,
)
from parsers.providers.events import DeliveryEvent, EventError, bounded, clean, our_id

# a Bounce record's ``Type`` -> (ours, cause); None: nothing we act on. Unknown types count as
# soft bounces: no proof the address is bad.
BOUNCE_TYPES: dict[str, tuple[str, str] | None] = {
    "HardBounce": ("bounce", ""),
    "BadEmailAddress": ("bounce", ""),
    "SpamComplaint": ("complaint", ""),
    "Unsubscribe": ("unsubscribe", ""),
    "Transient": ("deferred", ""),  # delayed; Postmark keeps trying
    "SoftBounce": ("soft_bounce", ""),
    "DnsError": ("soft_bounce", ""),
    "Blocked": ("soft_bounce", ""),
    "SpamNotification": ("soft_bounce", ""),  # a spam filter refused it: the address is fine
    "VirusNotification": ("soft_bounce", ""),
    "DMARCPolicy": ("soft_bounce", ""),
    "ManuallyDeactivated": ("dropped", "other"),
    "TemplateRenderingFailed": ("dropped", "other"),
    "AutoResponder": None,
    "AddressChange": None,
    "Subscribe": None,
    "OpenRelayTest": None,
    "ChallengeVerification": None,
    "InboundError": None,
    "Unconfirmed": None,
}


def _s(value) -> str:
    return value if isinstance(value, str) else ""


def _full(value) -> tuple[str, ...]:
    """The addresses of a ``ToFull``/``CcFull`` list, as received."""
    if not isinstance(value, list):
        return ()
    return tuple(
        _s(v.get("Email")).strip() for v in value if isinstance(v, dict) and "@" in _s(v.get("Email"))
    )


def _event_time(value) -> datetime | None:
    text = bounded(value, 40).replace("Z", "+00:00")
    if "." in text:  # .NET writes seven fractional digits; Python takes at most six
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def _kind(doc: dict) -> tuple[str, str] | None:
    """(ours, cause) of one webhook record; None for what we do not act on."""
    record = bounded(doc.get("RecordType"), 40)
    if record == "Delivery":
        return "delivered", ""
    if record == "SpamComplaint":
        return "complaint", ""
    if record in ("Open", "Click"):
        return record.lower(), ""
    if record == "Bounce":
        return BOUNCE_TYPES.get(bounded(doc.get("Type"), 60), ("soft_bounce", ""))
    if record == "SubscriptionChange":
        # a recipient's (or the account's) manual suppression; suppressions for bounces and
        # complaints arrive as their own records, and a reactivation is not ours to follow
        manual = bounded(doc.get("SuppressionReason"), 40) == "ManualSuppression"
        return ("unsubscribe", "") if doc.get("SuppressSending") is True and manual else None
    if not record:
        raise EventError("not a Postmark webhook record (no RecordType)")
    return None


def _event_id(doc: dict, record: str, recipient: str) -> str:
    given = bounded(doc.get("ID"), 40)
    if record in ("Bounce", "SpamComplaint") and given:
        return f"postmark:{record.lower()}:{given}"
    if record == "Delivery" and bounded(doc.get("MessageID"), 200):
        return f"postmark:delivery:{bounded(doc.get('MessageID'), 200)}:{recipient}"
    # opens, clicks, subscription changes have no id: the record names itself, so a retry dedupes
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    return f"postmark:{record.lower()}:sha256:{digest[:40]}"


# The inbound document's fields, all optional: a JSON object with none of them is no Postmark post.
FIELDS = frozenset(
    "From FromName FromFull To ToFull Cc CcFull Bcc BccFull OriginalRecipient ReplyTo Subject Date"
    " MessageID MailboxHash TextBody HtmlBody StrippedTextReply Tag Headers Attachments RawEmail".split()
)


class Postmark(Provider):
    """Postmark's inbound JSON; ``MessageID`` is Postmark's own id and the dedupe key."""

    name = "postmark"
    content_types = ("application/json",)
    setting = "POSTMARK_INBOUND_AUTH"
    event_setting = "POSTMARK_EVENT_AUTH"
    challenge = BASIC_CHALLENGE

    def verify(self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300) -> None:
        check_basic(headers, secret)

    def verify_events(
        self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300
    ) -> None:
        """HTTP Basic (user:password in the webhook URL). A replay is harmless: every event is
        recorded once (by its event id)."""
        check_basic(headers, secret)

    def parse_events(self, payload: Payload) -> list[DeliveryEvent]:
        """The one event of a webhook request; EventError when it is not a Postmark record."""
        try:
            doc = payload.json
        except PayloadError as e:
            raise EventError(str(e)) from None
        found = _kind(doc)
        if found is None:
            return []
        kind, cause = found
        record = bounded(doc.get("RecordType"), 40)
        recipient = clean(bounded(doc.get("Recipient") or doc.get("Email"), 320).strip().lower())
        when = next(
            (doc[k] for k in ("DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt") if k in doc), None
        )
        detail = {
            k: bounded(v, 2000)
            for k, v in (
                ("type", doc.get("Type")),
                ("reason", doc.get("Description") or doc.get("SuppressionReason")),
                ("response", doc.get("Details")),
                ("url", doc.get("OriginalLink")),
                ("user_agent", doc.get("UserAgent")),
                ("tag", doc.get("Tag")),
            )
            if bounded(v, 2000)
        }
        raw = {k: v for k, v in doc.items() if k != "Content"}  # a bounce's full message: not kept
        event = DeliveryEvent(
            source="postmark",
            kind=kind,
            event_id=clean(_event_id(doc, record, recipient)),
            recipient=recipient,
            outbound_id=our_id(doc.get("Metadata")),
            provider_id=clean(bounded(doc.get("MessageID"), 255)),
            at=_event_time(when),
            cause=cause,
            detail=detail,
            raw=raw,
        )
        return [event]

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
        headers = self._headers(doc)
        mid = mime_message_id(raw) if raw else threading_fields(first_values(headers))["message_id"]
        # no header list either: the document itself names the mail (a retry posts the same JSON)
        hh = "" if raw else sha256(repr(headers)) if headers else sha256(payload.body)
        fp = "" if raw else self._fingerprint(doc)  # with RawEmail: the raw MIME's (Keys)
        return Keys(_s(doc.get("MessageID"))[:200], mid, self._envelope_to(doc), raw, hh, fp)

    def _fingerprint(self, doc: dict) -> str:
        """content_fingerprint of the document's mail fields (attachments decoded), not of its JSON."""
        sender_full = doc.get("FromFull") if isinstance(doc.get("FromFull"), dict) else {}
        items = doc.get("Attachments") if isinstance(doc.get("Attachments"), list) else []
        files = []
        for a in items:
            if isinstance(a, dict):
                try:
                    content = base64.b64decode(_s(a.get("Content")), validate=False)
                except (binascii.Error, ValueError):
                    content = _s(a.get("Content")).encode()
                files.append((_s(a.get("Name")), content))
        return content_fingerprint(
            [
                ("from", _s(sender_full.get("Email")) or _s(doc.get("From"))),
                ("to", _s(doc.get("To"))),
                ("cc", _s(doc.get("Cc"))),
                ("subject", _s(doc.get("Subject"))),
                ("text", _s(doc.get("TextBody"))),
                ("html", _s(doc.get("HtmlBody"))),
                *attachment_fields(files),
            ]
        )

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
        shows = cid_references(html)
        items = doc.get("Attachments") if isinstance(doc.get("Attachments"), list) else []
        for a in items:
            if not isinstance(a, dict):
                continue
            try:
                content = base64.b64decode(_s(a.get("Content")), validate=False)
            except (binascii.Error, ValueError):
                content = b""
                notes.append(f"attachment {_s(a.get('Name'))!r} is not valid base64")
            cid = inline_cid(_s(a.get("ContentID")), shows)
            attachments.append(
                Attachment(
                    _s(a.get("Name")),
                    _s(a.get("ContentType")) or "application/octet-stream",
                    len(content),
                    content,
                    inline=bool(cid),
                    content_id=cid,
                )
            )
        # FromFull in today's documents; older ones have only From, as '"Name" <addr>' or bare
        values = first_values(headers)
        parsed_name, parsed_addr = sender(_s(doc.get("From")), values.get("from", ""))
        from_addr = _s(sender_full.get("Email")).strip() if "@" in _s(sender_full.get("Email")) else ""
        from_name = _s(sender_full.get("Name")) if from_addr else ""

        def field(name: str, header: str) -> str:  # the document's field, else the header's copy
            return _s(doc.get(name)) or values.get(header.lower(), "")

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
            **threading_fields(values),
            **common,
        )
