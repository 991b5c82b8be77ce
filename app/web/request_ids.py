"""A request id on every request: on its log records, in its response's X-Request-ID, and in one
line logged when its response starts.

An incoming X-Request-ID (a proxy's) is kept when it is sane: 1 to 128 characters of letters,
digits and ``-_.:``; anything else is replaced by a new one, so a client cannot write arbitrary
text into the logs.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from app.logs import bind, line

log = logging.getLogger("donebox.web.requests")

HEADER = b"x-request-id"
SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
TEAM_PARAMS = ("tid", "team_id")  # the path parameters that name a team (app.web.routes)


def request_id(scope) -> str:
    """The request's id: its X-Request-ID when sane, else 32 new hex digits."""
    for name, value in scope.get("headers", ()):
        if name == HEADER and SANE.fullmatch(value.strip()):
            return value.strip().decode()
    return secrets.token_hex(16)


def shown_path(scope) -> str:
    """The request's path without its query, each segment that is a text path parameter (a
    sign-in or tracking token) replaced by its name: ``/signin/{token}``."""
    texts = {v: k for k, v in (scope.get("path_params") or {}).items() if isinstance(v, str) and v}
    return "/".join(
        "{" + texts[seg] + "}" if seg in texts else seg for seg in scope.get("path", "").split("/")
    )


def _line(scope, status: int, started: float) -> None:
    params = scope.get("path_params") or {}
    team = next((params[p] for p in TEAM_PARAMS if isinstance(params.get(p), int)), None)
    line(
        log,
        logging.INFO,
        "%s %s %s",
        scope.get("method", ""),
        shown_path(scope),
        status,
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        **({"team_id": team} if team is not None else {}),
    )


class RequestIds:
    """ASGI middleware binding ``request_id`` to each HTTP request, answering it in X-Request-ID
    and logging the request's method, path, status and duration once it is answered."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = request_id(scope)
        started = time.perf_counter()
        answered = False

        async def send_with_id(message):
            nonlocal answered
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode())]}
                answered = True
                _line(scope, message["status"], started)
            await send(message)

        # bound for the rest of the request's task, not only this call: the 500 page and the
        # server's own error lines, outside this middleware, carry the id too
        bind(request_id=rid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not answered:  # Starlette's error middleware answers 500 outside this one
                _line(scope, 500, started)
            raise
