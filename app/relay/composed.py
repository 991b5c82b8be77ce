"""Messages applications compose (the full send API, SMTP submission), stored as bytes.

A composed message is stored once (OutboundBody, packed: app.relay.packing) for all its
recipients; each recipient's outbox row names it by ``body_id`` and carries the application's
From in ``from_addr``. When the relay sends a copy it keeps the bytes as given and adds only what
it owns: ``edit`` works on the bytes, never on a parsed and re-serialized message, so every
header and part it does not touch (attachments, inline images, the application's own headers)
goes out byte for byte as stored.

The MIME tree is read at the byte level: a header block ends at the first empty line, a
multipart body is cut at its boundary's delimiter lines (the line break before a delimiter is
the delimiter's, RFC 2046 5.1.1), and only ``text/html`` leaves that are not attachments are
rewritten (decoded, passed to the caller's function, encoded again as quoted-printable). What
cannot be read that way (no boundary, an unknown charset) is left as it is.
"""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Callable
from datetime import datetime
from email.message import Message

from sqlmodel import Session

from app.models import OutboundBody, utcnow
from app.relay import packing

MAX_DEPTH = 20  # multipart nesting read for HTML parts; deeper parts are left as they are
_LINES = re.compile(rb"[^\n]*\n|[^\n]+")


def store(s: Session, raw: bytes, *, now: datetime | None = None) -> int:
    """Store ``raw`` (flushed, not committed: the caller commits it with the outbox rows); its id."""
    row = OutboundBody(raw_zlib=packing.pack(raw), size=len(raw), created_at=now or utcnow())
    s.add(row)
    s.flush()
    return row.id


def load(s: Session, body_id: int) -> bytes | None:
    """The stored bytes, or None when there are none (never stored, or purged)."""
    row = s.get(OutboundBody, body_id)
    return packing.unpack(row.raw_zlib) if row else None


# ---------------------------------------------------------------- reading bytes


def split(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block with its last line end, the empty line, body) of a message or part; the
    three joined are ``data``."""
    if data.startswith((b"\r\n", b"\n")):  # no headers at all
        n = 2 if data.startswith(b"\r\n") else 1
        return b"", data[:n], data[n:]
    m = re.search(rb"\n(\r?\n)", data)
    if m is None:
        return data, b"", b""
    return data[: m.start() + 1], m.group(1), data[m.end() :]


def fields(head: bytes) -> list[bytes]:
    """The header fields of a header block, each with its continuation lines and line ends."""
    out: list[bytes] = []
    for line in _LINES.findall(head):
        if out and line[:1] in (b" ", b"\t"):
            out[-1] += line
        else:
            out.append(line)
    return out


def field_name(field: bytes) -> str:
    """A header field's name, lower-case."""
    return field.partition(b":")[0].strip().decode("latin-1").lower()


def line_end(raw: bytes) -> bytes:
    """The line end ``raw`` uses: CRLF (as SMTP carries it) or LF."""
    head = split(raw)[0]
    return b"\r\n" if head.endswith(b"\r\n") or (not head and raw.startswith(b"\r\n")) else b"\n"


def without(raw: bytes, names: frozenset[str]) -> bytes:
    """``raw`` without the top-level header fields called ``names`` (lower-case); the rest as is."""
    head, sep, body = split(raw)
    kept = [f for f in fields(head) if field_name(f) not in names]
    return b"".join(kept) + sep + body


def header_names(raw: bytes) -> set[str]:
    """The lower-case names of the top-level header fields."""
    return {field_name(f) for f in fields(split(raw)[0])}


_MIME_FIELDS = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})
_HEAD_END = re.compile(rb"\n\r?\n")
_UNFOLD = re.compile(rb"\r?\n(?=[ \t])")


def _headers(head: bytes) -> Message:
    """The MIME fields of a header block, parsed (the others are not read)."""
    msg = Message()  # compat32: values as written, parameters read by get_param/get_boundary
    for f in fields(head):
        name, _, value = f.partition(b":")
        if name.strip().lower().decode("latin-1") in _MIME_FIELDS:
            msg[name.strip().decode("latin-1")] = _UNFOLD.sub(b" ", value).strip().decode("latin-1")
    return msg


def _body_at(raw: bytes, start: int, end: int) -> int:
    """Where the body of the entity at raw[start:end] starts (``end`` when it has none)."""
    if raw.startswith(b"\r\n", start):
        return start + 2
    if raw.startswith(b"\n", start):
        return start + 1
    m = _HEAD_END.search(raw, start, end)
    return m.end() if m else end


def _part_spans(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) in ``raw`` of each body part between the boundary's delimiter lines within
    raw[start:end]; the line break before a delimiter belongs to the delimiter."""
    marker = b"--" + boundary
    spans: list[tuple[int, int]] = []
    part = None
    i = raw.find(marker, start, end)
    while i >= 0:
        eol = raw.find(b"\n", i, end)
        line_end = end if eol < 0 else eol
        rest = raw[i + len(marker) : line_end].rstrip(b"\r")
        close = rest.startswith(b"--")
        if (i == start or raw[i - 1] == 10) and not (rest[2:] if close else rest).strip(b" \t"):
            if part is not None:
                cut = i - (2 if raw[i - 2 : i] == b"\r\n" else 1)
                spans.append((part, max(part, cut)))
            if close:  # what follows is the epilogue
                break
            part = line_end if eol < 0 else eol + 1
        i = raw.find(marker, i + len(marker), end)
    return spans


def html_parts(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) in ``raw`` of each text/html leaf (header block included) that is not an
    attachment, in MIME order; attached messages (message/rfc822) are not looked into."""
    found: list[tuple[int, int]] = []

    def walk(start: int, end: int, depth: int) -> None:
        body_at = _body_at(raw, start, end)
        msg = _headers(raw[start:body_at])
        ctype = msg.get_content_type()
        if ctype.startswith("multipart/"):
            boundary = msg.get_boundary()
            if not boundary or depth >= MAX_DEPTH:
                return
            for a, b in _part_spans(raw, body_at, end, boundary.encode("latin-1", "replace")):
                walk(a, b, depth + 1)
        elif ctype == "text/html" and msg.get_content_disposition() != "attachment":
            found.append((start, end))

    walk(0, len(raw), 0)
    return found


def _decoded(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        return binascii.a2b_base64(body)  # skips line ends and other characters outside the alphabet
    if cte == "quoted-printable":
        return quopri.decodestring(body)
    return body


def _rewrite_html(part: bytes, change: Callable[[str], str | None], nl: bytes) -> bytes | None:
    """``part`` (a text/html leaf) with its HTML changed by ``change``, quoted-printable; None when
    it cannot be decoded or ``change`` leaves it alone."""
    head, sep, body = split(part)
    msg = _headers(head)
    charset = msg.get_content_charset() or "us-ascii"
    cte = (msg.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    try:
        html = _decoded(body, cte).decode(charset)
    except (LookupError, UnicodeDecodeError, ValueError, binascii.Error):
        return None
    changed = change(html)
    if changed is None:
        return None
    try:
        data = changed.encode(charset)
    except UnicodeEncodeError:
        return None
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    encoded = binascii.b2a_qp(data, istext=True).replace(b"\n", nl)
    kept = [f for f in fields(head) if field_name(f) != "content-transfer-encoding"]
    cte_field = b"Content-Transfer-Encoding: quoted-printable" + nl
    return b"".join(kept) + cte_field + (sep or nl) + encoded


def edit_html(raw: bytes, change: Callable[[str], str | None]) -> bytes:
    """``raw`` with each text/html part's HTML replaced by ``change(html)`` (None: left alone);
    every other byte of the message stays as it was."""
    nl = line_end(raw)
    # changed in MIME order (``change`` may count what it sees), put back from the end
    edits = [(start, end, _rewrite_html(raw[start:end], change, nl)) for start, end in html_parts(raw)]
    out = raw
    for start, end, new in reversed(edits):
        if new is not None:
            out = out[:start] + new + out[end:]
    return out


def add_headers(raw: bytes, headers: list[tuple[str, str]]) -> bytes:
    """``raw`` with ``headers`` (ASCII, one line each) put first, above the application's own."""
    nl = line_end(raw)
    lines = b"".join(f"{name}: {value}".encode("ascii") + nl for name, value in headers)
    return lines + raw
