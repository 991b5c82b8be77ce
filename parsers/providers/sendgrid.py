"""SendGrid: Inbound Parse (a multipart form, raw mode ``email`` or parsed mode with charsets),
authenticated by HTTP Basic; the Event Webhook (a JSON array), signed with ECDSA.

The Event Webhook is signed with ECDSA (P-256, SHA-256) over the timestamp header followed by
the raw body; its public key (base64 DER, from SendGrid's settings) is SENDGRID_EVENT_PUBLIC_KEY.
Our outbox id comes back as the top-level custom arg ``donebox_id``; ``sg_message_id`` is the
X-Message-Id we stored plus a ``.filter...``/``.recvd...`` suffix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import replace
from datetime import datetime
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from parsers.inline import cid_references, content_id, inline_cid
from parsers.message import (
    Attachment,
    InboundEmail,
    addresses,
    decode_text,
    first_values,
    html_to_text,
    parse_date,
    parse_mime,
)
from parsers.message import raw_message_id as mime_message_id
from parsers.providers.base import (
    BASIC_CHALLENGE,
    AuthError,
    Headers,
    Keys,
    Payload,
    PayloadError,
    Provider,
    address_list,
    attachment_fields,
    check_basic,
    check_fresh,
    content_fingerprint,
    content_id_map,
    form_digest,
    header_block,
    json_field,
    sender,
    sha256,
    threading_fields,
    unix_time,
    verdict,
)
from parsers.providers.events import DeliveryEvent, EventError, bounded, epoch_time, our_id

SIGNATURE = "x-twilio-email-event-webhook-signature"  # the Event Webhook's headers
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
# SendGrid event -> ours; a bounce's ``type`` refines it (below). Unknown events are skipped.
EVENTS = {
    "processed": "processed",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounce",
    "dropped": "dropped",
    "spamreport": "complaint",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "open": "open",
    "click": "click",
}
# a bounce event's ``type``: "bounce" is a hard bounce; "blocked" is SendGrid's soft bounce
BOUNCE_TYPES = {"bounce": "bounce", "blocked": "soft_bounce", "expired": "soft_bounce"}
# a dropped event's ``reason`` (lower-cased) -> cause; SendGrid drops mail to addresses it suppresses
DROP_REASONS = {
    "bounced address": "bounce",
    "invalid": "invalid",
    "invalid address": "invalid",
    "spam reporting address": "complaint",
    "unsubscribed address": "unsubscribe",
}
# the parsed mode's fields, any of which makes a post a parsed-mode mail (all are optional)
PARSED_FIELDS = ("headers", "from", "to", "cc", "subject", "text", "html", "envelope")
MAX_EVENTS = 50_000  # a batch is at most ~768 KB (a few thousand events); more is not SendGrid


def provider_id(sg_message_id: str) -> str:
    """The X-Message-Id part of an ``sg_message_id`` (``<id>.filter...`` or ``<id>.recvd-...``)."""
    return sg_message_id.split(".", 1)[0]


def _event_id(item: dict) -> str:
    given = bounded(item.get("sg_event_id"), 200)
    if given:
        return "sendgrid:" + given
    # no id (old accounts, dropped events): the event's own content names it, so a retried
    # batch still dedupes
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
    return "sendgrid:sha256:" + digest[:40]


_DKIM_RESULT = re.compile(r":\s*([a-z]+)", re.IGNORECASE)


_DKIM_PAIR = re.compile(r"@([^\s:{},@]+)\s*:\s*([a-z]+)", re.IGNORECASE)


def dkim_verdict(value: str) -> str:
    """``{@example.com : pass, @other.org : fail}`` -> pass when any signature passed."""
    results = [r.lower() for r in _DKIM_RESULT.findall(value or "")]
    return "pass" if "pass" in results else (results[0] if results else "")


def dkim_pass_domains(value: str) -> tuple[str, ...]:
    """``{@example.com : pass, @other.org : fail}`` -> ("example.com",): the domains that passed."""
    found = (d.lower().rstrip(".") for d, r in _DKIM_PAIR.findall(value or "") if r.lower() == "pass")
    return tuple(dict.fromkeys(found))


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


class SendGrid(Provider):
    """SendGrid's Inbound Parse webhook (both of its modes) and its Signed Event Webhook."""

    name = "sendgrid"
    content_types = ("multipart/form-data", "application/x-www-form-urlencoded")
    setting = "SENDGRID_INBOUND_AUTH"
    event_setting = "SENDGRID_EVENT_PUBLIC_KEY"
    event_max_age_setting = "SENDGRID_EVENT_MAX_AGE_S"
    challenge = BASIC_CHALLENGE

    def verify(self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300) -> None:
        check_basic(headers, secret)

    def verify_events(
        self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300
    ) -> None:
        """ECDSA over timestamp + body, and a fresh timestamp. A replay inside the window is
        harmless: every event is recorded once (by its event id)."""
        signature, timestamp = headers.get(SIGNATURE, ""), headers.get(TIMESTAMP, "")
        if not (signature and timestamp):
            raise AuthError(
                "missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp "
                "(turn on the Signed Event Webhook)"
            )
        ts = unix_time(timestamp, "X-Twilio-Email-Event-Webhook-Timestamp")
        try:
            sig = base64.b64decode(signature.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuthError("malformed X-Twilio-Email-Event-Webhook-Signature") from None
        try:
            ecdsa_public_key(secret).verify(sig, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AuthError("SendGrid event signature does not verify") from None
        check_fresh(ts, now=now, max_age_s=max_age_s, what="SendGrid event timestamp")

    def _envelope_to(self, payload: Payload) -> tuple[str, ...]:
        envelope = json_field(payload.form.get("envelope"), "envelope", {})
        to = envelope.get("to") or []
        return tuple(a for t in to if isinstance(t, str) for _, a in addresses(t))

    def _verdicts(self, payload: Payload) -> dict:
        """SendGrid's own SPF and DKIM verdicts (both modes send them) and what they were about."""
        form = payload.form
        envelope = json_field(form.get("envelope"), "envelope", {})
        sender = envelope.get("from") if isinstance(envelope.get("from"), str) else ""
        return {
            "spf": verdict(form.text("SPF")),
            "dkim": dkim_verdict(form.text("dkim")),
            "envelope_from": sender.strip().lower()[:320],
            "dkim_domains": dkim_pass_domains(form.text("dkim")),
        }

    def keys(self, payload: Payload) -> Keys:
        form = payload.form
        raw = form.get("email")
        if raw is not None:
            return Keys(message_id=mime_message_id(raw), envelope_to=self._envelope_to(payload), raw_mime=raw)
        if not any(name in form for name in PARSED_FIELDS):
            raise PayloadError(
                "neither an 'email' field (raw mode) nor any of 'headers', 'from', 'to', 'subject',"
                " 'text', 'html', 'envelope' (parsed mode)"
            )
        headers = header_block(form.text("headers"))
        return Keys(
            message_id=threading_fields(first_values(headers))["message_id"],
            envelope_to=self._envelope_to(payload),
            # no header block: the whole form names the mail (a retry posts the same fields)
            header_hash=sha256(form.get("headers")) if form.get("headers") else form_digest(form),
            # the mail's fields as SendGrid decoded them, not the form (a retry has a new boundary)
            fingerprint=content_fingerprint(
                [
                    *((name, form.get(name)) for name in ("from", "to", "cc", "subject", "text", "html")),
                    *attachment_fields((p.filename or p.name, p.content) for p in form.files()),
                ]
            ),
        )

    def parse(self, payload: Payload) -> InboundEmail:
        form = payload.form
        verdicts = self._verdicts(payload)
        envelope_to = self._envelope_to(payload)
        raw = form.get("email")
        if raw is not None:
            email = parse_mime(raw, provider=self.name)
            return replace(email, envelope_to=envelope_to or email.envelope_to, **verdicts)
        notes: list[str] = []
        charsets = json_field(form.get("charsets"), "charsets", {})

        def field(name: str) -> str:
            value = form.get(name)
            if value is None:
                return ""
            charset = charsets.get(name) if isinstance(charsets.get(name), str) else "utf-8"
            return decode_text(value, charset, notes, name)

        headers = header_block(field("headers"))
        values = first_values(headers)
        # a form field missing or holding no address: the header block's copy (SendGrid sends
        # no 'cc' field for some accounts, though the Cc is in 'headers')
        from_name, from_addr = sender(field("from"), values.get("from", ""))
        text = field("text") if "text" in form else None
        html = field("html") if "html" in form else None
        derived = bool(text is None and html is not None)
        if derived:
            text = html_to_text(html, notes)
            notes.append("HTML-only mail: text derived from the HTML")
        info = json_field(form.get("attachment-info"), "attachment-info", {}, notes)
        cids = content_id_map(form.get("content-ids"), "content-ids", notes)
        shows = cid_references(html)
        attachments = []
        for part in form.files():
            meta = info.get(part.name) if isinstance(info.get(part.name), dict) else {}
            cid = inline_cid(cids.get(part.name) or content_id(meta.get("content-id")), shows)
            attachments.append(
                Attachment(
                    str(meta.get("filename") or part.filename or ""),
                    str(meta.get("type") or part.content_type or "application/octet-stream"),
                    len(part.content),
                    part.content,
                    inline=bool(cid),
                    content_id=cid,
                )
            )
        return InboundEmail(
            from_addr=from_addr,
            from_name=from_name,
            to=address_list(field("to")) or address_list(values.get("to", "")),
            cc=address_list(field("cc")) or address_list(values.get("cc", "")),
            reply_to=address_list(values.get("reply-to", "")),
            subject=field("subject") if "subject" in form else values.get("subject", ""),
            date=parse_date(values.get("date", ""), notes),
            text=text,
            text_from_html=derived,
            html=html,
            attachments=tuple(attachments),
            headers=headers,
            provider=self.name,
            envelope_to=envelope_to,
            notes=tuple(notes),
            **verdicts,
            **threading_fields(values),
        )

    def parse_events(self, payload: Payload) -> list[DeliveryEvent]:
        """Every event of the batch we have a kind for; EventError when the body is malformed."""
        try:
            items = json.loads(payload.body)
        except (ValueError, RecursionError) as e:
            raise EventError(f"the body is not JSON: {str(e)[:200]}") from None
        if not isinstance(items, list):
            raise EventError("the body is JSON but not an array of events")
        if len(items) > MAX_EVENTS:
            raise EventError(f"more than {MAX_EVENTS} events in one request")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise EventError(f"event {i} is not an object")
            name = item.get("event")
            if not isinstance(name, str):
                raise EventError(f"event {i} has no 'event' name")
            kind = EVENTS.get(name)
            if kind is None:
                continue  # processed by SendGrid but nothing we act on (group_resubscribe, account events)
            cause = ""
            if kind == "bounce":
                kind = BOUNCE_TYPES.get(bounded(item.get("type")).lower(), "bounce")
            elif kind == "dropped":
                cause = DROP_REASONS.get(bounded(item.get("reason")).strip().lower(), "other")
            detail = {
                k: bounded(item.get(v), 2000)
                for k, v in (
                    ("reason", "reason"),
                    ("status", "status"),
                    ("response", "response"),
                    ("type", "type"),
                    ("classification", "bounce_classification"),
                    ("url", "url"),
                    ("user_agent", "useragent"),
                    ("ip", "ip"),
                )
                if item.get(v) not in (None, "")
            }
            if item.get("sg_machine_open") is True:
                detail["machine_open"] = True
            out.append(
                DeliveryEvent(
                    source="sendgrid",
                    kind=kind,
                    event_id=_event_id(item),
                    recipient=bounded(item.get("email"), 320).strip().lower(),
                    outbound_id=our_id(item),
                    provider_id=provider_id(bounded(item.get("sg_message_id"), 300)),
                    at=epoch_time(item.get("timestamp")),
                    cause=cause,
                    detail=detail,
                    raw=item,
                )
            )
        return out
