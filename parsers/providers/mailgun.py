"""Mailgun routes (forward / store-and-notify): parsed fields, or ``body-mime`` when the URL ends in mime;
and Mailgun's event webhooks (one JSON document per event).

Every POST is signed: ``signature`` = HMAC-SHA256(signing key, ``timestamp`` + ``token``), as
form fields for routes and as the ``signature`` object of the JSON body for events. The
signature does not cover the body, so a token is good once: the endpoints remember it in the
same transaction as what the request stored (app.inbound.accept.remember_token), which is how
a replay is refused. Events name our message by its Message-ID (``message.headers.message-id``,
which Mailgun keeps from what we hand it) or by the ``donebox_id`` user variable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import replace
from datetime import datetime

from parsers.inline import cid_references, inline_cid
from parsers.message import Attachment, InboundEmail, first_values, html_to_text, parse_date, parse_mime
from parsers.message import raw_message_id as mime_message_id
from parsers.providers.base import (
    AuthError,
    Headers,
    Keys,
    Payload,
    PayloadError,
    Provider,
    address_list,
    attachment_fields,
    check_fresh,
    content_fingerprint,
    content_id_map,
    decode_words,
    form_digest,
    json_field,
    sender,
    sha256,
    threading_fields,
    unix_time,
    verdict,
)
from parsers.providers.events import DeliveryEvent, EventError, bounded, clean, epoch_time, our_id

# Mailgun event -> ours; ``failed`` is refined by severity and reason (below). Others are skipped.
EVENTS = {
    "accepted": "processed",
    "delivered": "delivered",
    "failed": "bounce",
    "rejected": "dropped",
    "complained": "complaint",
    "unsubscribed": "unsubscribe",
    "opened": "open",
    "clicked": "click",
}
# a permanent failure's ``reason``: Mailgun did not send to an address on its own lists (dropped,
# with the list as the cause), or gave up for a reason that says nothing about the address
FAILED_REASONS = {
    "suppress-bounce": ("dropped", "bounce"),
    "suppress-complaint": ("dropped", "complaint"),
    "suppress-unsubscribe": ("dropped", "unsubscribe"),
    "old": ("soft_bounce", ""),  # temporary failures retried until Mailgun gave up
    "espblock": ("soft_bounce", ""),  # the receiving provider blocked the sender, not the address
}

# Mailgun's own fields are lower-case (recipient, body-plain, ...); the mail's headers it posts
# as fields too keep their capitals (To, Cc, Message-Id, X-Mailgun-Spf, ...)
_HEADER_FIELD = re.compile(r"[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
# any of these makes a post a parsed-mode route post (every one of them is optional)
PARSED_FIELDS = ("message-headers", "body-plain", "body-html", "stripped-text", "from", "sender", "recipient")
SIGNATURE_FIELDS = ("timestamp", "token", "signature")  # new on every retry: not part of the mail
# the fields holding the mail's content (ours <- Mailgun's), what a parsed post's fingerprint covers
CONTENT_FIELDS = (
    ("from", "from"),
    ("to", "To"),
    ("cc", "Cc"),
    ("subject", "subject"),
    ("text", "body-plain"),
    ("html", "body-html"),
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


def _signature(doc: dict) -> dict:
    sig = doc.get("signature")
    if not isinstance(sig, dict):
        raise AuthError("missing the Mailgun 'signature' object (timestamp, token, signature)")
    return sig


def _mailgun_event(data: dict) -> DeliveryEvent | None:
    name = data.get("event")
    if not isinstance(name, str):
        raise EventError("the event has no 'event' name")
    kind, cause = EVENTS.get(name), ""
    if kind is None:
        return None  # stored, list_member_uploaded ...: nothing we act on
    reason = bounded(data.get("reason"), 100).lower()
    if name == "failed":
        if bounded(data.get("severity"), 20).lower() == "temporary":
            kind = "deferred"
        else:
            kind, cause = FAILED_REASONS.get(reason, ("bounce", ""))
    elif kind == "dropped":
        cause = "other"
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    client = data.get("client-info") if isinstance(data.get("client-info"), dict) else {}
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    mid = clean(bounded(headers.get("message-id"), 900).strip().strip("<>"))
    detail = {
        k: bounded(v, 2000)
        for k, v in (
            ("severity", data.get("severity")),
            ("reason", data.get("reason")),
            ("status", status.get("code")),
            ("response", status.get("message") or status.get("description")),
            ("url", data.get("url")),
            ("user_agent", client.get("user-agent")),
            ("ip", data.get("ip")),
        )
        if bounded(v, 2000)
    }
    given = bounded(data.get("id"), 200)
    stamp = data.get("timestamp")
    if given:  # Mailgun's ids are unique within a day: with the time they are unique
        at = epoch_time(stamp)
        event_id = f"mailgun:{given}:{int(at.timestamp()) if at is not None else ''}"
    else:
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
        event_id = "mailgun:sha256:" + digest[:40]
    return DeliveryEvent(
        source="mailgun",
        kind=kind,
        event_id=clean(event_id),
        recipient=clean(bounded(data.get("recipient"), 320).strip().lower()),
        outbound_id=our_id(data.get("user-variables")),
        message_ids=(f"<{mid}>",) if mid and " " not in mid else (),
        at=epoch_time(stamp),  # NaN and infinities (JSON allows them here) are no time
        cause=cause,
        detail=detail,
        raw=data,
    )


class Mailgun(Provider):
    """Mailgun's route POSTs: every field is UTF-8, the signature fields sit among them."""

    name = "mailgun"
    content_types = ("multipart/form-data", "application/x-www-form-urlencoded")
    setting = "MAILGUN_SIGNING_KEY"
    max_age_setting = "MAILGUN_MAX_AGE_S"
    event_setting = "MAILGUN_SIGNING_KEY"  # one signing key for routes and event webhooks
    event_max_age_setting = "MAILGUN_MAX_AGE_S"
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

    def verify_events(
        self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300
    ) -> None:
        """The body's ``signature`` object: HMAC-SHA256(secret, timestamp + token), or the same as
        ``parent-signature`` (a subaccount's event, proven with the primary account's key), and a
        fresh timestamp; replays are caught when the token is stored (``event_replay_token``)."""
        sig = _signature(Payload(body).json)
        timestamp, token = bounded(sig.get("timestamp"), 20), bounded(sig.get("token"), 300)
        given = [bounded(sig.get(k), 200).strip().lower() for k in ("signature", "parent-signature")]
        if not (timestamp and token and given[0]):
            raise AuthError("missing Mailgun signature fields (timestamp, token, signature)")
        ts = unix_time(timestamp, "Mailgun timestamp")
        signed = (timestamp + token).encode("utf-8", "surrogatepass")  # hostile JSON may hold lone surrogates
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if not any(g and hmac.compare_digest(expected.encode(), g.encode()) for g in given):
            raise AuthError("wrong Mailgun signature")
        check_fresh(ts, now=now, max_age_s=max_age_s, what="Mailgun timestamp")

    def event_replay_token(self, payload: Payload) -> str:
        sig = payload.json.get("signature")
        return clean(bounded(sig.get("token"), 255)) if isinstance(sig, dict) else ""

    def parse_events(self, payload: Payload) -> list[DeliveryEvent]:
        """The one event of a webhook request (``event-data``); EventError when it is not one."""
        try:
            doc = payload.json
        except PayloadError as e:
            raise EventError(str(e)) from None
        data = doc.get("event-data")
        if not isinstance(data, dict):
            raise EventError("no 'event-data' object (Mailgun's legacy webhooks are not supported)")
        event = _mailgun_event(data)
        return [event] if event is not None else []

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
            message_id=threading_fields(first_values(_headers(payload)))["message_id"],
            envelope_to=envelope_to,
            header_hash=sha256(headers) if headers else form_digest(form, SIGNATURE_FIELDS),
            # the mail's fields, not the form: a retry has new signature fields and boundary
            fingerprint=content_fingerprint(
                [
                    *((name, form.get(field)) for name, field in CONTENT_FIELDS),
                    *attachment_fields(
                        (p.filename or p.name, p.content)
                        for p in form.files()
                        if p.name.startswith("attachment")
                    ),
                ]
            ),
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
        values = first_values(headers)
        from_name, from_addr = sender(form.text("from"), values.get("from", ""))
        text = form.text("body-plain") if "body-plain" in form else None
        html = form.text("body-html") if "body-html" in form else None
        derived = bool(not text and html)
        if derived:
            text = html_to_text(html, notes)
            notes.append("HTML-only mail: text derived from the HTML")
        cids = content_id_map(form.get("content-id-map"), "content-id-map", notes)
        shows = cid_references(html)
        attachments = []
        for p in form.files():
            if not p.name.startswith("attachment"):
                continue
            cid = inline_cid(cids.get(p.name, ""), shows)
            attachments.append(
                Attachment(
                    p.filename or "",
                    p.content_type or "application/octet-stream",
                    len(p.content),
                    p.content,
                    inline=bool(cid),
                    content_id=cid,
                )
            )
        return InboundEmail(
            from_addr=from_addr,
            from_name=from_name,
            to=address_list(values.get("to", "")),
            cc=address_list(values.get("cc", "")),
            reply_to=address_list(values.get("reply-to", "")),
            subject=form.text("subject") if "subject" in form else values.get("subject", ""),
            date=parse_date(values.get("date", ""), notes),
            text=text,
            text_from_html=derived,
            html=html,
            attachments=tuple(attachments),
            headers=headers,
            provider=self.name,
            envelope_to=envelope_to,
            notes=tuple(notes),
            **_verdicts(headers, form),
            **threading_fields(values),
        )
