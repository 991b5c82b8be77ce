"""The Starlette application factory; nothing else imports app.web."""

from __future__ import annotations

import contextlib

from starlette.applications import Starlette

from app.settings import get_settings


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    from jobs.broker import start_embedded_workers

    start_embedded_workers()  # on the embedded default, jobs run in this process
    yield


def create_app() -> Starlette:
    """Build the ASGI app: routes from app.web.routes, jobs broker ready."""
    import jobs.actors  # noqa: F401 - the broker and actors the endpoints enqueue to
    from app.web.routes import routes

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = get_settings()
    return app
