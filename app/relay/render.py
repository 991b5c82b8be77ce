"""Rendering: Jinja2 templates -> an RFC 5322 ``EmailMessage`` with a text and an HTML part."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache

import css_inline
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


def _safe_header(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise RenderError("a header value contains a line break")
    return value


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
) -> EmailMessage:
    """A multipart/alternative message; raises RenderError for header injection."""
    msg = EmailMessage()
    msg["From"] = Address(_safe_header(from_name), addr_spec=_safe_header(from_addr))
    msg["To"] = _safe_header(to)
    msg["Subject"] = _safe_header(subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _safe_header(message_id)
    for name, value in (headers or {}).items():
        msg[name] = _safe_header(value)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg
