"""HTML form bodies (multipart/form-data and urlencoded) -> named parts, bytes kept as sent.

Field values stay bytes because providers declare their charsets elsewhere (SendGrid's
``charsets`` field); decoding is the adapter's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FORM_PARTS = 5000  # a form with more parts than this is refused


@dataclass(frozen=True)
class Part:
    """One form field or file: its name, filename (files only), declared type and bytes."""

    name: str
    filename: str | None
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Form:
    """The parts of a form in the order they came."""

    parts: tuple[Part, ...]

    def get(self, name: str) -> bytes | None:
        """The bytes of the first part called ``name``, or None."""
        return next((p.content for p in self.parts if p.name == name), None)

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
        return any(p.name == name for p in self.parts)


def _multipart(body: bytes, boundary: bytes) -> Form:
    parts: list[Part] = []
    cur: dict = {}
    header_field: list[bytes] = []
    header_value: list[bytes] = []
    data: list[bytes] = []

    def on_part_begin():
        cur.clear()
        cur["headers"] = {}
        data.clear()

    def on_header_field(b, start, end):
        header_field.append(b[start:end])

    def on_header_value(b, start, end):
        header_value.append(b[start:end])

    def on_header_end():
        cur["headers"][b"".join(header_field).lower()] = b"".join(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(b, start, end):
        data.append(b[start:end])

    def on_part_end():
        if len(parts) >= MAX_FORM_PARTS:
            raise ValueError(f"the form has more than {MAX_FORM_PARTS} parts")
        headers = cur.get("headers", {})
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        name = disp.get(b"name")
        if name is None:
            return
        filename = disp.get(b"filename")
        ctype = headers.get(b"content-type", b"").decode("latin-1").strip()
        parts.append(
            Part(
                name.decode("utf-8", "replace"),
                filename.decode("utf-8", "replace") if filename is not None else None,
                ctype,
                b"".join(data),
            )
        )

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - python-multipart's own error types
        raise ValueError(f"malformed multipart body: {type(e).__name__}: {str(e)[:200]}") from None
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
