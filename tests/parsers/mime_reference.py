"""The stdlib ``email`` package's reading of a message (policy.default), in the fields parse_mime gives.

The reference for tests/parsers/test_mime_differential.py. Bodies are ``get_body()``'s choice;
attachments are the leaves (enclosed messages not walked into) that are not a body, by the
same rule donebox uses (disposition attachment, a filename, or not text), so what is compared
is how each part is *read*: its name, its size, its text. A part with a Content-ID that the
HTML body names by ``cid:`` (and no attachment disposition) is inline, no attachment.
"""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

FIELDS = ("subject", "from", "to", "cc", "text", "html", "attachments")


def norm_text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def _addresses(msg, name: str) -> tuple[str, ...]:
    header = msg[name]
    if header is None:
        return ()
    return tuple(a.addr_spec.lower() for a in header.addresses if "@" in a.addr_spec)


def _leaves(msg):
    """Non-multipart parts in document order; an enclosed message is one leaf."""
    stack = [msg]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
            stack.extend(reversed(part.get_payload()))
        else:
            yield part


def _content(part) -> str | None:
    return part.get_content() if part is not None else None


def _attachment(part) -> tuple[str, int | None]:
    ctype = part.get_content_type()
    name = part.get_filename() or ""
    if ctype.startswith("message/") and ctype not in ("message/rfc822", "message/news"):
        return name, None  # parsed into header blocks by the stdlib: no raw size
    if ctype in ("message/rfc822", "message/news"):
        inner = part.get_payload(0) if isinstance(part.get_payload(), list) else None
        subject = str(inner["subject"] or "").strip() if inner is not None else ""
        return name or f"{subject or 'message'}.eml", None  # the stdlib re-serializes: no raw size
    payload = part.get_payload(decode=True)
    return name, len(payload) if isinstance(payload, bytes) else 0


def read(raw: bytes) -> dict:
    """subject, from, to, cc, text, html, attachments ((name, size) of non-inline ones), inline (cids)."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    attachments, inline = [], []
    shown = (_content(html) or "").lower()  # an inline part is one the HTML shows by cid:
    for part in _leaves(msg):
        if part is plain or part is html or part is msg and part.get_content_maintype() == "text":
            continue
        ctype, disposition = part.get_content_type(), part.get_content_disposition() or ""
        if not (disposition == "attachment" or part.get_filename() or not ctype.startswith("text/")):
            continue
        cid = str(part["content-id"] or "").strip().strip("<>").strip()
        if (
            cid
            and disposition in ("", "inline")
            and f"cid:{cid.lower()}" in shown
            and not ctype.startswith("message/")
        ):
            inline.append(cid)
        else:
            attachments.append(_attachment(part))
    return {
        "subject": str(msg["subject"] or "").strip(),
        "from": _addresses(msg, "from")[:1],
        "to": _addresses(msg, "to"),
        "cc": _addresses(msg, "cc"),
        "text": norm_text(_content(plain)),
        "html": norm_text(_content(html)),
        "attachments": tuple(attachments),
        "inline": tuple(inline),
    }


def donebox(email) -> dict:  # names as received (raw_filename): the safe name is for storage
    """The same fields of a parsed ``InboundEmail`` (text derived from HTML is no text part)."""
    return {
        "subject": email.subject.strip(),
        "from": (email.from_addr.lower(),) if email.from_addr else (),
        "to": tuple(a.lower() for a in email.to),
        "cc": tuple(a.lower() for a in email.cc),
        "text": None if email.text_from_html else norm_text(email.text),
        "html": norm_text(email.html),
        "attachments": tuple(
            (a.raw_filename, None if a.content_type.startswith("message/") else a.size)
            for a in email.attachments
            if not a.inline
        ),
        "inline": tuple(a.content_id for a in email.attachments if a.inline),
    }
