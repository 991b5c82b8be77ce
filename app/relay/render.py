"""Rendering: a message's context -> Jinja2 templates -> RFC 5322 bytes with a text and an HTML part.

A message's context is made by the builder registered for its kind (``register_context``):
kinds queued with their whole context in the row (API sends, sign-in links, invitations) read it
as stored; the check-in package registers reminders and digests, whose context is read from the
database at send time. ``render_message`` is the one way a stored message becomes text and HTML,
for the relay's pipeline and for the pages that show a message.
"""

from __future__ import annotations

import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.utils import format_datetime, formataddr
from functools import cache, lru_cache
from itertools import repeat

import css_inline
import idna
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlmodel import Session

from app.errors import RenderError, UnregisteredKind
from app.settings import ROOT, Settings

TEMPLATES = ROOT / "templates"


@cache
def environment() -> Environment:
    """The Jinja2 environment for email and web templates, autoescaping HTML. Templates ship
    with the code and are compiled once per process: ``auto_reload`` off, or every render asked
    the file system whether each template it uses (the kind's, the card it extends, what that
    includes) had changed, a third of a reminder's render (97 -> 68 us)."""
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


@cache
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(load_remote_stylesheets=False)


# CR, LF and every other character str.splitlines() breaks on, plus the remaining C0 controls
_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def _safe_header(value: str) -> str:
    """``value`` unchanged; RenderError if it, or any encoded word in it, holds a line break or NUL."""
    if _BREAKS.search(value):
        raise RenderError("a header value contains a line break or control character")
    if "=?" in value:  # the email package decodes encoded words on assignment: =?UTF-8?Q?=0A?= is a newline
        try:
            decoded = "".join(
                part.decode(charset or "ascii", "replace") if isinstance(part, bytes) else part
                for part, charset in decode_header(value)
            )
        except (HeaderParseError, LookupError) as e:
            raise RenderError(f"a header value has a malformed encoded word: {e}") from e
        if _BREAKS.search(decoded):
            raise RenderError("a header value contains an encoded line break or control character")
    return value


def ascii_address(addr: str, *, utf8_local: bool = False) -> str:
    """``local@domain`` with the domain in IDNA (punycode); RenderError when that is impossible.
    ``utf8_local``: a non-ASCII local part is kept (an envelope address sent with SMTPUTF8)."""
    addr = _safe_header(addr.strip())
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise RenderError(f"not an email address: {addr!r}")
    if not local.isascii() and not utf8_local:
        raise RenderError(f"a non-ASCII local part needs SMTPUTF8, which donebox does not send: {addr!r}")
    try:
        domain = (
            domain.encode("ascii").decode() if domain.isascii() else idna.encode(domain, uts46=True).decode()
        )
    except idna.IDNAError as e:
        raise RenderError(f"not a valid domain in {addr!r}: {e}") from e
    return f"{local}@{domain.lower()}"


def render_parts(template: str, context: dict) -> tuple[str, str]:
    """(text, html) of ``templates/email/<template>.{txt,html}``, CSS inlined."""
    env = environment()
    try:
        text = env.get_template(f"email/{template}.txt").render(context)
        html = env.get_template(f"email/{template}.html").render(context)
    except Exception as e:  # noqa: BLE001 - any template failure is a render failure of this message
        raise RenderError(f"template {template}: {type(e).__name__}: {e}") from e
    return text, _inliner().inline(html)


# ---------------------------------------------------------------- contexts

# builder(session, message row, its stored context, settings) -> the template's context
ContextBuilder = Callable[[Session, object, dict, Settings], dict]


@dataclass(frozen=True)
class Registered:
    """How messages of one kind get their context; ``shared``: the same for every recipient of a
    team (a team's digest of a day), so the pipeline renders it once per batch."""

    builder: ContextBuilder
    shared: bool = False
    # (message row, its context, settings) -> headers of this recipient's own (a shared digest's
    # per-reader Reply-To): called for every message, after the render, with no database
    headers: Callable[[object, dict, Settings], dict[str, str]] | None = None
    # (session, message rows of this kind, settings): reads what the builder would read for each
    # of them in a few set queries, kept in the session (``keep``) for the builder (``kept``)
    prefetch: Callable[[Session, list, Settings], None] | None = None


def stored_context(s: Session, message, stored: dict, settings: Settings) -> dict:
    """The context stored in the row, as it is: for kinds queued with their whole context."""
    return dict(stored)  # a copy: render_message reads ``_track`` from ``stored`` after the builder


# kind -> how its context is made. The kinds below carry their whole context in the row (API and SMTP
# sends, sign-in links, invitations): known here, so every process that delivers knows them
_CONTEXTS: dict[str, Registered] = {kind: Registered(stored_context) for kind in ("api", "signin", "invite")}


def register_context(
    kind: str, builder: ContextBuilder, *, shared: bool = False, headers=None, prefetch=None
) -> None:
    """Make ``builder`` the maker of the context of messages of ``kind`` (a later call replaces it);
    ``headers``: what each recipient's message adds to the context's ``_headers``; ``prefetch``:
    what a batch's messages of the kind need, read at once (Registered)."""
    _CONTEXTS[kind] = Registered(builder, shared, headers, prefetch)


def registered(kind: str) -> Registered:
    """How messages of ``kind`` get their context; UnregisteredKind when nothing registered it."""
    found = _CONTEXTS.get(kind)
    if found is None:
        raise UnregisteredKind(f"no context builder is registered for messages of kind {kind!r}")
    return found


# ---------------------------------------------------------------- a batch's reads at once

_KEPT = "donebox.render.kept"
_HELD = "donebox.render.held"
_MISSING = object()


def keep(s: Session, values: dict) -> None:
    """Keep ``values`` (a prefetch's reads, by a key its builder knows) for builders in session ``s``."""
    s.info.setdefault(_KEPT, {}).update(values)


def hold(s: Session, rows) -> None:
    """Hold ORM ``rows`` a prefetch read, so ``s.get`` finds them (the identity map keeps only
    what is referenced) for as long as the session keeps prefetched reads."""
    s.info.setdefault(_HELD, []).extend(rows)


def kept(s: Session, key, read: Callable[[], object]):
    """What a prefetch kept in ``s`` under ``key``, else ``read()`` (the builder's own query)."""
    found = s.info.get(_KEPT, {}).get(key, _MISSING)
    return read() if found is _MISSING else found


def prefetch(s: Session, messages: list, settings: Settings) -> None:
    """Run the registered prefetch of each kind among ``messages`` (each kind once, with its
    messages) in ``s``: the builders of these messages then read what was kept, not the database.
    A prefetch that fails leaves the builders to their own queries."""
    by_kind: dict[str, list] = {}
    for m in messages:
        by_kind.setdefault(m.kind, []).append(m)
    for kind, rows in by_kind.items():
        found = _CONTEXTS.get(kind)
        if found is not None and found.prefetch is not None:
            found.prefetch(s, rows, settings)


def forget_kept(s: Session) -> None:
    """Drop what prefetches kept in ``s``: its builders read the database again."""
    s.info.pop(_KEPT, None)
    s.info.pop(_HELD, None)


def render_message(s: Session, message, settings: Settings) -> tuple[dict, str, str]:
    """(context, text, html) of a stored message: its kind's builder, then its template.

    Raises UnregisteredKind for a kind nothing registered, RenderError when the template fails;
    whatever its builder raises goes through.
    """
    stored = json.loads(message.context or "{}")
    context = registered(message.kind).builder(s, message, stored, settings)
    # whether to track is the producer's decision, stored in the row; a builder cannot change it
    context.pop("_track", None)
    if stored.get("_track") is True:
        context["_track"] = True
    text, html = render_parts(message.template, context)
    return context, text, html


# ---------------------------------------------------------------- MIME


@dataclass(frozen=True)
class Parts:
    """What a message is made of, before MIME: for API transports that take parts, not bytes."""

    from_addr: str
    from_name: str
    to: str
    to_name: str
    subject: str
    text: str
    html: str
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)
    composed: bool = False  # the bytes are an application's composed message, which these parts do not hold


# a list of items without white space, "," or ";", one ", " between each (List-Unsubscribe's)
_PLAIN_LIST = re.compile(r"[!-+\--:<-~]+(?:, [!-+\--:<-~]+)*")


def _folded_list(name: str, value: str) -> str | None:
    """What ``Header(value, header_name=name).encode`` makes of a value too long for one line that
    is a plain list (_PLAIN_LIST), made without it (each message's List-Unsubscribe is one, and
    Header's folding is many steps in Python): each item on the line while it fits in 78
    characters, else on a line of its own, the first line left empty when even the first item
    does not fit on it. None for any other value (tests/app/relay/test_render.py compares)."""
    if not _PLAIN_LIST.fullmatch(value):
        return None
    items = value.split(", ")
    first, *rest = [f"{item}," for item in items[:-1]] + [items[-1]]
    # Header starts the first item on the next line when even it does not fit after the name
    lines = [""] if len(name) + 2 + len(first) > 78 else []
    line, width = first, (1 if lines else len(name) + 2) + len(first)
    for chunk in rest:
        if width + 1 + len(chunk) <= 78:
            line, width = f"{line} {chunk}", width + 1 + len(chunk)
        else:
            lines.append(line)
            line, width = chunk, 1 + len(chunk)
    lines.append(line)
    return "\r\n ".join(lines)


def _unstructured(name: str, value: str) -> str:
    """``Name: value`` folded, as RFC 2047 encoded words when not plain ASCII or too long to fold."""
    if value.isascii() and len(name) + 2 + len(value) <= 78 and "\t" not in value:
        return f"{name}: {value}"  # what Header would make of it: one line, unchanged
    folded = ""
    if value.isascii():
        folded = _folded_list(name, value) or Header(value, header_name=name).encode(linesep="\r\n")
    if not folded or any(len(line) > 998 - len(name) - 2 for line in folded.split("\r\n")):
        folded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {folded}"


def _mailbox(name: str, addr: str) -> str:
    return formataddr((_safe_header(name), ascii_address(addr)), charset="utf-8")


def _qp(text: str) -> bytes:
    text = _one_line_ending(text)
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


TEXT_PARTS_KEPT = 256  # text parts kept encoded, per process
TEXT_PART_MAX_CHARS = 64 * 1024  # a longer text is encoded each time: the kept ones stay small


@lru_cache(maxsize=TEXT_PARTS_KEPT)
def _kept_qp(text: str) -> bytes:
    return _qp(text)


def _text_qp(text: str) -> bytes:
    """``_qp(text)`` of a text part, kept for the next message with the same text: the recipients of
    a team's shared render get the same text part (tracking rewrites only the HTML), so it is
    encoded once for all of them rather than once each."""
    return _kept_qp(text) if len(text) <= TEXT_PART_MAX_CHARS else _qp(text)


_QP_CTE = b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
_7BIT_CTE = b"Content-Transfer-Encoding: 7bit\r\n\r\n"
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext
# elements whose text HTML does not read character references in (raw text; RFC 1866's xmp and
# plaintext among them): a non-ASCII character there cannot be written as one
_RAW_TEXT_NAMES = ("style", "script", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext")
# HTML folds a tag name's case in ASCII only (re.A: without it re.I reads "<ſtyle" as "<style")
_RAW_TEXT = re.compile(rf"<({'|'.join(_RAW_TEXT_NAMES)})\b", re.I | re.A)
_END_TAG = {name: re.compile(f"</{name}", re.I | re.A) for name in _RAW_TEXT_NAMES}
# _RAW_TEXT in the part's lower-cased bytes: a bytes search of lower-case letters is a few times
# quicker than a case-blind one of a str that is not ASCII
_RAW_TEXT_LOWER = re.compile(rf"<(?:{'|'.join(_RAW_TEXT_NAMES)})\b".encode(), re.A)
# a reference to a C1 control (128-159) is read as the windows-1252 character of that number
_C1_REFERENCE = re.compile(rb"&#1(?:2[89]|[3-5][0-9]);")


def _one_line_ending(text: str) -> str:
    """``text`` with LF line endings only, so no lone CR survives into a part."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _raw_text_is_ascii(html: str) -> bool:
    """Whether every raw-text element of ``html`` (to its end tag, or the end) is ASCII."""
    for opened in _RAW_TEXT.finditer(html):
        closed = _END_TAG[opened.group(1).lower()].search(html, opened.end())
        if not html[opened.start() : closed.start() if closed else len(html)].isascii():
            return False
    return True


def _html_body(html: str, boundary: bytes) -> bytes:
    """The HTML part, its Content-Transfer-Encoding field first: unencoded (7bit, RFC 2045 2.7) when
    it can be, its non-ASCII characters written as character references, which HTML reads as the
    characters themselves; else quoted-printable, which costs a worker more than this and makes the
    part larger (``message_bytes_mean`` of bench/outbound.py: 14,663 bytes before, 14,199 after).

    Unencoded only when every line has at most 998 octets, none ends in white space (a server on
    the way that strips it would break the DKIM body hash), there is no NUL, no C1 control, no
    non-ASCII character inside a raw-text element (``<style>``), and no boundary."""
    text = _one_line_ending(html)
    body = text.encode("ascii", "xmlcharrefreplace")
    referenced = len(body) != len(text)  # text was not ASCII: its characters became references
    if referenced and _RAW_TEXT_LOWER.search(body.lower()) and not _raw_text_is_ascii(text):
        return _QP_CTE + _qp(text)
    lines = body.split(b"\n")
    if (
        b"\x00" in body
        or (referenced and _C1_REFERENCE.search(body))
        or boundary in body
        or max(map(len, lines)) > 998
        or any(map(bytes.endswith, lines, repeat((b" ", b"\t"))))  # in C, not a generator's steps
    ):
        return _QP_CTE + _qp(text)
    return _7BIT_CTE + body.replace(b"\n", b"\r\n")


def build_message(
    *,
    from_addr: str,
    from_name: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    date: datetime,
    headers: dict[str, str] | None = None,
    to_name: str = "",
) -> tuple[bytes, Parts]:
    """(the message as CRLF bytes: multipart/alternative, the text part quoted-printable, the HTML
    part as it is where it can be (_html_body), built once; its Parts). Raises RenderError for
    header injection, encoded or not."""
    lines = [
        f"From: {_mailbox(from_name, from_addr)}",
        f"To: {_mailbox(to_name, to)}",
        _unstructured("Subject", _safe_header(subject)),
        f"Date: {format_datetime(date)}",
        f"Message-ID: {_safe_header(message_id)}",
    ]
    for name, value in (headers or {}).items():
        if not _HEADER_NAME.match(name):
            raise RenderError(f"not a valid header name: {name!r}")
        lines.append(_unstructured(name, _safe_header(value)))
    boundary = f"=_{uuid.uuid4().hex}"  # "=_" never occurs in quoted-printable; _html_body checks
    head = "\r\n".join(lines).encode("ascii")
    raw = b"".join(
        [
            head,
            b"\r\nMIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
            f"--{boundary}\r\n".encode(),
            b'Content-Type: text/plain; charset="utf-8"\r\n' + _QP_CTE,
            _text_qp(text),
            f"\r\n--{boundary}\r\n".encode(),
            b'Content-Type: text/html; charset="utf-8"\r\n',
            _html_body(html, boundary.encode()),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    parts = Parts(from_addr, from_name, to, to_name, subject, text, html, message_id, dict(headers or {}))
    return raw, parts
