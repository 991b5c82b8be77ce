"""Helpers shared by endpoints: templates, JSON errors and DB work off the event loop."""

from __future__ import annotations

import json
from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.templating import Jinja2Templates

from app.db import session
from app.models import MAX_ID, bad_text, id_in_range  # noqa: F401 - the web layer uses them from here
from app.relay.api_tokens import bearer, check_token
from app.relay.render import TEMPLATES

templates = Jinja2Templates(directory=str(TEMPLATES / "web"))


def error(status: int, reason: str) -> JSONResponse:
    """A JSON error with the reason a client can act on."""
    return JSONResponse({"error": reason}, status_code=status)


def download(chunks, media_type: str, filename: str) -> StreamingResponse:
    """A download of ``chunks`` (an iterator of bytes, produced while the client reads), named
    ``filename`` (ASCII, no quote) and kept out of caches."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


def no_api_token() -> JSONResponse:
    """The 401 of every /api/ endpoint taking an API token, when there is no live one."""
    return error(
        401,
        "missing, unknown or revoked API token "
        "(Authorization: Bearer dbx_...; donebox api-token create NAME)",
    )


class TooLarge(Exception):
    """Raised when a request body passes its limit while it is being read."""


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


MAX_JSON_DEPTH = 64  # arrays and objects nested deeper than this are refused
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)  # days taken: a day +- 1 week never overflows


def parse_id(value: str) -> int | None:
    """The row id written in ``value`` (ASCII digits, in range), or None."""
    if not (isinstance(value, str) and 0 < len(value) <= 10 and value.isascii() and value.isdigit()):
        return None
    return int(value) if id_in_range(int(value)) else None


class BadInput(ValueError):
    """Raised for a request value refused with ``status`` (400, 404 or 422) and the reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _named(name: str) -> str:
    return repr(name[:60]) if bad_text(name) is None else "with an invalid name"


def check_url(request: Request) -> None:
    """Path and query values a handler can use: ids in range (BadInput 404), no NUL (422)."""
    for name, value in request.path_params.items():
        if isinstance(value, int) and not id_in_range(value):
            raise BadInput(404, f"no such {name}: {value} is not an id")
        if isinstance(value, str) and bad_text(value):
            raise BadInput(404, f"no such {name}")
    for name, value in request.query_params.multi_items():
        why = bad_text(name) or bad_text(value)
        if why:
            raise BadInput(422, f"the query parameter {_named(name)} {why}")


def check_fields(fields: dict, where: str = "field") -> None:
    """BadInput 422 naming the first text field (of a form) that cannot be stored."""
    for name, value in fields.items():
        why = bad_text(name) or (bad_text(value) if isinstance(value, str) else None)
        if why:
            raise BadInput(422, f"the {where} {_named(name)} {why}")


def load_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH):
    """The JSON value of ``raw``; BadInput 400 when it is not JSON or nests deeper than ``max_depth``,
    422 naming the field whose text holds a NUL or a lone surrogate."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadInput(400, f"the JSON nests deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(400, f"the body is not valid JSON: {str(e)[:200]}") from None
    stack = [(value, "", 0)]
    while stack:  # iterative: a deep document cannot exhaust the stack here either
        item, where, depth = stack.pop()
        if isinstance(item, str):
            why = bad_text(item)
            if why:
                raise BadInput(422, f"{_field(where)} {why}")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise BadInput(400, f"the JSON nests deeper than {max_depth} levels")
            for key, sub in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(key, str):
                    if bad_text(key):
                        raise BadInput(422, f"a key of {_field(where)} {bad_text(key)}")
                    path = f"{where}.{key[:60]}" if where else key[:60]
                else:
                    path = f"{where}[{key}]"
                stack.append((sub, path, depth + 1))
    return value


def _field(path: str) -> str:
    return f"the field {path!r}" if path else "the body"


def parse_day(value: str, name: str = "day") -> date:
    """A YYYY-MM-DD day from FIRST_DAY to LAST_DAY; BadInput 400 (the form) or 422 (the range)."""
    try:
        day = date.fromisoformat(value) if isinstance(value, str) and len(value) <= 10 else None
    except ValueError:
        day = None
    if day is None:
        raise BadInput(400, f"{name} must be YYYY-MM-DD")
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadInput(422, f"{name} must be from {FIRST_DAY} to {LAST_DAY}")
    return day
