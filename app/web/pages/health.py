"""The health check."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.inbound.process import quarantined
from app.web.common import in_thread


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
