"""Security headers on every response, in one ASGI middleware.

Pages run no script at all, so the policy forbids scripts outright. An endpoint
that needs a different policy (the sandboxed raw-HTML view) sets its own
Content-Security-Policy; the middleware fills in only what is missing.
"""

from __future__ import annotations

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# the policy of a frame showing mail HTML: no script, no network, no forms, embeddable by our pages only
SANDBOX_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "frame-ancestors 'self'; base-uri 'none'; sandbox"
)
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
