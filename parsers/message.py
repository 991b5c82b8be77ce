"""Raw RFC 5322 bytes -> one normalized, frozen ``InboundEmail``.

Pure and lenient: flanker does the MIME work; anything it cannot decode is
recorded in ``notes`` instead of raised. Nothing here reads the clock, the
network or the database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property

from flanker import mime
from selectolax.lexbor import LexborHTMLParser

from parsers import limits
from parsers.filenames import safe_filename
from parsers.html_bounds import bound_html
from parsers.inline import cid_references, inline_cid
from parsers.mime_fallback import split_mime
from parsers.mime_parts import (
    decode_bytes,
    fix_text,
    header_text,
    normalize_raw,
    read_leaf,
    strip_transport_padding,
)

MAX_DEPTH = limits.MAX_MIME_DEPTH  # MIME nesting deeper than this is not walked
MAX_PARTS = limits.MAX_MIME_PARTS  # parts past this many are not read

_MSGID = re.compile(r"<[^<>\s]{1,900}>")
# A bare addr-spec of dot-atoms ("reply+token@reply.example.com", an envelope recipient): what
# getaddresses makes of it is the address itself, so it is taken as is, at a tenth of the cost.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
# Any addr-spec inside a list the general parser cannot read (a last resort, no display names).
_ADDR_SPEC = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_BLOCK_TAGS = frozenset(
    "p div br li tr h1 h2 h3 h4 h5 h6 blockquote pre table ul ol hr section article header footer".split()
)
_CRUDE_TAG = re.compile(r"<[^<>]*>")  # no "<" inside, so an unclosed one costs no rescan
_SKIP_TAGS = frozenset(("style", "script", "head", "title", "template"))


@dataclass(frozen=True)
class Attachment:
    """One attached file: name, declared type, size in bytes and the content.

    ``filename`` is always safe to store and show (``parsers.filenames.safe_filename`` of the
    name given); ``raw_filename`` keeps the name as the sender wrote it.
    """

    filename: str
    content_type: str
    size: int
    content: bytes = field(repr=False)
    inline: bool = False  # shown inside the HTML by cid: (parsers.inline decides): no attachment
    content_id: str = ""  # without angle brackets, as ``cid:`` URLs name it
    raw_filename: str = ""  # as received; '' when constructed: the ``filename`` given

    def __post_init__(self):
        raw = self.raw_filename or self.filename or ""
        object.__setattr__(self, "raw_filename", raw)
        object.__setattr__(self, "filename", safe_filename(self.filename or raw, self.content_type))


@dataclass(frozen=True)
class InboundEmail:
    """A received email in one closed vocabulary, whatever path it came by."""

    from_addr: str = ""
    from_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    subject: str = ""
    date: datetime | None = None
    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    text: str | None = None
    html: str | None = None
    text_from_html: bool = False  # ``text`` was derived from ``html`` (the mail had no text part)
    # every file part in MIME order, inline parts (``Attachment.inline``) among them: a part's
    # position here is its index (GET /api/inbound/{id}/attachments/{index}); ``attached`` and
    # ``inline_parts`` tell the two kinds apart
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    # the provider's own verdicts (never headers inside the message): pass | fail | softfail | neutral
    # | none | ""; which headers to believe is app/inbound/authentication.py's decision
    spf: str = ""
    dkim: str = ""
    dmarc: str = ""
    envelope_from: str = ""  # SMTP MAIL FROM as the provider reports it: the address SPF checked
    dkim_domains: tuple[str, ...] = ()  # domains whose DKIM signature passed, when the provider names them
    provider: str = ""
    provider_id: str = ""
    envelope_to: tuple[str, ...] = ()
    mailbox_hash: str = ""  # the +hash of the recipient address, as a provider reports it (Postmark)
    notes: tuple[str, ...] = ()

    @property
    def attached(self) -> tuple[Attachment, ...]:
        """The attachments proper: the file parts that are not inline parts."""
        return tuple(a for a in self.attachments if not a.inline)

    @property
    def inline_parts(self) -> tuple[Attachment, ...]:
        """The parts shown inside the HTML by ``cid:`` (``parsers.inline`` decides which)."""
        return tuple(a for a in self.attachments if a.inline)

    def header(self, name: str) -> str:
        """The first header called ``name`` (case-insensitive), or ''."""
        return self._first_values.get(name.lower(), "")

    @cached_property
    def _first_values(self) -> dict[str, str]:
        return first_values(self.headers)


def first_values(headers) -> dict[str, str]:
    """The first value of each field name (lower-cased) in (name, value) pairs: one pass, where
    processing asks a message for a dozen of its fields."""
    return {k.lower(): v for k, v in reversed(headers)}


def address_key(addr: str) -> str:
    """What identifies the mailbox ``addr``: the one rule wherever donebox decides who is who.

    Addresses are kept as received (RFC 5321: the local part is the receiving host's to
    interpret); they are compared by this key. Domains are case-insensitive (RFC 5321 2.4); our
    own rule folds the local part too: no mail system we deliver to tells ``Ada`` from ``ada``,
    and members' addresses are stored folded (app.accounts.users.normalize_email).
    """
    return (addr or "").strip().lower()


def mailbox_key(value: str) -> str:
    """``value``'s ``address_key`` when it looks like one mailbox (local@domain.tld, at most 320
    characters, no spaces, brackets or separators); '' otherwise."""
    key = address_key(value)
    local, at, domain = key.partition("@")
    if not at or not local or "." not in domain or len(key) > 320 or any(c in key for c in " <>\r\n,;"):
        return ""
    return key


def addresses(value: str) -> list[tuple[str, str]]:
    """Parse an address-list header into ``(name, addr)`` pairs, addresses as received (compare
    them by ``address_key``).

    Lenient where real mail is wrong, one element (between top-level commas) at a time: a
    display name that is itself an address (``eve@example.com <frank@example.com>``, also
    after RFC 2047 decoding) names the bracketed address only; ``Big Bug bb@bug.com`` is the
    name ``Big Bug`` and ``bb@bug.com``; two addresses separated by a space are two; what has
    no local part or no domain (``<Undisclosed-Recipient:@host;>``) is no address. Encoded
    words in display names are decoded.
    """
    plain = (value or "").strip()
    if _PLAIN_ADDRESS.fullmatch(plain):
        return [("", plain)]
    out = []
    for element in _elements(plain[: limits.MAX_ADDRESS_CHARS]):
        out += _element_addresses(element)
    return out


def _elements(value: str) -> list[str]:
    """``value`` split at commas outside quotes, comments and angle brackets; group names
    (``team: a@x, b@y;``) dropped."""
    out, current = [], []
    for m in _LIST_TOKEN.finditer(value):
        token = m.group(0)
        if token in (",", ";"):
            out.append("".join(current))
            current = []
        elif token == ":" and not any("@" in t or "<" in t for t in current):
            current = []  # a group's display name
        else:
            current.append(token)
    out.append("".join(current))
    return [e.strip() for e in out if e.strip()]


# one token of an address list: a quoted string, a comment (one level of nesting), an angle
# address, a separator, or a run of anything else; unclosed ones run to the end
_LIST_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*(?:"|$)|\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*(?:\)|$)|<[^<>]*(?:>|$)|[,;:]|[^",;:(<]+|[(<]',
    re.S,
)


_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")  # an RFC 5322 comment (not nested)
_BRACKETED = re.compile(r"(.*?)\s*<([^<>]*)>\s*(\(.*\))?", re.S)
_VALID = re.compile(r'(?:"[^"\r\n]*"|[^\s@<>()",;:"]+)@[^\s@<>()",;:]+')


def _element_addresses(element: str) -> list[tuple[str, str]]:
    bracketed = _BRACKETED.fullmatch(element)
    if bracketed:  # name <addr>: whatever the name looks like, the address is the bracketed one
        addr = _COMMENT.sub("", bracketed.group(2)).rsplit(":", 1)[-1]  # an obsolete route @a,@b:addr
        addr = "".join(addr.split())
        name = bracketed.group(1).strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        else:
            name = " ".join(_COMMENT.sub(" ", name).split())
        return [(header_text(name) if "=?" in name else name, addr)] if _VALID.fullmatch(addr) else []
    try:
        pairs = getaddresses([element])
    except (RecursionError, ValueError, IndexError):  # the stdlib recurses per comma in some lists
        pairs = []
    if len(pairs) == 1 and _VALID.fullmatch(pairs[0][1].strip()):
        name = pairs[0][0].strip()
        return [(header_text(name) if "=?" in name else name, pairs[0][1].strip())]
    words = element.split()
    specs = [w for w in words if _ADDR_SPEC.fullmatch(w)]
    if len(specs) == 1:  # Big Bug bb@bug.com
        return [(" ".join(w for w in words if w is not specs[0]), specs[0])]
    return [("", a) for a in specs]


def message_ids(value: str) -> tuple[str, ...]:
    """All ``<id>`` tokens in a Message-ID / In-Reply-To / References value."""
    return tuple(_MSGID.findall(value or ""))


def headers_digest(raw: bytes) -> str:
    """sha256 of the raw header block: a dedupe key for mail with no Message-ID."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    return hashlib.sha256(head).hexdigest()


# Header fields a receiving server adds on each delivery (trace fields, RFC 5321 4.4, and the
# verdicts and stamps providers write beside them): left out of the content fingerprint, so the
# same mail handed over twice (an MTA retry reaching a provider again) fingerprints the same.
TRACE_FIELDS = frozenset(
    b"received return-path delivered-to x-original-to envelope-to x-envelope-from x-envelope-to"
    b" received-spf authentication-results arc-seal arc-message-signature arc-authentication-results"
    b" x-received x-forwarded-to x-forwarded-for".split()
)
TRACE_PREFIXES = (b"x-ses-", b"x-mailgun-", b"x-spam-", b"x-gm-", b"x-google-")  # provider stamps
_FIRST_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:", re.MULTILINE)  # a header line: name, colon


def mime_fingerprint(raw: bytes) -> str:
    """sha256 of a message's content: from its first header line on (an mbox ``From`` line or
    blank lines before it are left out), line endings as LF, trace fields (``TRACE_FIELDS``)
    left out, trailing newlines ignored. Equal for a provider's retries and for one mail
    delivered twice; different when any other header or the body differs."""
    text = raw.replace(b"\r\n", b"\n")
    first = _FIRST_FIELD.search(text, 0, 65536)
    if first is not None:
        text = text[first.start() :]
    head, sep, body = text.partition(b"\n\n")
    h = hashlib.sha256()
    keep = True
    for line in head.split(b"\n"):
        if line[:1] not in (b" ", b"\t"):  # a new field (else a continuation of the last one)
            name = line.split(b":", 1)[0].strip().lower()
            keep = name not in TRACE_FIELDS and not name.startswith(TRACE_PREFIXES)
        if keep:
            h.update(line + b"\n")
    h.update(sep)
    h.update(body.rstrip(b"\n"))
    return h.hexdigest()


def _head(raw: bytes):
    head = re.split(rb"\r?\n\r?\n", raw[:262144], maxsplit=1)[0] + b"\n\n"
    try:
        return BytesHeaderParser(policy=compat32).parsebytes(head)
    except Exception:  # noqa: BLE001 - header parsing of hostile bytes
        return None


def raw_message_id(raw: bytes) -> str:
    """The Message-ID of raw message bytes (folded headers allowed), or ''."""
    head = _head(raw)
    value = head.get("Message-ID", "") if head is not None else ""
    return (message_ids(str(value)) or ("",))[0]


def raw_envelope_to(raw: bytes) -> tuple[str, ...]:
    """Envelope recipients a delivering server recorded (Delivered-To, X-Original-To), or ()."""
    head = _head(raw)
    if head is None:
        return ()
    values = [str(v) for name in ("Delivered-To", "X-Original-To") for v in head.get_all(name) or ()]
    return tuple(dict.fromkeys(a for _, a in addresses(",".join(values))))


def looks_like_message(raw: bytes) -> str | None:
    """Why ``raw`` is not an RFC 5322 message, or None when it plausibly is one."""
    if not raw.strip():
        return "empty body"
    head = re.split(rb"\r?\n\r?\n", raw[:65536], maxsplit=1)[0]
    lines = head.splitlines()
    if not lines or not re.match(rb"^[!-9;-~]+:", lines[0]):
        return "the body does not start with a header field"
    if not re.search(rb"(?im)^from:", head):
        return "no From header"
    return None


def html_to_text(html: str, notes: list[str] | None = None) -> str:
    """Readable plain text of an HTML body: block elements become line breaks, scripts vanish.

    The markup is first held to the budgets of ``parsers.limits``; what was cut is appended to
    ``notes`` when given.
    """
    bounded = bound_html(html)
    if notes is not None:
        notes.extend(bounded.notes)
    try:
        tree = LexborHTMLParser(bounded.html)
    except Exception:  # noqa: BLE001 - hostile markup: fall back to crude tag stripping
        return _CRUDE_TAG.sub("", bounded.html)
    for node in tree.css(",".join(_SKIP_TAGS)):
        node.decompose()
    out: list[str] = []
    if tree.root is not None:
        for node in tree.root.traverse(include_text=True):
            if node.tag == "-text":
                out.append(node.text_content or "")
            elif node.tag in _BLOCK_TAGS and (node.tag == "br" or (out and not out[-1].endswith("\n"))):
                out.append("\n")
    text = "".join(out).replace("\xa0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def decode_text(data: bytes, charset: str, notes: list[str], what: str = "text") -> str:
    """``data`` decoded with its declared charset; an unknown or wrong charset is noted, never raised."""
    return decode_bytes(data, charset, notes, what)


# the date every mail program writes ("Mon, 23 Nov 2026 16:53:05 +0000"), read without the
# email package's general parse, which reads it the same way at several times the cost
_PLAIN_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" ([12]\d{3}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTH = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def _plain_date(value: str) -> datetime | None:
    """``parsedate_to_datetime(value)`` for a date in the usual form, or None for any other value
    (and for one whose numbers are out of range, which the general parse then refuses)."""
    m = _PLAIN_DATE.fullmatch(value)
    if m is None:
        return None
    day, month, year, hh, mm, ss, sign, tzh, tzm = m.groups()
    offset = (int(tzh) * 60 + int(tzm)) * 60
    if sign == "-":
        if not offset:
            return None  # "-0000": no zone known, which the general parse reads as naive
        offset = -offset
    try:
        zone = UTC if not offset else timezone(timedelta(seconds=offset))
        return datetime(int(year), _MONTH[month], int(day), int(hh), int(mm), int(ss), tzinfo=zone)
    except ValueError:
        return None


def parse_date(value: str, notes: list[str]) -> datetime | None:
    """An RFC 5322 date as aware UTC, or None (noted) when it is unparseable."""
    if not value:
        return None
    d = _plain_date(value)
    if d is not None:
        return d.astimezone(UTC)
    try:
        d = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        notes.append("unparseable Date header")
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.astimezone(UTC)


def _walk(root, notes: list[str]):
    """Yield ``(part, depth, in a digest)`` depth-first, bounded in depth and count.

    An enclosed message is a leaf: it is an attachment, never walked into.
    """
    stack = [(root, 0, False)]
    seen = 0
    while stack:
        part, depth, in_digest = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            notes.append(f"more than {MAX_PARTS} MIME parts: the rest were not read")
            return
        yield part, depth, in_digest
        if part.content_type.is_multipart():
            if depth >= MAX_DEPTH:
                notes.append(f"MIME nesting deeper than {MAX_DEPTH}: not walked further")
                continue
            digest = part.content_type.sub == "digest"
            stack.extend((p, depth + 1, digest) for p in reversed(part.parts))


def _header_text(value) -> str:
    """A flanker header value as text, parameters included (flanker's str() drops them)."""
    if isinstance(value, str):
        return fix_text(value)
    params = getattr(value, "params", None)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        base, params = value[0], value[1]
    else:
        base = str(value)
    if not params:
        return fix_text(str(base))
    return fix_text(str(base) + "".join(f'; {k}="{v}"' for k, v in params.items()))


def parse_mime(raw: bytes, *, provider: str = "", provider_id: str = "") -> InboundEmail:
    """Parse raw message bytes; never raises, records what went wrong in ``notes``."""
    notes: list[str] = []
    raw = normalize_raw(raw, notes)
    prelude = list(notes)
    try:
        headers, text, html, attachments = _read_flanker(raw, notes)
    except Exception as e:  # noqa: BLE001 - flanker raises many kinds on hostile input: read it as far as is safe
        notes = prelude + [f"MIME parse failed ({type(e).__name__}): read as far as is safe"]
        return _parse_fallback(raw, notes, provider, provider_id)
    return _build(headers, text, html, attachments, notes, provider, provider_id, _head(raw))


def _read_flanker(raw: bytes, notes: list[str]):
    """(headers, text, html, attachments) as flanker reads ``raw``; raises what flanker raises.

    flanker finds the parts; each is read from its own bytes by ``parsers.mime_parts`` (flanker
    decodes the whole message with one guessed charset). Undecodable bytes stay as surrogates,
    so every part maps back to exactly the bytes it was sent as.
    """
    root = mime.from_string(strip_transport_padding(raw).decode("utf-8", "surrogateescape"))
    headers = []
    for k, v in root.headers.iteritems():
        headers.append((str(k), _header_text(v)))
    leaves = []
    for part, depth, in_digest in _walk(root, notes):
        if part.content_type.is_multipart():
            continue
        container = part._container
        if part is root:  # flanker cuts a single-part body at a boundary-like line; the body is all of it
            entity = raw
        elif container.end < container.start:  # an empty part between two delimiter lines
            continue
        else:
            entity = container.read_message().encode("utf-8", "surrogateescape")
        leaves.append(read_leaf(entity, depth, notes, "message/rfc822" if in_digest else "text/plain"))
    return (headers, *_bodies(leaves, notes))


def _bodies(leaves, notes: list[str]):
    """(text, html, attachments) of a message's leaves in order: the first text/plain and
    text/html that are not attachments are its bodies; an enclosed message is an attachment
    named after its subject when it has no name; which parts are inline parts (images the HTML
    shows by ``cid:``) is ``parsers.inline``'s rule."""
    text = html = None
    files = []  # (filename, type, payload, Content-ID, disposition) of each file part, in order
    shown = None  # the first named text/plain shown inline: the body of a mail that has no other
    for leaf in leaves:
        named_inline = bool(leaf.filename) and leaf.disposition == "inline" and leaf.depth > 0
        is_body = leaf.disposition != "attachment" and not named_inline
        if named_inline and leaf.content_type == "text/plain" and shown is None:
            shown = (len(files), leaf)
        if is_body and leaf.content_type == "text/plain" and text is None:
            text = decode_text(leaf.payload, leaf.charset, notes)
        elif is_body and leaf.content_type == "text/html" and html is None:
            html = decode_text(leaf.payload, leaf.charset, notes, "html")
        elif leaf.content_type in ("message/rfc822", "message/news"):
            name = leaf.filename or f"{leaf.subject or 'message'}.eml"
            files.append((name, leaf.content_type, leaf.payload, "", ""))
        elif leaf.disposition == "attachment" or leaf.filename or not leaf.content_type.startswith("text/"):
            files.append((leaf.filename, leaf.content_type, leaf.payload, leaf.content_id, leaf.disposition))
    if text is None and html is None and shown is not None:
        index, leaf = shown
        del files[index]
        text = decode_text(leaf.payload, leaf.charset, notes)
        notes.append("the only text is a named part shown inline: read as the body")
    shows = cid_references(html)
    attachments = []
    for name, ctype, payload, cid, disposition in files:
        cid = inline_cid(cid, shows, disposition)
        attachments.append(Attachment(name, ctype, len(payload), payload, inline=bool(cid), content_id=cid))
    return text, html, attachments


def _parse_fallback(raw: bytes, notes: list[str], provider: str, provider_id: str) -> InboundEmail:
    """The message as ``parsers.mime_fallback`` reads it: top-level headers and the parts it reached."""
    found = split_mime(raw)
    notes.extend(found.notes)
    return _build(found.headers, *_bodies(found.leaves, notes), notes, provider, provider_id, _head(raw))


def _build(headers, text, html, attachments, notes, provider, provider_id, head=None) -> InboundEmail:
    """The ``InboundEmail`` of decoded headers and bodies; text is derived from HTML-only mail.

    Address lists are read from the header as written (``head``, the raw header block) when it
    is ASCII, so an encoded display name cannot turn into list syntax once decoded (a comma,
    an address); 8-bit headers are read decoded."""

    def hval(name: str) -> str:
        low = name.lower()
        return next((v for k, v in headers if k.lower() == low), "")

    def aval(name: str) -> str:
        written = head.get(name) if head is not None else None
        if not isinstance(written, str) or not written.isascii():
            return hval(name)
        return written.replace("\r", "").replace("\n", "")

    text_from_html = text is None and html is not None
    if text_from_html:
        text = html_to_text(html, notes)
        notes.append("HTML-only mail: text derived from the HTML")
    from_pairs = addresses(aval("From"))
    from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
    return InboundEmail(
        from_addr=from_addr,
        from_name=from_name,
        to=tuple(a for _, a in addresses(aval("To"))),
        cc=tuple(a for _, a in addresses(aval("Cc"))),
        reply_to=tuple(a for _, a in addresses(aval("Reply-To"))),
        subject=hval("Subject"),
        date=parse_date(hval("Date"), notes),
        message_id=(message_ids(hval("Message-ID")) or ("",))[0],
        in_reply_to=(message_ids(hval("In-Reply-To")) or ("",))[0],
        references=message_ids(hval("References")),
        text=text,
        text_from_html=text_from_html,
        html=html,
        attachments=tuple(attachments),
        headers=tuple(headers),
        provider=provider,
        provider_id=provider_id,
        envelope_to=tuple(a for _, a in addresses(hval("Delivered-To") + "," + hval("X-Original-To"))),
        notes=tuple(notes),
    )
