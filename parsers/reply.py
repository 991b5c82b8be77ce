"""The new text of an emailed reply: quotes, attributions and signatures cut away.

``extract_reply`` takes an ``InboundEmail`` (anything with ``.text`` and
``.html``), raw MIME bytes or text, HTML, or plain text, and returns a frozen
``Reply``. It is pure and lenient: no clock, network or database, and malformed
mail gives a ``Reply`` with notes, never an exception. Plain text wins over
HTML when a message has both; HTML is cut on its structure first
(``parsers.html_reply``), then both go through the same line pass
(``parsers.text_reply``) and the signature finder (``parsers.signature``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parsers import limits
from parsers.html_reply import html_lines
from parsers.message import parse_mime
from parsers.signature import split_signature
from parsers.text_reply import cut_quotes, norm_line


@dataclass(frozen=True)
class Reply:
    """What the sender wrote (``text``), what was cut (``quoted``, ``signature``) and why (``notes``)."""

    text: str
    quoted: str = ""
    signature: str = ""
    notes: tuple[str, ...] = ()
    forwarded: bool = False
    from_html: bool = False
    empty: bool = False


MAX_PASSES = 4  # the text pass is repeated on its own output until nothing more is cut

_MIME_HEADER = re.compile(r"^[!-9;-~]{1,76}:")
_MIME_NAMES = {"content-type", "mime-version", "message-id", "received", "return-path", "dkim-signature"}
_HTML_TAG = re.compile(
    r"<(?:html|head|body|div|p|br|blockquote|span|table|tr|td|font|hr|a|b|i|u|ul|ol|li|meta|style|o:p"
    r"|pre|h[1-6]|img|center|section)[\s/>]",
    re.I,
)


def looks_like_mime(raw: str) -> bool:
    """Whether ``raw`` starts with an RFC 5322 header block that names MIME or transport fields."""
    head = raw[:65536].replace("\r\n", "\n").split("\n\n", 1)[0]
    names = set()
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):
            continue
        if not _MIME_HEADER.match(line):
            return False
        names.add(line.split(":", 1)[0].lower())
    return bool(names & _MIME_NAMES) or {"from", "subject", "date"} <= names


def looks_like_html(raw: str) -> bool:
    """Whether ``raw`` holds HTML markup rather than plain text."""
    return _HTML_TAG.search(raw[:200_000]) is not None


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _join(lines: list[str], collapse: bool) -> str:
    out: list[str] = []
    for line in lines:
        if collapse and not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def _body_of(message) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(plain text, html, notes) of whatever the caller handed in."""
    if message is None:
        return None, None, ("no message",)
    if hasattr(message, "text") and hasattr(message, "html"):
        # text derived from the HTML has lost the quote structure the HTML still has
        text = None if getattr(message, "text_from_html", False) else message.text
        return text, message.html, ()
    if isinstance(message, bytes | bytearray):
        raw = bytes(message)
        if looks_like_mime(raw[:65536].decode("latin-1")):
            email = parse_mime(raw)
            return _body_of(email)[0], email.html, ("parsed as MIME",) + email.notes
        message = raw.decode("utf-8", "replace")
    if not isinstance(message, str):
        return None, None, (f"unsupported input {type(message).__name__}",)
    if looks_like_mime(message):
        email = parse_mime(message.encode("utf-8", "surrogateescape"))
        return _body_of(email)[0], email.html, ("parsed as MIME",) + email.notes
    if looks_like_html(message):
        return None, message, ()
    return message, None, ()


def _one_pass(lines, kinds, known_quotes, strip_signature):
    """One quote cut and signature cut: (kept lines, quoted lines, signature lines, notes, forwarded)."""
    cut = cut_quotes(lines, kinds, known_quotes)
    notes = tuple(cut.notes)
    known = {norm_line(k) for k in known_quotes if k.strip()}
    if known and any(norm_line(q) in known for q in cut.quoted):
        notes += ("the quote holds our own reminder text",)
    own = cut.reply if cut.forwarded_at is None else cut.reply[: cut.forwarded_at]
    rest = [] if cut.forwarded_at is None else cut.reply[cut.forwarded_at :]
    signature: list[str] = []
    if strip_signature:
        own, signature = split_signature(own)
        if signature:
            notes += ("cut a signature",)
    return own + rest, cut.quoted, signature, notes, cut.forwarded_at is not None


def extract_reply(message, *, strip_signature: bool = True, known_quotes: tuple[str, ...] = ()) -> Reply:
    """Extract the sender's new text from ``message``; never raises."""
    text, html, notes = _body_of(message)
    if text and len(text) > limits.MAX_TEXT_CHARS:
        # each pass below is linear, but several of them over megabytes of "> " lines add up
        text = text[: limits.MAX_TEXT_CHARS]
        notes += (f"text longer than {limits.MAX_TEXT_CHARS} characters: the rest was not read",)
    from_html = not (text and text.strip()) and bool(html and html.strip())
    if from_html:
        lines, kinds, html_notes = html_lines(html)
        notes += tuple(html_notes)
    else:
        lines, kinds = _lines(text or ""), None
    kept, quoted, signature, more, forwarded = _one_pass(lines, kinds, known_quotes, strip_signature)
    body = _join(kept, from_html)
    # Cutting can bring lines together that now read as a header ("From: x" / "Sent: y" around a
    # removed quote); repeating the pass until it is stable makes extraction idempotent.
    for _ in range(MAX_PASSES if quoted or signature else 0):
        again = _one_pass(_lines(body), None, known_quotes, strip_signature)
        if _join(again[0], from_html) == body:
            break
        notes += more
        kept, quoted2, signature2, more, forwarded2 = again
        quoted, signature, forwarded = quoted + quoted2, signature2 + signature, forwarded or forwarded2
        body = _join(kept, from_html)
    notes += more
    return Reply(
        text=body,
        quoted=_join(quoted, True),
        signature=_join(signature, True),
        notes=notes,
        forwarded=forwarded,
        from_html=from_html,
        empty=not body.strip(),
    )


def extract_reply_text(raw: str, strip_signature: bool = True) -> str:
    """The sender's new text from plain text, HTML or a whole raw MIME message."""
    return extract_reply(raw, strip_signature=strip_signature).text
