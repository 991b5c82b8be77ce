"""A capped, iterative MIME splitter for the messages flanker refuses.

flanker gives up on a whole message past ~2,500 parts, past deep nesting, or
when a multipart's boundary is missing or does not match its body. This reads
such a message as far as is safe: the top-level headers always, then the
parts in order, splitting each multipart on its boundary lines (guessing the
boundary from the first ``--`` line when it is missing or wrong), with an
explicit stack, so no depth exhausts Python's, and within the budgets of
``parsers.limits``. Leaves are decoded by the stdlib ``email`` package one at
a time (parsers.mime_parts); an enclosed message is one leaf, not walked into. Pure, never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from parsers import limits
from parsers.mime_parts import Leaf, fix_text, header_text, read_leaf

__all__ = ["Fallback", "Leaf", "header_text", "split_mime"]

_BLANK = re.compile(rb"\r?\n\r?\n")
# The first delimiter-looking line of a body: "--" and up to 70 characters (RFC 2046).
_GUESS = re.compile(rb"^--([^\r\n]{1,70}?)[ \t]*\r?$", re.M)


@dataclass
class Fallback:
    """What the splitter read: top-level headers (decoded), leaves in order, and notes."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _entity(raw: bytes):
    """(headers Message, body bytes) of one entity; the head ends at the first blank line."""
    parts = _BLANK.split(raw, maxsplit=1)
    head, body = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], b"")
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n")
    except Exception:  # noqa: BLE001 - header parsing of hostile bytes
        msg = None
    return msg, body


def _boundary(msg, body: bytes, notes: list[str]) -> bytes | None:
    declared = msg.get_param("boundary") if msg is not None else None
    declared = declared if isinstance(declared, str) else None
    if declared:
        b = declared.strip().encode("latin-1", "replace")
        if re.search(rb"^--" + re.escape(b), body, re.M):
            return b
    guess = _GUESS.search(body)
    if guess is None:
        notes.append("multipart without a boundary line: its body was read as text")
        return None
    b = guess.group(1)
    b = b[:-2] if b.endswith(b"--") else b
    what = "does not match its body" if declared else "is missing"
    notes.append(f"a multipart boundary {what}: split on the first delimiter line")
    return b


def _split(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between delimiter lines, up to the close delimiter (or the end: noted by the caller)."""
    delim = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", re.M)
    parts, start = [], None
    for m in delim.finditer(body):
        if start is not None:
            end = m.start()
            end -= 2 if body[end - 2 : end] == b"\r\n" else 1 if body[end - 1 : end] == b"\n" else 0
            parts.append(body[start:end])
        if m.group(1):
            return parts
        start = m.end() + (2 if body[m.end() : m.end() + 2] == b"\r\n" else 1)
    if start is not None:
        parts.append(body[start:])
    return parts


def split_mime(raw: bytes) -> Fallback:
    """Read ``raw`` as far as is safe within the budgets; never raises."""
    out = Fallback()
    msg, _ = _entity(raw)
    if msg is not None:
        out.headers = [(str(k), header_text(fix_text(str(v)))) for k, v in msg.raw_items()]
    stack = [(raw, 0, "text/plain")]
    seen = 0
    while stack:
        entity, depth, default_type = stack.pop()
        seen += 1
        if seen > limits.MAX_MIME_PARTS:
            out.notes.append(f"more than {limits.MAX_MIME_PARTS} MIME parts: the rest were not read")
            break
        msg, body = _entity(entity)
        if msg is not None:
            msg.set_default_type(default_type)
        ctype = msg.get_content_type() if msg is not None else default_type
        if ctype.startswith("multipart/"):  # an enclosed message (message/rfc822) is a leaf: an attachment
            if depth >= limits.MAX_MIME_DEPTH:
                out.notes.append(f"MIME nesting deeper than {limits.MAX_MIME_DEPTH}: not walked further")
                continue
            if not body.strip():
                out.notes.append("an empty multipart: nothing in it to read")
                continue
            boundary = _boundary(msg, body, out.notes)
            if boundary is not None:
                inner = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                stack.extend((p, depth + 1, inner) for p in reversed(_split(body, boundary)))
                continue
            entity = b"Content-Type: text/plain\r\n\r\n" + body
        out.leaves.append(read_leaf(entity, depth, out.notes, default_type))
    return out
