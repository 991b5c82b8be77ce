"""One MIME leaf as its sender wrote it: bytes, charset, filename, disposition, Content-ID.

flanker (parsers.message) and the fallback splitter (parsers.mime_fallback) find the parts;
this reads each one with the stdlib ``email`` package (compat32: it records defects instead
of raising), which decodes RFC 2231 parameters (charset, language, continuations) and works on
the part's own bytes, so an 8-bit part is decoded with the charset *it* declares. Text is
decoded by a fallback chain that says in a note what it did. Pure, never raises.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from charset_normalizer import from_bytes

# A declared charset that fails strictly is retried with the superset senders really meant.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "iso-2022-jp": "iso2022_jp_ext",
}
_DETECT_MIN = 8  # non-ASCII bytes below which a detector's guess is no better than windows-1252
_DETECT_BYTES = 65536  # bytes a detector reads
# Latin-script single-byte guesses a detector makes on mostly-ASCII text: windows-1252 (what
# such mail is, in practice) is preferred to them when it decodes the bytes.
_SINGLE_BYTE_LATIN = frozenset(
    "cp1250 cp1252 cp1254 cp1257 cp1258 latin_1 iso8859_2 iso8859_3 iso8859_4 iso8859_9 iso8859_10 "
    "iso8859_13 iso8859_14 iso8859_15 iso8859_16 mac_roman mac_latin2 mac_iceland mac_turkish".split()
)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_:.-]{1,40})""", re.I)
# after a newline: a literal prefix the regex engine can scan for (a delimiter line never opens the message)
_PADDED = re.compile(rb"\n(--[^\r\n]{1,74}?)[ \t]+(?=\r?\n|\r?\Z)")
_BOUNDARY = re.compile(rb'(?i)boundary\s*=\s*("[^"\r\n]{1,72}"|[^\s;]{1,72})')
_SURROGATE = re.compile("[\udc80-\udcff]")  # a raw 8-bit byte held by the surrogateescape handler
_BLANK = re.compile(rb"\r?\n\r?\n")
_NON_ASCII = re.compile(rb"[\x80-\xff]")


@dataclass(frozen=True)
class Leaf:
    """One non-multipart part: its type, charset, filename, disposition, decoded bytes and depth."""

    content_type: str
    charset: str
    filename: str
    disposition: str
    payload: bytes = field(repr=False)
    depth: int = 0
    content_id: str = ""
    subject: str = ""  # of an enclosed message (message/rfc822): its fallback filename


def header_text(value) -> str:
    """A header value with RFC 2047 words decoded; undecodable words are kept as written."""
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:  # noqa: BLE001 - hostile encoded words, unknown charsets
        return str(value)


def _canonical(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _first_decoding(data: bytes, candidates, notes: list[str], why: str) -> str | None:
    """``data`` decoded by the first of ``candidates`` that takes it (noted with ``why``), or None."""
    for candidate in candidates:
        try:
            text = data.decode(candidate)
        except UnicodeDecodeError:
            continue
        notes.append(f"{why}: read as {candidate}")
        return text
    return None


def decode_bytes(data: bytes, charset: str, notes: list[str], what: str = "text") -> str:
    """``data`` decoded with its declared charset, else by a fallback chain that is noted.

    The chain: the declared charset, strictly; the superset senders mean by it (gb2312 is
    gb18030 in practice, us-ascii is often UTF-8); UTF-8; a
    detected charset (charset-normalizer, when there are enough 8-bit bytes to tell);
    windows-1252; Latin-1, which decodes anything.
    """
    declared = (charset or "").strip().strip('"').strip("'").lower()
    name = _canonical(declared) if declared else None
    if declared and name is None:
        notes.append(f"unknown charset {declared[:40]!r} in {what}")
    if name is not None:
        try:
            return data.decode(name)
        except UnicodeDecodeError:
            pass
    elif not _NON_ASCII.search(data):
        return data.decode("ascii")
    tried = [c for c in (_SUPERSETS.get(declared), "utf-8") if c and _canonical(c) != name]
    why = f"{what} is not valid {declared}" if name else f"{what} declares no known charset"
    text = _first_decoding(data, tried, notes, why)
    if text is not None:
        return text
    meta = _META_CHARSET.search(data[:4096]) if what == "html" else None
    named = _canonical(meta.group(1).decode("ascii").lower()) if meta else None
    if named and named != name:
        try:
            text = data.decode(named)
        except UnicodeDecodeError:
            pass
        else:
            notes.append(f"{why}: read as {named} (the HTML's meta charset)")
            return text
    utf8 = data.decode("utf-8", "replace")
    bad = utf8.count("\ufffd")
    if len(re.findall(r"[^\x00-\x7f\ufffd]", utf8)) >= 4 * bad:  # UTF-8 with a few broken bytes
        notes.append(f"{why}: read as utf-8, {bad} undecodable byte sequence(s) replaced")
        return utf8
    if len(_NON_ASCII.findall(data[:_DETECT_BYTES])) >= _DETECT_MIN:
        guess = _detect(data[:_DETECT_BYTES])
        if guess is not None and not (guess in _SINGLE_BYTE_LATIN and _decodes(data, "cp1252")):
            text = data.decode(guess, "replace")
            notes.append(f"{why}: read as {guess} (detected)")
            return text
    return _first_decoding(data, ("windows-1252", "latin-1"), notes, why)  # latin-1 decodes every byte


def _decodes(data: bytes, charset: str) -> bool:
    try:
        data.decode(charset)
    except UnicodeDecodeError:
        return False
    return True


def _detect(sample: bytes) -> str | None:
    try:
        best = from_bytes(sample).best()
    except Exception:  # noqa: BLE001 - a detector's failure is no reason to lose the text
        return None
    return _canonical(best.encoding) if best is not None else None


def fix_text(value: str, notes: list[str] | None = None, what: str = "header") -> str:
    """A header or filename with raw 8-bit bytes (held as surrogates) decoded: UTF-8, else windows-1252."""
    if not _SURROGATE.search(value):
        return value
    raw = value.encode("utf-8", "surrogateescape")
    for candidate in ("utf-8", "windows-1252", "latin-1"):
        try:
            text = raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        if notes is not None and candidate != "utf-8":
            notes.append(f"raw 8-bit bytes in a {what}: read as {candidate}")
        return text
    return raw.decode("latin-1")  # pragma: no cover - latin-1 decodes every byte


def normalize_raw(raw: bytes, notes: list[str]) -> bytes:
    """A message whose lines end in a bare CR (old Mac mail) with CRLF endings instead; others as given.

    A UTF-8 byte-order mark before the first header is dropped (noted): no header parser reads past it.
    """
    if raw.startswith(codecs.BOM_UTF8):
        notes.append("a UTF-8 byte-order mark before the headers: dropped")
        raw = raw[len(codecs.BOM_UTF8) :]
    first = re.search(rb"[\r\n]", raw[:65536])
    if first is None or raw[first.start() : first.start() + 2] in (b"\r\n",) or raw[first.start()] == 0x0A:
        return raw
    notes.append("bare-CR line endings: read as CRLF")
    return re.sub(rb"\r(?!\n)", b"\r\n", raw)


def strip_transport_padding(raw: bytes) -> bytes:
    """Delimiter lines with trailing white space (RFC 2046 transport padding) without it.

    flanker does not see a padded delimiter line as one, so a part would run on into the next.
    """
    if not _PADDED.search(raw):
        return raw
    boundaries = {b.strip(b'"') for b in _BOUNDARY.findall(raw)}
    return _PADDED.sub(
        lambda m: b"\n" + m.group(1) if _is_delimiter(m.group(1), boundaries) else m.group(0), raw
    )


def _is_delimiter(line: bytes, boundaries: set[bytes]) -> bool:
    return line[2:] in boundaries or (line.endswith(b"--") and line[2:-2] in boundaries)


def _split_entity(entity: bytes) -> tuple[bytes, bytes]:
    """(header block with its blank line, body) of one entity."""
    if entity.startswith((b"\n", b"\r\n")):  # no headers at all (a digest's enclosed message)
        return b"", entity[1:] if entity.startswith(b"\n") else entity[2:]
    m = _BLANK.search(entity)
    return (entity[: m.end()], entity[m.end() :]) if m else (entity, b"")


def _entity_message(entity: bytes):
    """The stdlib's Message of ``entity``: headers parsed, the body set unparsed (it is never walked)."""
    head, body = _split_entity(entity)
    msg = BytesHeaderParser(policy=compat32).parsebytes(head)
    # lines after a line that is no header: the body starts there (the raw payload: get_payload()
    # would decode its 8-bit bytes with the part's charset)
    leftover = msg._payload
    if isinstance(leftover, str) and leftover:
        body = leftover.encode("utf-8", "surrogateescape") + body
    return msg, body


def _transfer_decoded(body: bytes, cte: str) -> bytes:
    cte = cte.strip().lower()
    try:
        if cte == "base64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==", validate=False)
        if cte == "quoted-printable":
            return quopri.decodestring(body)
    except (binascii.Error, ValueError):
        pass
    return body


def _subject_of(inner: bytes) -> str:
    try:
        head = BytesHeaderParser(policy=compat32).parsebytes(_BLANK.split(inner, maxsplit=1)[0] + b"\n\n")
        subject = next((str(v) for k, v in head.raw_items() if k.lower() == "subject"), "")
        return re.sub(r"\r?\n(?=[ \t])", "", header_text(fix_text(subject))).strip()
    except Exception:  # noqa: BLE001 - header parsing of hostile bytes
        return ""


def _filename(msg) -> str:
    """RFC 2231 (charset, language, continuations) and RFC 2047 decoded; raw 8-bit bytes as UTF-8."""
    raw = [(k, v) for k, v in msg.raw_items() if k.lower() in ("content-type", "content-disposition")]
    if any(isinstance(v, str) and _SURROGATE.search(v) for _, v in raw):
        clean = Message()  # the stdlib reads surrogates in a parameter as U+FFFD: give it text
        for k, v in raw:
            clean[k] = fix_text(str(v))
        msg = clean
    return msg.get_filename() or ""


def read_leaf(entity: bytes, depth: int, notes: list[str], default_type: str = "text/plain") -> Leaf:
    """The part whose bytes (headers and body) are ``entity``; one bad part is noted, never raised.

    ``default_type`` is the type of a part with no Content-Type (message/rfc822 in a multipart/digest).
    """
    try:
        msg, body = _entity_message(entity)
        msg.set_default_type(default_type)
        ctype, charset = msg.get_content_type(), msg.get_content_charset() or ""
        filename = _filename(msg)
        disposition = (msg.get_content_disposition() or "").lower()
        content_id = str(msg.get("Content-ID", "") or "").strip().strip("<>").strip()
        if ctype.startswith("message/"):  # the stdlib parses these into sub-messages: keep the bytes
            payload = _transfer_decoded(body, str(msg.get("Content-Transfer-Encoding", "")))
            subject = _subject_of(payload) if ctype in ("message/rfc822", "message/news") else ""
        else:  # transfer decoding (base64, quoted-printable, uuencode) as the stdlib does it
            msg.set_payload(body.decode("ascii", "surrogateescape"))
            payload, subject = msg.get_payload(decode=True), ""
    except Exception as e:  # noqa: BLE001 - one bad leaf is noted, the rest still count
        notes.append(f"undecodable part: {type(e).__name__}")
        return Leaf("application/octet-stream", "", "", "attachment", entity, depth)
    if not isinstance(payload, bytes):
        payload = b""
    if filename:
        filename = fix_text(header_text(filename), notes, "filename").strip()
    return Leaf(ctype, charset, filename, disposition, payload, depth, fix_text(content_id), subject)
