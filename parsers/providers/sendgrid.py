"""SendGrid Inbound Parse: multipart form, raw mode (``email``) or parsed mode (fields + charsets)."""

from __future__ import annotations

import re
from dataclasses import replace

from parsers.message import (
    Attachment,
    InboundEmail,
    addresses,
    decode_text,
    html_to_text,
    parse_date,
    parse_mime,
)
from parsers.message import raw_message_id as mime_message_id
from parsers.providers.base import (
    Keys,
    Payload,
    PayloadError,
    Provider,
    address_list,
    first,
    header_block,
    json_field,
    sha256,
    threading_fields,
    verdict,
)

_DKIM_RESULT = re.compile(r":\s*([a-z]+)", re.IGNORECASE)


def dkim_verdict(value: str) -> str:
    """``{@example.com : pass, @other.org : fail}`` -> pass when any signature passed."""
    results = [r.lower() for r in _DKIM_RESULT.findall(value or "")]
    return "pass" if "pass" in results else (results[0] if results else "")


class SendGrid(Provider):
    """SendGrid's Inbound Parse webhook (both of its modes)."""

    name = "sendgrid"

    def _envelope_to(self, payload: Payload) -> tuple[str, ...]:
        envelope = json_field(payload.form.get("envelope"), "envelope", {})
        to = envelope.get("to") or []
        return tuple(a for t in to if isinstance(t, str) for _, a in addresses(t))

    def keys(self, payload: Payload) -> Keys:
        form = payload.form
        raw = form.get("email")
        if raw is not None:
            return Keys(message_id=mime_message_id(raw), envelope_to=self._envelope_to(payload), raw_mime=raw)
        if "headers" not in form and "from" not in form:
            raise PayloadError("neither an 'email' field (raw mode) nor 'headers'/'from' (parsed mode)")
        headers = header_block(form.text("headers"))
        return Keys(
            message_id=threading_fields(headers)["message_id"],
            envelope_to=self._envelope_to(payload),
            header_hash=sha256(form.get("headers") or b""),
        )

    def parse(self, payload: Payload) -> InboundEmail:
        form = payload.form
        spf = verdict(form.text("SPF"))
        dkim = dkim_verdict(form.text("dkim"))
        envelope_to = self._envelope_to(payload)
        raw = form.get("email")
        if raw is not None:
            email = parse_mime(raw, provider=self.name)
            return replace(
                email,
                envelope_to=envelope_to or email.envelope_to,
                spf=spf or email.spf,
                dkim=dkim or email.dkim,
            )
        notes: list[str] = []
        charsets = json_field(form.get("charsets"), "charsets", {})

        def field(name: str) -> str:
            value = form.get(name)
            if value is None:
                return ""
            charset = charsets.get(name) if isinstance(charsets.get(name), str) else "utf-8"
            return decode_text(value, charset, notes, name)

        headers = header_block(field("headers"))
        from_pairs = addresses(field("from"))
        from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
        text = field("text") if "text" in form else None
        html = field("html") if "html" in form else None
        derived = bool(text is None and html is not None)
        if derived:
            text = html_to_text(html)
            notes.append("HTML-only mail: text derived from the HTML")
        info = json_field(form.get("attachment-info"), "attachment-info", {})
        attachments = []
        for part in form.files():
            meta = info.get(part.name) if isinstance(info.get(part.name), dict) else {}
            attachments.append(
                Attachment(
                    str(meta.get("filename") or part.filename or ""),
                    str(meta.get("type") or part.content_type or "application/octet-stream"),
                    len(part.content),
                    part.content,
                )
            )
        return InboundEmail(
            from_addr=from_addr,
            from_name=from_name,
            to=address_list(field("to")),
            cc=address_list(field("cc")),
            reply_to=address_list(first(headers, "Reply-To")),
            subject=field("subject") if "subject" in form else first(headers, "Subject"),
            date=parse_date(first(headers, "Date"), notes),
            text=text,
            text_from_html=derived,
            html=html,
            attachments=tuple(attachments),
            headers=headers,
            spf=spf,
            dkim=dkim,
            provider=self.name,
            envelope_to=envelope_to,
            notes=tuple(notes),
            **threading_fields(headers),
        )
