"""Mailgun routes (forward / store-and-notify): parsed fields, or ``body-mime`` when the URL ends in mime.

Every POST is signed: ``signature`` = HMAC-SHA256(signing key, ``timestamp`` + ``token``). A
token is good once; the endpoint remembers it in the message's own transaction
(app.inbound.accept), which is how a replay is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import datetime

from parsers.message import Attachment, InboundEmail, addresses, html_to_text, parse_date, parse_mime
from parsers.message import raw_message_id as mime_message_id
from parsers.providers.base import (
    AuthError,
    Headers,
    Keys,
    Payload,
    PayloadError,
    Provider,
    address_list,
    check_fresh,
    decode_words,
    first,
    json_field,
    sha256,
    threading_fields,
    unix_time,
    verdict,
)


def _verdict(headers, name: str) -> str:
    """Mailgun's verdict header ``name``; when the mail brought its own copies and they disagree
    with Mailgun's, none is believed."""
    found = {verdict(v) for k, v in headers if k.lower() == name.lower()}
    return found.pop() if len(found) == 1 else ""


def _verdicts(headers, form) -> dict:
    """Mailgun's SPF and DKIM verdicts and the envelope sender (``sender``) SPF was about."""
    return {
        "spf": _verdict(headers, "X-Mailgun-Spf"),
        "dkim": _verdict(headers, "X-Mailgun-Dkim-Check-Result"),
        "envelope_from": form.text("sender").strip().lower()[:320],
    }


def _headers(payload: Payload) -> tuple[tuple[str, str], ...]:
    pairs = json_field(payload.form.get("message-headers"), "message-headers", [])
    return tuple(
        (p[0], decode_words(p[1]))
        for p in pairs
        if isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
    )


class Mailgun(Provider):
    """Mailgun's route POSTs: every field is UTF-8, the signature fields sit among them."""

    name = "mailgun"
    content_types = ("multipart/form-data", "application/x-www-form-urlencoded")
    setting = "MAILGUN_SIGNING_KEY"
    max_age_setting = "MAILGUN_MAX_AGE_S"
    body_signed = True

    def verify(self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300) -> None:
        """HMAC-SHA256(secret, timestamp + token) and a fresh timestamp; replays are caught when
        the token is stored (``replay_token``)."""
        form = Payload(body, headers.get("content-type", "")).form
        timestamp, token, signature = form.text("timestamp"), form.text("token"), form.text("signature")
        if not (timestamp and token and signature):
            raise AuthError("missing Mailgun signature fields (timestamp, token, signature)")
        ts = unix_time(timestamp, "Mailgun timestamp")
        expected = hmac.new(secret.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise AuthError("wrong Mailgun signature")
        check_fresh(ts, now=now, max_age_s=max_age_s, what="Mailgun timestamp")

    def replay_token(self, payload: Payload) -> str:
        return payload.form.text("token")

    def keys(self, payload: Payload) -> Keys:
        form = payload.form
        envelope_to = address_list(form.text("recipient"))
        raw = form.get("body-mime")
        if raw is not None:
            return Keys(message_id=mime_message_id(raw), envelope_to=envelope_to, raw_mime=raw)
        if "message-headers" not in form and "body-plain" not in form:
            raise PayloadError("neither 'body-mime' nor 'message-headers'/'body-plain' in the form")
        return Keys(
            message_id=threading_fields(_headers(payload))["message_id"],
            envelope_to=envelope_to,
            header_hash=sha256(form.get("message-headers") or b""),
        )

    def parse(self, payload: Payload) -> InboundEmail:
        form = payload.form
        envelope_to = address_list(form.text("recipient"))
        raw = form.get("body-mime")
        if raw is not None:
            email = parse_mime(raw, provider=self.name)
            return replace(
                email, envelope_to=envelope_to or email.envelope_to, **_verdicts(email.headers, form)
            )
        notes: list[str] = []
        headers = _headers(payload)
        from_pairs = addresses(form.text("from") or first(headers, "From"))
        from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
        text = form.text("body-plain") if "body-plain" in form else None
        html = form.text("body-html") if "body-html" in form else None
        derived = bool(not text and html)
        if derived:
            text = html_to_text(html, notes)
            notes.append("HTML-only mail: text derived from the HTML")
        attachments = tuple(
            Attachment(
                p.filename or "", p.content_type or "application/octet-stream", len(p.content), p.content
            )
            for p in form.files()
            if p.name.startswith("attachment")
        )
        return InboundEmail(
            from_addr=from_addr,
            from_name=from_name,
            to=address_list(first(headers, "To")),
            cc=address_list(first(headers, "Cc")),
            reply_to=address_list(first(headers, "Reply-To")),
            subject=form.text("subject") if "subject" in form else first(headers, "Subject"),
            date=parse_date(first(headers, "Date"), notes),
            text=text,
            text_from_html=derived,
            html=html,
            attachments=attachments,
            headers=headers,
            provider=self.name,
            envelope_to=envelope_to,
            notes=tuple(notes),
            **_verdicts(headers, form),
            **threading_fields(headers),
        )
