"""The health check."""

from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.web.common import in_thread


def _db_ok() -> bool:
    with session() as s:
        return s.execute(text("SELECT 1")).scalar() == 1


async def healthz(request: Request) -> JSONResponse:
    """GET /healthz: 200 when the database answers, 503 otherwise."""
    try:
        ok = await in_thread(_db_ok)
    except Exception as e:  # noqa: BLE001 - health check reports, never raises
        return JSONResponse({"ok": False, "database": str(type(e).__name__)}, status_code=503)
    return JSONResponse({"ok": ok, "database": "ok"})
