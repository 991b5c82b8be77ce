"""Messages as applications compose them: a real PDF, a real PNG, and ways to find a part's raw bytes."""

from __future__ import annotations

import struct
import zlib
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

INVOICE_LINK = "https://app.example/invoice/42"


def tiny_pdf() -> bytes:
    """A valid one-page PDF (catalog, pages, page; a correct xref table)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def tiny_png() -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def invoice(
    *, from_addr: str = "billing@app.example", message_id: str | None = None, bcc: str | None = None
) -> EmailMessage:
    """multipart/mixed: alternative (text, related (HTML with a link and a cid: image, the PNG)), the PDF."""
    m = EmailMessage()
    m["From"] = f"Billing <{from_addr}>"
    m["To"] = "customer@example.org"
    m["Cc"] = "accounts@example.org"
    if bcc:
        m["Bcc"] = bcc
    m["Reply-To"] = "support@app.example"
    m["Subject"] = "Invoice 42"
    m["X-App-Ref"] = "inv-42"
    if message_id:
        m["Message-ID"] = message_id
    m.set_content("Your invoice is attached.\n")
    m.add_alternative(
        f'<html><body><p>Your <a href="{INVOICE_LINK}">invoice</a>'
        ' <img src="cid:logo@app.example"></p></body></html>\n',
        subtype="html",
    )
    m.get_payload()[1].add_related(tiny_png(), maintype="image", subtype="png", cid="<logo@app.example>")
    m.add_attachment(tiny_pdf(), maintype="application", subtype="pdf", filename="invoice-42.pdf")
    return m


def as_bytes(m: EmailMessage) -> bytes:
    return m.as_bytes(policy=policy.SMTP)


def parsed(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def raw_parts(raw: bytes, content_type: str) -> list[bytes]:
    """The raw bytes (headers and body) of the parts of ``content_type``, cut at every boundary."""
    chunks = [raw]
    for part in parsed(raw).walk():
        if part.is_multipart():
            delimiter = b"--" + part.get_boundary().encode()
            chunks = [c for chunk in chunks for c in chunk.split(delimiter)]
    return [c for c in chunks if f"Content-Type: {content_type}".encode() in c.split(b"\r\n\r\n", 1)[0]]


def payloads(raw: bytes, content_type: str) -> list[bytes]:
    """The decoded payloads of the parts of ``content_type``."""
    return [p.get_payload(decode=True) for p in parsed(raw).walk() if p.get_content_type() == content_type]
