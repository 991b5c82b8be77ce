"""The health check, the operator's health page (app.health) and the Prometheus metrics
(docs/metrics.md)."""

from __future__ import annotations

import hmac

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import health
from app.db import session
from app.inbound.process import quarantined
from app.metrics.scrape import CONTENT_TYPE, exposition
from app.models import utcnow
from app.web.common import error, in_thread
from app.web.pages.framework import Ctx, page, render
from jobs.broker import queue_depths


def _db_ok() -> tuple[bool, int]:
    with session() as s:
        return s.execute(text("SELECT 1")).scalar() == 1, quarantined(s)


async def healthz(request: Request) -> JSONResponse:
    """GET /healthz: 200 when the database answers, 503 otherwise; with the number of quarantined
    inbound messages (their processing never finished: an operator should look at them)."""
    try:
        ok, held = await in_thread(_db_ok)
    except Exception as e:  # noqa: BLE001 - health check reports, never raises
        return JSONResponse({"ok": False, "database": str(type(e).__name__)}, status_code=503)
    return JSONResponse({"ok": ok, "database": "ok", "inbound_quarantined": held})


def metrics_refusal(request: Request) -> Response | None:
    """Why this request may not read /metrics, as the answer; None when it may. In production
    METRICS_TOKEN is required (404 while unset, so nothing is exposed by default); in development
    the endpoint is open unless a token is set."""
    settings = request.app.state.settings
    token = settings.metrics_token
    if not token:
        if settings.production:
            return error(404, "metrics are not configured (METRICS_TOKEN)")
        return None
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return JSONResponse(
            {"error": "a bearer token (METRICS_TOKEN) is required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return None


async def metrics(request: Request) -> Response:
    """GET /metrics: every donebox process's counters (METRICS_DIR) and the database gauges, in
    the Prometheus text format; behind METRICS_TOKEN."""
    if (refused := metrics_refusal(request)) is not None:
        return refused
    settings = request.app.state.settings
    body = await in_thread(exposition, settings, now=utcnow(), queue_depths=queue_depths)
    return Response(body, media_type=CONTENT_TYPE)


@page("operator")
def operator_health(request: Request, ctx: Ctx):
    """GET /mail/health: the doctor's checks (`donebox doctor`), the oldest inbound message waiting,
    each provider's retry horizon, complaint rates per sending domain, open circuits, queue depths."""
    now = utcnow()
    # the checks open sessions of their own and wait on the network: end this one's transaction first
    # (on SQLite every transaction holds the one write lock)
    ctx.s.commit()
    r = health.report(request.app.state.settings, now)
    return render(
        request,
        ctx,
        "mail_health.html",
        {
            "r": r,
            "now": now,
            "failed": health.failed(r.checks),
            "complaint_days": health.COMPLAINT_DAYS,
        },
    )
