"""The parts of a full send request (addresses, custom headers, attachments) checked, and the message
they make: one RFC 5322 message built with the stdlib ``email`` package.

Every check raises RequestError whose reason starts with the field it is about, as the request
names it (``cc[3]``, ``headers.X-Campaign``, ``attachments[2].content``), so a client can point at
it. The message is what the application means: From, To, Cc, Reply-To, Subject, its custom headers
and the MIME structure (``multipart/alternative`` text and HTML, inside ``multipart/related`` with
the inline images, inside ``multipart/mixed`` with the attachments). It has no Bcc header (bcc
recipients are envelope recipients only) and no Message-ID unless the application gave one: the
relay adds what it owns when it sends each recipient's copy (app.relay.composed).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart

from app.errors import RenderError, RequestError
from app.relay.render import ascii_address

ADDRESS = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
_NAMED = re.compile(r'^\s*"?([^"<>]*?)"?\s*<([^<>]*)>\s*$')  # Name <addr> or "Name" <addr>
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,76}$")  # RFC 5322 ftext: printable, no colon
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]{1,64}"
_MEDIA_TYPE = re.compile(rf"^({_TOKEN})/({_TOKEN})$")
_CONTENT_ID = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]{1,200}$")  # printable ASCII without < and >
_MESSAGE_ID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[\x21-\x3b\x3d\x3f-\x7e]{1,250}>$")  # 255 in all
_BASE64_SPACE = re.compile(r"[\r\n\t ]")

MAX_NAME = 200  # a display name's characters
MAX_HEADERS = 50
MAX_HEADER_VALUE = 998  # RFC 5322 line length
MAX_ATTACHMENTS = 100
MAX_FILENAME = 255
# headers the relay or another field owns: the fields of the request (From, To, ...), the MIME
# structure, and what the relay adds itself (signatures, trace, the return path, unsubscribe)
OWNED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "sender",
        "mime-version",
        "return-path",
        "received",
        "dkim-signature",
        "domainkey-signature",
        "authentication-results",
        "received-spf",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
    }
)
OWNED_PREFIXES = ("content-", "resent-", "arc-", "x-donebox-")


@dataclass(frozen=True)
class Mailbox:
    """An address with an optional display name; ``address`` as the envelope uses it."""

    address: str
    name: str = ""
    utf8: bool = False  # a non-ASCII local part: the message needs SMTPUTF8

    def header(self) -> Address:
        """The mailbox as an email.headerregistry.Address."""
        local, _, domain = self.address.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)


@dataclass(frozen=True)
class Attachment:
    """A decoded attachment; with ``content_id`` an inline part the HTML shows by ``cid:``."""

    filename: str
    maintype: str
    subtype: str
    data: bytes
    content_id: str = ""


def _text(where: str, value, limit: int, *, one_line: bool = True) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{where} must be a string")
    if len(value) > limit:
        raise RequestError(f"{where} is longer than {limit} characters")
    if one_line and ("\r" in value or "\n" in value):
        raise RequestError(f"{where} must be one line (no CR or LF)")
    return value


def mailbox(where: str, value) -> Mailbox:
    """One mailbox from ``"addr"``, ``"Name <addr>"`` or ``{"email": ..., "name": ...}``."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"email", "name"})
        if unknown:
            raise RequestError(f"{where} has unknown key(s): {', '.join(unknown)} (email, name)")
        if "email" not in value:
            raise RequestError(f"{where}.email is required")
        address = _text(f"{where}.email", value["email"], 320).strip()
        name = _text(f"{where}.name", value.get("name") or "", MAX_NAME).strip()
    else:
        raw = _text(where, value, 320 + MAX_NAME + 5, one_line=False)  # refused below, as not an address
        named = _NAMED.match(raw)
        name, address = (named.group(1).strip(), named.group(2).strip()) if named else ("", raw.strip())
    if not ADDRESS.match(address) or len(address) > 320:
        raise RequestError(f"{where} is not an email address: {address[:80]!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):  # CR and LF among them
        raise RequestError(f"{where}: the name has a control character")
    local = address.rpartition("@")[0]
    try:
        address = ascii_address(address) if local.isascii() else address
    except RenderError as e:
        raise RequestError(f"{where}: {e}") from None
    return Mailbox(address, name, not local.isascii())


def mailboxes(where: str, value, *, most: int) -> list[Mailbox]:
    """A string or a list of mailboxes (``where[i]`` names a bad one); at most ``most``."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [mailbox(where, value)]
    if len(value) > most:
        raise RequestError(f"{where} has {len(value)} addresses, more than {most}")
    return [mailbox(f"{where}[{i}]", v) for i, v in enumerate(value)]


def headers(value) -> dict[str, str]:
    """The custom headers of ``{"Name": "value"}``: valid field names, one-line values, none owned."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError('headers must be a JSON object of "Name": "value"')
    if len(value) > MAX_HEADERS:
        raise RequestError(f"headers has {len(value)} headers, more than {MAX_HEADERS}")
    out, seen = {}, set()
    for name, v in value.items():
        where = f"headers.{name[:80]}"
        if not _FIELD_NAME.match(name):
            raise RequestError(f"{where} is not a header field name (printable ASCII, no colon or space)")
        low = name.lower()
        if low in OWNED_HEADERS or low.startswith(OWNED_PREFIXES):
            raise RequestError(f"{where} is set by donebox or by its own field, not as a custom header")
        if low in seen:
            raise RequestError(f"{where} is given twice (header names are case-insensitive)")
        seen.add(low)
        v = _text(where, v, MAX_HEADER_VALUE)
        if low == "message-id" and not (_MESSAGE_ID.match(v.strip()) and len(v.strip()) <= 255):
            raise RequestError(f"{where} must be <id@domain> in printable ASCII")
        out[name] = v.strip() if low == "message-id" else v
    return out


def _base64(where: str, value, budget: int, limit: int) -> bytes:
    if not isinstance(value, str):
        raise RequestError(f"{where} must be a base64 string")
    compact = _BASE64_SPACE.sub("", value)
    if len(compact) // 4 * 3 - 2 > budget:  # past it even with the most padding: not decoded at all
        raise _too_large(where, limit)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where} is not valid base64") from None


def _too_large(where: str, limit: int) -> RequestError:
    return RequestError(f"{where} takes the message past MAX_MESSAGE_BYTES ({limit} bytes)", 413)


def attachments(value, *, budget: int, limit: int = 0) -> list[Attachment]:
    """The decoded attachments; ``budget`` is how many bytes they may take in all (RequestError 413
    naming the first past it and ``limit``, the message's)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError("attachments must be a list of objects")
    if len(value) > MAX_ATTACHMENTS:
        raise RequestError(f"attachments has {len(value)} items, more than {MAX_ATTACHMENTS}")
    out, cids = [], set()
    for i, item in enumerate(value):
        where = f"attachments[{i}]"
        if not isinstance(item, dict):
            raise RequestError(f"{where} must be an object with filename, content_type and content")
        unknown = sorted(set(item) - {"filename", "content_type", "content", "content_id"})
        if unknown:
            raise RequestError(f"{where} has unknown key(s): {', '.join(unknown)}")
        for key in ("filename", "content"):
            if key not in item:
                raise RequestError(f"{where}.{key} is required")
        filename = _text(f"{where}.filename", item["filename"], MAX_FILENAME).strip()
        if not filename or any(ord(c) < 32 or ord(c) == 127 for c in filename):
            raise RequestError(f"{where}.filename must be a file name (no control characters)")
        ctype = _text(f"{where}.content_type", item.get("content_type") or "application/octet-stream", 129)
        media = _MEDIA_TYPE.match(ctype.strip())
        if not media:
            raise RequestError(f"{where}.content_type must be type/subtype, e.g. application/pdf")
        maintype, subtype = media.group(1).lower(), media.group(2).lower()
        if maintype in ("multipart", "message"):
            raise RequestError(f"{where}.content_type {maintype}/* cannot be attached as bytes")
        cid = ""
        if item.get("content_id") is not None:
            cid = _text(f"{where}.content_id", item["content_id"], 202).strip().removeprefix("<")
            cid = cid.removesuffix(">")
            if not _CONTENT_ID.match(cid):
                raise RequestError(f"{where}.content_id must be printable ASCII without spaces or <>")
            if cid in cids:
                raise RequestError(f"{where}.content_id {cid!r} is given twice")
            cids.add(cid)
        data = _base64(f"{where}.content", item["content"], budget, limit)
        if len(data) > budget:
            raise _too_large(f"{where}.content", limit)
        budget -= len(data)
        out.append(Attachment(filename, maintype, subtype, data, cid))
    return out


@dataclass(frozen=True)
class Parts:
    """What a composed message is made of, checked."""

    sender: Mailbox
    to: list[Mailbox]
    cc: list[Mailbox]
    reply_to: list[Mailbox]
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    attachments: list[Attachment]


def _file(pol, a: Attachment) -> MIMEPart:
    part = MIMEPart(policy=pol)
    if a.content_id:
        part.set_content(
            a.data, a.maintype, a.subtype, cid=f"<{a.content_id}>", filename=a.filename, disposition="inline"
        )
    else:
        part.set_content(a.data, a.maintype, a.subtype, filename=a.filename, disposition="attachment")
    return part


def _container(msg: MIMEPart, subtype: str, parts: list[MIMEPart], **params: str) -> MIMEPart:
    msg["Content-Type"] = f"multipart/{subtype}"
    for name, value in params.items():
        msg.set_param(name, value)
    for part in parts:
        msg.attach(part)
    return msg


def build(p: Parts) -> bytes:
    """The message's bytes (CRLF lines; SMTPUTF8 only when an address needs it): text and html as
    alternatives, inside related with the inline parts, inside mixed with the attachments."""
    utf8 = any(m.utf8 for m in (p.sender, *p.to, *p.cc, *p.reply_to))
    pol = policy.SMTPUTF8 if utf8 else policy.SMTP
    msg = EmailMessage(policy=pol)
    msg["From"] = p.sender.header()
    msg["To"] = [m.header() for m in p.to]
    if p.cc:
        msg["Cc"] = [m.header() for m in p.cc]
    if p.reply_to:
        msg["Reply-To"] = [m.header() for m in p.reply_to]
    msg["Subject"] = p.subject
    for name, value in p.headers.items():
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    inline = [_file(pol, a) for a in p.attachments if a.content_id]
    files = [_file(pol, a) for a in p.attachments if not a.content_id]
    # the innermost container first; the outermost is the message itself (its headers above)
    body = msg if not (inline or files) else MIMEPart(policy=pol)
    body.set_content(p.text)
    if p.html:
        body.add_alternative(p.html, subtype="html")
    if inline:
        related = msg if not files else MIMEPart(policy=pol)
        body = _container(related, "related", [body, *inline], type=body.get_content_type())
    if files:
        _container(msg, "mixed", [body, *files])
    return msg.as_bytes()
