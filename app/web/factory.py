"""The Starlette application factory (create_app); only the CLI and tests import it."""

from __future__ import annotations

import contextlib
import gc

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware

from app.relay.transports import close_all
from app.settings import get_settings
from app.web.pages.signin import http_error, server_error
from app.web.request_ids import RequestIds
from app.web.routes import routes
from app.web.security import SecurityHeaders
from app.web.unread import CloseUnreadBodies
from jobs.broker import start_embedded_workers

SESSION_MAX_AGE_S = 14 * 24 * 3600
# what providers, mail clients, applications and monitors call: no page, so no browser session
SESSIONLESS = ("/inbound/", "/events/", "/t/", "/api/", "/healthz", "/metrics", "/dev/inbound/")


class PageSessions:
    """Starlette's SessionMiddleware for the pages only: a request under SESSIONLESS gets an empty
    session, never read from the cookie (not decoded, its signature not checked) nor written back;
    an error page rendered for it (a 404 under /t/) still finds one."""

    def __init__(self, app, **options):
        self.app = app
        self.with_session = SessionMiddleware(app, **options)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(SESSIONLESS):
            scope["session"] = {}
            return await self.app(scope, receive, send)
        return await self.with_session(scope, receive, send)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    start_embedded_workers()  # on the embedded default, jobs run in this process
    # What is built by now (modules, SQLAlchemy's mappers, templates) lives as long as the
    # process: freezing it keeps full collections from walking it again and again. Unfrozen,
    # such a collection stalled the event loop (and every request) for 100-170 ms under load.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # an app started and stopped in a longer-lived process (tests) leaves nothing behind
        close_all()  # pooled SMTP connections say QUIT


def create_app() -> Starlette:
    """Build the ASGI app: routes from app.web.routes, sessions, security headers, jobs broker ready."""
    settings = get_settings()
    middleware = [
        Middleware(RequestIds),
        Middleware(CloseUnreadBodies),
        Middleware(SecurityHeaders),
        Middleware(
            PageSessions,
            secret_key=settings.secret_key,
            session_cookie="donebox_session",
            max_age=SESSION_MAX_AGE_S,
            same_site="lax",
            https_only=settings.base_url.startswith("https://"),
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.settings = settings
    return app
