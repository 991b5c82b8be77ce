"""Security headers on every response, in one ASGI middleware; how received files are served.

Pages run no script at all, so the policy forbids scripts outright. An endpoint
that needs a different policy (the sandboxed raw-HTML view, a download) sets its own
Content-Security-Policy; the middleware fills in only what is missing.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

from starlette.responses import Response

from parsers.filenames import safe_filename

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# the policy of a frame showing mail HTML: no script, no network, no forms, embeddable by our pages only
SANDBOX_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "frame-ancestors 'self'; base-uri 'none'; sandbox"
)
# a received file, opened in a tab by accident or by a link, runs nothing and loads nothing
DOWNLOAD_CSP = "default-src 'none'; sandbox"
# Types a received file keeps when served. The sender chose the type, and a browser that renders
# text/html, image/svg+xml, application/xhtml+xml, text/xml, application/javascript (and every
# type it has not been taught about, by sniffing) would run the sender's script in our origin,
# with the reader's session. So the list names types browsers only display or hand to a program,
# and everything else, those included, is served as application/octet-stream: saved, never run.
SERVED_AS_IS = frozenset(
    """image/png image/jpeg image/gif image/webp image/avif image/bmp application/pdf application/zip
    text/plain text/csv text/calendar audio/mpeg audio/ogg video/mp4
    application/msword application/vnd.ms-excel application/vnd.ms-powerpoint
    application/vnd.openxmlformats-officedocument.wordprocessingml.document
    application/vnd.openxmlformats-officedocument.spreadsheetml.sheet
    application/vnd.openxmlformats-officedocument.presentationml.presentation""".split()
)
DOWNLOAD_TYPES = SERVED_AS_IS | {"application/octet-stream"}  # every type a download is served as
HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"x-frame-options": b"DENY",
    b"cross-origin-opener-policy": b"same-origin",
}


class SecurityHeaders:
    """ASGI middleware adding HEADERS to every HTTP response that does not set them itself."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                framable = b"frame-ancestors 'self'" in dict(headers).get(b"content-security-policy", b"")
                for k, v in HEADERS.items():
                    if k in present or (k == b"x-frame-options" and framable):
                        continue
                    headers.append((k, v))
                if framable and b"x-frame-options" not in present:
                    headers.append((b"x-frame-options", b"SAMEORIGIN"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def served_type(content_type: str) -> str:
    """The Content-Type a received file is served with: its own when in SERVED_AS_IS, else
    application/octet-stream (parameters are dropped: the sender's text is not echoed)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base if base in SERVED_AS_IS else "application/octet-stream"


def ascii_filename(name: str) -> str:
    """``name`` in printable ASCII for the plain ``filename=`` parameter: accents dropped, other
    characters as ``_``, and made safe again (compatibility folding can make a ``/`` or a leading
    ``.`` of a full-width one). ``;`` and ``%`` become ``_`` too: some clients split the header on
    ``;`` inside quotes, or percent-decode the plain name."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return safe_filename("".join(c if " " <= c <= "~" and c not in ";%" else "_" for c in folded))


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact name as RFC 5987 ``filename*``."""
    return f"attachment; filename=\"{ascii_filename(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


def download(content: bytes, name: str, content_type: str) -> Response:
    """A received file as a download that cannot run in our origin: ``name`` must be a safe name
    (parsers.filenames.safe_filename), never the sender's raw one."""
    return Response(
        content,
        headers={
            "Content-Type": served_type(content_type),  # given as a header: Starlette adds no charset
            "Content-Disposition": content_disposition(name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": DOWNLOAD_CSP,
            "Cache-Control": "private, no-store",
        },
    )
