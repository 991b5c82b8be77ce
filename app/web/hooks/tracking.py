"""Tracking endpoints: the open pixel, click redirects and unsubscribe (GET asks, POST acts)."""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.db import session
from app.models import OutboundMessage, utcnow
from app.relay import tracking
from app.web.common import in_thread, templates

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1 transparent GIF
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache"}


def _ua(request: Request) -> str:
    return request.headers.get("user-agent", "")


def _verified(request: Request, kind: str) -> tracking.Token | None:
    return tracking.verify_token(request.app.state.settings.secret_key, request.path_params["token"], kind)


def _record_open(token: tracking.Token, ua: str) -> bool:
    with session() as s:
        if s.get(OutboundMessage, token.message_id) is None:
            return False
        tracking.record_hit(s, token.message_id, "open", now=utcnow(), user_agent=ua)
        return True


async def open_pixel(request: Request) -> Response:
    """GET /t/o/{token}: a 1x1 GIF; records an open (machine or human)."""
    token = _verified(request, "o")
    if token is None or not await in_thread(_record_open, token, _ua(request)):
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


def _record_click(token: tracking.Token, ua: str) -> str | None:
    with session() as s:
        url = tracking.click_target(s, token)
        if url is not None:
            tracking.record_hit(
                s, token.message_id, "click", now=utcnow(), user_agent=ua, link=token.index, url=url
            )
        return url


async def click(request: Request) -> Response:
    """GET /t/c/{token}: 302 to the URL recorded for the token's message and link; records a click."""
    token = _verified(request, "c")
    url = await in_thread(_record_click, token, _ua(request)) if token else None
    if url is None:
        return Response("This link is not valid.", status_code=404, media_type="text/plain")
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


def _unsubscribe(token: tracking.Token, ua: str, via: str) -> str | None:
    with session() as s:
        return tracking.unsubscribe(s, token.message_id, now=utcnow(), user_agent=ua, via=via)


async def unsubscribe(request: Request) -> Response:
    """GET /t/u/{token} shows a confirmation form and changes nothing; POST unsubscribes (RFC 8058)."""
    token = _verified(request, "u")
    if token is None:
        return Response("This unsubscribe link is not valid.", status_code=404, media_type="text/plain")
    if request.method == "GET":  # link scanners GET everything: asking is all a GET may do
        return templates.TemplateResponse(
            request, "unsubscribe.html", {"done": False, "action": request.url.path}
        )
    body = await request.body()  # "List-Unsubscribe=One-Click" from a mail provider, or our own form
    via = "one-click" if b"List-Unsubscribe=One-Click" in body[:1000] else "web"
    addr = await in_thread(_unsubscribe, token, _ua(request), via)
    if addr is None:
        return Response("This unsubscribe link is not valid.", status_code=404, media_type="text/plain")
    return templates.TemplateResponse(request, "unsubscribe.html", {"done": True, "address": addr})
