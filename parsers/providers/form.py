"""HTML form bodies (multipart/form-data and urlencoded) -> named parts, bytes kept as sent.

Field values stay bytes because providers declare their charsets elsewhere (SendGrid's
``charsets`` field); decoding is the adapter's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple
from urllib.parse import parse_qsl

from python_multipart.multipart import parse_options_header

MAX_FORM_PARTS = 5000  # a form with more parts than this is refused
# The Content-Disposition every provider sends; read by this pattern it gives what the general
# parser would (no quotes, backslashes or semicolons inside the values), at a fifth of the cost.
_PLAIN_DISPOSITION = re.compile(rb'form-data; name="([^"\\;]*)"(?:; filename="([^"\\;]*)")?')
# A part that is a plain field, as providers send most of theirs: its one header line, which the
# general reading below would read as this name with no filename and no type, matched at once
_PLAIN_FIELD = re.compile(rb'\r\nContent-Disposition: form-data; name="([^"\\;\r\n]*)"\r\n\r\n')


class Part(NamedTuple):
    """One form field or file: its name, filename (files only), declared type and bytes (a tuple:
    a form has a part per field, and a frozen dataclass cost more to make than the rest of its
    reading)."""

    name: str
    filename: str | None
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Form:
    """The parts of a form in the order they came."""

    parts: tuple[Part, ...]

    @cached_property
    def _first(self) -> dict[str, bytes]:
        # an adapter asks for a dozen fields or more (16 for SendGrid's): one pass, not one each
        out: dict[str, bytes] = {}
        for p in self.parts:
            out.setdefault(p.name, p.content)
        return out

    def get(self, name: str) -> bytes | None:
        """The bytes of the first part called ``name``, or None."""
        return self._first.get(name)

    def text(self, name: str, charset: str = "utf-8") -> str:
        """The first part called ``name`` decoded (undecodable bytes replaced), or ''."""
        value = self.get(name)
        if value is None:
            return ""
        try:
            return value.decode(charset or "utf-8", "replace")
        except LookupError:
            return value.decode("utf-8", "replace")

    def files(self) -> list[Part]:
        """Parts sent as files (they have a filename)."""
        return [p for p in self.parts if p.filename is not None]

    def __contains__(self, name: str) -> bool:
        return name in self._first


def disposition(value: bytes) -> tuple[bytes | None, bytes | None]:
    """(name, filename) of a form part's Content-Disposition; None for what it does not name."""
    m = _PLAIN_DISPOSITION.fullmatch(value)
    if m is not None:
        return m.group(1), m.group(2)
    _, params = parse_options_header(value)
    return params.get(b"name"), params.get(b"filename")


def _multipart(body: bytes, boundary: bytes) -> Form:
    # RFC 2046: parts are separated by CRLF "--" boundary, which the content cannot contain, so
    # splitting on it is exact (and C-speed: this runs for every webhook request).
    if len(boundary) > 200:
        raise ValueError("multipart boundary longer than 200 bytes")
    dash = b"--" + boundary
    if not body.startswith(dash):
        start = body.find(b"\r\n" + dash)
        if start == -1:
            raise ValueError("malformed multipart body: no boundary line")
        body = body[start + 2 :]
    chunks = body.split(b"\r\n" + dash)
    if not chunks[-1].startswith(b"--"):
        raise ValueError("malformed multipart body: no closing boundary")
    if len(chunks) - 1 > MAX_FORM_PARTS:
        raise ValueError(f"the form has more than {MAX_FORM_PARTS} parts")
    parts: list[Part] = []
    for chunk in chunks[:-1]:
        if chunk.startswith(dash):
            chunk = chunk[len(dash) :]
        plain = _PLAIN_FIELD.match(chunk)
        if plain is not None:
            parts.append(Part(plain.group(1).decode("utf-8", "replace"), None, "", chunk[plain.end() :]))
            continue
        line_end = chunk.find(b"\r\n")
        if line_end == -1:
            raise ValueError("malformed multipart body: a part without headers")
        head_end = chunk.find(b"\r\n\r\n", line_end)
        if head_end == -1:
            raise ValueError("malformed multipart body: a part's headers never end")
        headers = {}
        for line in chunk[line_end + 2 : head_end].split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        name, filename = disposition(headers.get(b"content-disposition", b""))
        if name is None:
            continue
        parts.append(
            Part(
                name.decode("utf-8", "replace"),
                filename.decode("utf-8", "replace") if filename is not None else None,
                headers.get(b"content-type", b"").decode("latin-1"),
                chunk[head_end + 4 :],
            )
        )
    return Form(tuple(parts))


def parse_form(body: bytes, content_type: str) -> Form:
    """Parse a form body; raises ValueError (with the reason) when it is not a well-formed form."""
    ctype, params = parse_options_header(content_type or "")
    if ctype == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise ValueError("multipart/form-data without a boundary")
        return _multipart(body, boundary)
    if ctype == b"application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        if len(pairs) > MAX_FORM_PARTS:
            raise ValueError(f"the form has more than {MAX_FORM_PARTS} fields")
        return Form(tuple(Part(k, None, "", v.encode("latin-1")) for k, v in pairs))
    raise ValueError("Content-Type must be multipart/form-data or application/x-www-form-urlencoded")
