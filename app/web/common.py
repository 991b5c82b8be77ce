"""Helpers shared by endpoints: templates, JSON errors and DB work off the event loop."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.templating import Jinja2Templates

from app.db import session
from app.relay.api_tokens import bearer, check_token
from app.relay.render import TEMPLATES

templates = Jinja2Templates(directory=str(TEMPLATES / "web"))


def error(status: int, reason: str) -> JSONResponse:
    """A JSON error with the reason a client can act on."""
    return JSONResponse({"error": reason}, status_code=status)


def no_api_token() -> JSONResponse:
    """The 401 of every /api/ endpoint taking an API token, when there is no live one."""
    return error(
        401,
        "missing, unknown or revoked API token "
        "(Authorization: Bearer dbx_...; donebox api-token create NAME)",
    )


class TooLarge(Exception):
    """Raised when a request body passes MAX_INBOUND_BYTES while it is being read."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, read in chunks; raises TooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def in_thread(fn, *args, **kwargs):
    """Run blocking database work in the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)


def api_token(request):
    """The ApiToken of the request's bearer header, or None (callers answer 401)."""
    token = bearer(request.headers.get("authorization", ""))
    if not token:
        return None
    with session() as s:
        return check_token(s, token)


MAX_ID = 2**31 - 1  # ids are 32-bit integer columns: PostgreSQL refuses a query with a larger one


def id_in_range(value: int) -> bool:
    """True when ``value`` can be a row id (so a lookup beyond the range is a 404, not a 500)."""
    return 1 <= value <= MAX_ID
