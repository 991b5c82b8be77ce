"""Rendering: Jinja2 templates -> an RFC 5322 ``EmailMessage`` with a text and an HTML part."""

from __future__ import annotations

import re
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import cache

import css_inline
import idna
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.errors import RenderError
from app.settings import ROOT

TEMPLATES = ROOT / "templates"


@cache
def environment() -> Environment:
    """The Jinja2 environment for email and web templates, autoescaping HTML."""
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
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


def ascii_address(addr: str) -> str:
    """``local@domain`` with the domain in IDNA (punycode); RenderError when that is impossible."""
    addr = _safe_header(addr.strip())
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise RenderError(f"not an email address: {addr!r}")
    if not local.isascii():
        raise RenderError(f"a non-ASCII local part needs SMTPUTF8, which donebox does not send: {addr!r}")
    try:
        domain = (
            domain.encode("ascii").decode() if domain.isascii() else idna.encode(domain, uts46=True).decode()
        )
    except idna.IDNAError as e:
        raise RenderError(f"not a valid domain in {addr!r}: {e}") from e
    return f"{local}@{domain.lower()}"


def mailbox_header(name: str, addr: str) -> Address:
    """An Address for From/To/Reply-To: the name as encoded words when needed, the domain in IDNA."""
    return Address(_safe_header(name), addr_spec=ascii_address(addr))


def render_parts(template: str, context: dict) -> tuple[str, str]:
    """(text, html) of ``templates/email/<template>.{txt,html}``, CSS inlined."""
    env = environment()
    try:
        text = env.get_template(f"email/{template}.txt").render(context)
        html = env.get_template(f"email/{template}.html").render(context)
    except Exception as e:  # noqa: BLE001 - any template failure is a render failure of this message
        raise RenderError(f"template {template}: {type(e).__name__}: {e}") from e
    return text, _inliner().inline(html)


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
) -> EmailMessage:
    """A multipart/alternative message, 7-bit clean; raises RenderError for any header injection."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = mailbox_header(from_name, from_addr)
    msg["To"] = mailbox_header(to_name, to)
    msg["Subject"] = _safe_header(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _safe_header(message_id)
    for name, value in (headers or {}).items():
        msg[_safe_header(name)] = _safe_header(value)
    for name, value in msg.items():  # what the email package made of every value, decoded
        if _BREAKS.search(str(value)):
            raise RenderError(f"header {name} would contain a line break")
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg


_LINE_ENDS = re.compile(rb"\r\n|\r|\n")


def to_bytes(msg: EmailMessage) -> bytes:
    """The message serialized once, every line ending CRLF (what DKIM signs and SMTP sends)."""
    return _LINE_ENDS.sub(b"\r\n", msg.as_bytes(policy=SMTP))
