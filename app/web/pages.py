"""HTML pages: the team's days."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.checkins import team_day
from app.db import session
from app.models import Team, utcnow
from app.schedule import local_date
from app.web.common import in_thread, templates


def _home_data():
    now = utcnow()
    teams = []
    with session() as s:
        for team in s.execute(select(Team).order_by(Team.name)).scalars():
            today = local_date(now, team.timezone)
            days = []
            for day in (today, today - timedelta(days=1)):
                groups, quiet = team_day(s, team.id, day)
                days.append({"day": day, "groups": groups, "quiet": quiet})
            teams.append({"team": team, "days": days})
    return teams


async def home(request: Request):
    """GET /: each team's entries for today and yesterday."""
    teams = await in_thread(_home_data)
    return templates.TemplateResponse(request, "home.html", {"teams": teams})


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
