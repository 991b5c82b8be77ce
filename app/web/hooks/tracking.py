"""Tracking endpoints: the open pixel, click redirects and unsubscribe.

Only POST changes state. A GET of the pixel or of a click link records the open or the click
(that is what tracking is: a mail client fetching the image, a person following the link) and
changes nothing else; a GET of an unsubscribe link only shows a confirmation form. HEAD, which
link scanners send, records and changes nothing anywhere: it answers as GET would, without a body.
"""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.db import session
from app.models import OutboundMessage, utcnow
from app.relay import tracking
from app.web.common import TooLarge, id_in_range, in_thread, read_limited, templates

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1 transparent GIF
ONE_CLICK_MAX_BYTES = 4096  # "List-Unsubscribe=One-Click" (RFC 8058) or our own empty form
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache"}


def _ua(request: Request) -> str:
    return request.headers.get("user-agent", "")


def _verified(request: Request, kind: str) -> tracking.Token | None:
    token = tracking.verify_token(request.app.state.settings.secret_key, request.path_params["token"], kind)
    return token if token is not None and id_in_range(token.message_id) else None


def _record_open(token: tracking.Token, ua: str, record: bool) -> bool:
    with session() as s:
        if s.get(OutboundMessage, token.message_id) is None:
            return False
        if record:
            tracking.record_hit(s, token.message_id, "open", now=utcnow(), user_agent=ua)
        return True


async def open_pixel(request: Request) -> Response:
    """GET /t/o/{token}: a 1x1 GIF; records an open (machine or human). HEAD records nothing."""
    token = _verified(request, "o")
    record = request.method == "GET"
    if token is None or not await in_thread(_record_open, token, _ua(request), record):
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


def _record_click(token: tracking.Token, ua: str, record: bool) -> str | None:
    with session() as s:
        url = tracking.click_target(s, token)
        if url is not None and record:
            tracking.record_hit(
                s, token.message_id, "click", now=utcnow(), user_agent=ua, link=token.index, url=url
            )
        return url


async def click(request: Request) -> Response:
    """GET /t/c/{token}: 302 to the URL recorded for the token's message and link; records a click.
    HEAD answers the same redirect and records nothing."""
    token = _verified(request, "c")
    record = request.method == "GET"
    url = await in_thread(_record_click, token, _ua(request), record) if token else None
    if url is None:
        return _page(request, 404, heading="This link is not valid", why=BAD_LINK)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


BAD_LINK = (
    "The link is damaged (a mail program may have cut or changed it) or was not made by this donebox. "
    "Open it again from the email, or copy the whole address."
)
BAD_UNSUBSCRIBE = (
    "This unsubscribe link is damaged (a mail program may have cut or changed it), was not made by "
    "this donebox, or its message no longer exists. Use the link of a more recent email, or sign in "
    "and unsubscribe on your schedule page."
)


def _page(request: Request, status: int, **data) -> Response:
    """A person's answer as a page like the app's (no session is read: these links work signed out)."""
    return templates.TemplateResponse(request, "unsubscribe.html", data, status_code=status)


def _unsubscribe(token: tracking.Token, ua: str, via: str) -> str | None:
    with session() as s:
        return tracking.unsubscribe(s, token.message_id, now=utcnow(), user_agent=ua, via=via)


async def unsubscribe(request: Request) -> Response:
    """GET (and HEAD) /t/u/{token} show a confirmation form and change nothing; POST unsubscribes
    (RFC 8058), its body read only once the token is proven."""
    token = _verified(request, "u")
    if token is None:
        return _page(request, 404, heading="This unsubscribe link is not valid", why=BAD_UNSUBSCRIBE)
    if request.method != "POST":  # link scanners GET and HEAD everything: asking is all they may do
        return _page(request, 200, done=False, action=request.url.path)
    try:  # "List-Unsubscribe=One-Click" from a mail provider, or our own form
        body = await read_limited(request, ONE_CLICK_MAX_BYTES)
    except TooLarge:
        why = f"An unsubscribe request is at most {ONE_CLICK_MAX_BYTES} bytes: nothing was changed."
        return _page(request, 413, heading="Not unsubscribed", why=why)
    via = "one-click" if b"List-Unsubscribe=One-Click" in body[:1000] else "web"
    addr = await in_thread(_unsubscribe, token, _ua(request), via)
    if addr is None:
        return _page(request, 404, heading="This unsubscribe link is not valid", why=BAD_UNSUBSCRIBE)
    return _page(request, 200, done=True, address=addr)
