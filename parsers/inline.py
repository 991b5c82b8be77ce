"""Which file parts are inline parts: one rule for raw MIME and for providers' parsed payloads.

An inline part is a part with a Content-ID that its HTML body shows by a ``cid:`` URL (an image
in the mail's text), not one its sender attached: ``parsers.message`` decides it from a part's
headers, the provider adapters from the Content-IDs their payloads name (SendGrid's
``content-ids``, Mailgun's ``content-id-map``, Postmark's ``ContentID``). A part with a
Content-ID that the HTML does not show (Gmail gives every attachment one) stays an attachment,
and so does one its sender marked ``Content-Disposition: attachment``. Pure, never raises.
"""

from __future__ import annotations

import html as htmllib
import re
from urllib.parse import unquote

# a cid: URL (RFC 2392) in an attribute or a CSS url(): up to a quote, white space or bracket
_CID_URL = re.compile(r"""cid:([^\s"'<>()\\]{1,998})""", re.IGNORECASE)


def content_id(value) -> str:
    """A Content-ID as ``cid:`` URLs name it: white space and angle brackets stripped; '' for a non-string."""
    return value.strip().strip("<>").strip() if isinstance(value, str) else ""


def cid_references(html: str | None) -> frozenset[str]:
    """The Content-IDs ``html`` shows by ``cid:`` URLs (entities and %-escapes decoded, case folded)."""
    if not html or "cid:" not in html.lower():
        return frozenset()
    found = set()
    for url in _CID_URL.findall(html):
        value = htmllib.unescape(url)
        found.update((value.casefold(), unquote(value).casefold()))
    return frozenset(found)


def inline_cid(cid: str, references: frozenset[str], disposition: str = "") -> str:
    """``cid`` when its part is an inline part, else '': it has a Content-ID, the HTML (whose
    ``cid_references`` are ``references``) shows it, and its disposition, when known, is not
    ``attachment``."""
    cid = content_id(cid)
    if not cid or disposition not in ("", "inline"):
        return ""
    return cid if cid.casefold() in references else ""
