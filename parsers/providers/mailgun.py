"""Mailgun routes (forward / store-and-notify): parsed fields, or ``body-mime`` when the URL ends in mime.

Every POST is signed: ``signature`` = HMAC-SHA256(signing key, ``timestamp`` + ``token``). A
token is good once; the endpoint remembers it in the message's own transaction
(app.inbound.accept), which is how a replay is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import replace
from datetime import datetime

from parsers.message import Attachment, InboundEmail, html_to_text, parse_date, parse_mime
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
    form_digest,
    json_field,
    sender,
    sha256,
    threading_fields,
    unix_time,
    verdict,
)

# Mailgun's own fields are lower-case (recipient, body-plain, ...); the mail's headers it posts
# as fields too keep their capitals (To, Cc, Message-Id, X-Mailgun-Spf, ...)
_HEADER_FIELD = re.compile(r"[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
# any of these makes a post a parsed-mode route post (every one of them is optional)
PARSED_FIELDS = ("message-headers", "body-plain", "body-html", "stripped-text", "from", "sender", "recipient")
SIGNATURE_FIELDS = ("timestamp", "token", "signature")  # new on every retry: not part of the mail


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


def _json_pairs(value: bytes | None) -> list[tuple[str, str]]:
    """The (name, decoded value) pairs of a ``message-headers`` field; [] when it holds none."""
    pairs = json_field(value, "message-headers", [])
    return [
        (p[0], decode_words(p[1]))
        for p in pairs
        if isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
    ]


def _headers(payload: Payload) -> tuple[tuple[str, str], ...]:
    """The mail's headers: ``message-headers`` (a JSON list of pairs), completed by the header
    fields Mailgun also posts one by one (``To``, ``Message-Id``, ...), so a missing or malformed
    ``message-headers`` loses nothing those fields carry."""
    found = _json_pairs(payload.form.get("message-headers"))
    named = {k.lower() for k, _ in found}
    for part in payload.form.parts:
        low = part.name.lower()
        # Mailgun's verdicts are believed only where every copy can be compared (_verdict)
        if low in named or low.startswith("x-mailgun-"):
            continue
        if part.filename is None and _HEADER_FIELD.fullmatch(part.name):
            found.append((part.name, decode_words(part.content.decode("utf-8", "replace"))))
    return tuple(found)


class Mailgun(Provider):
    """Mailgun's route POSTs: every field is UTF-8, the signature fields sit among them."""

    name = "mailgun"
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
        if not any(name in form for name in PARSED_FIELDS):
            raise PayloadError(
                "neither 'body-mime' nor any of 'message-headers', 'body-plain', 'body-html',"
                " 'stripped-text', 'from', 'sender', 'recipient' in the form"
            )
        headers = form.get("message-headers")
        return Keys(
            message_id=threading_fields(_headers(payload))["message_id"],
            envelope_to=envelope_to,
            header_hash=sha256(headers) if headers else form_digest(form, SIGNATURE_FIELDS),
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
        given = form.get("message-headers")
        if given is not None and not _json_pairs(given):
            notes.append("message-headers is not a JSON list of pairs: the posted header fields were read")
        from_name, from_addr = sender(form.text("from"), first(headers, "From"))
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
