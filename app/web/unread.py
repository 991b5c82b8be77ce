"""Closing the connection after a response that left the request's body unread.

Endpoints refuse (401, 403, 404, 413, a redirect to /signin) before reading a body they were
sent. Left alone, the server would keep the connection for the next request and read the rest
of that body only to throw it away: an unauthenticated 100 MB upload would still cost 100 MB
of reading. ``Connection: close`` on such a response makes uvicorn close the connection once
the response is sent, so the upload costs what the kernel had buffered, nothing more.
"""

from __future__ import annotations


def _has_body(scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


class CloseUnreadBodies:
    """ASGI middleware adding ``Connection: close`` to a response sent before its request's body
    was read to the end."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _has_body(scope):
            return await self.app(scope, receive, send)
        read_all = False

        async def receive_watched():
            nonlocal read_all
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                read_all = True
            return message

        async def send_closing(message):
            if message["type"] == "http.response.start" and not read_all:
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive_watched, send_closing)
