"""Reply extraction: keep what the member wrote, cut the quoted thread and the signature.

A first cut: text before the first quote header or ``>`` block, signature after ``-- ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_QUOTE_START = re.compile(
    r"^(>|On .{1,300} wrote:\s*$|-{2,}\s*Original Message\s*-{2,}|From: .+)", re.MULTILINE
)
_SIG = re.compile(r"^-- ?$", re.MULTILINE)


@dataclass(frozen=True)
class Reply:
    """The new text of a reply, what was cut, and why."""

    text: str
    quoted: str = ""
    signature: str = ""
    notes: tuple[str, ...] = ()
    forwarded: bool = False
    from_html: bool = False
    empty: bool = False


def extract_reply(message, *, strip_signature: bool = True, known_quotes: tuple[str, ...] = ()) -> Reply:
    """Split ``message`` (an InboundEmail or text) into new text, quote and signature."""
    text = message if isinstance(message, str) else (getattr(message, "text", None) or "")
    text = text.replace("\r\n", "\n")
    m = _QUOTE_START.search(text)
    body, quoted = (text[: m.start()], text[m.start() :]) if m else (text, "")
    signature = ""
    s = _SIG.search(body) if strip_signature else None
    if s:
        body, signature = body[: s.start()], body[s.start() :]
    body = body.strip()
    return Reply(body, quoted.strip(), signature.strip(), empty=not body)


def extract_reply_text(raw: str, strip_signature: bool = True) -> str:
    """The new text of a reply given as plain text."""
    return extract_reply(raw, strip_signature=strip_signature).text
