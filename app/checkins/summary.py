"""The weekly participation summary: an email to each admin of a team that asked for it.

**Who.** The active admins (role ``admin``, app.models.ROLES) of a team whose
``TeamSettings.participation_summary`` is on (off by default; set through teams.update_team).

**When.** With the admin's first digest of each ISO week, in their own time zone and at their
digest time: the tick's digest batch (app.checkins.due) makes it beside the daily digest, so
Monday morning for a Monday-to-Friday team. It rides on the digest's schedule, not on whether the
team sends its digest (a team with its digest off still gets it), and on the digest's rules: an
admin paused on the day gets nothing then, and it comes with their first digest after the pause
within the same week. One per admin and week: the outbox row's key is
``participation:<member>:<ISO year>-W<week>`` (a unique key: a second digest that week, another
tick or another scheduler makes nothing). An unsubscribed address is suppressed by the relay as
any check-in mail is.

**What.** The 7 days before the day it goes (``first`` to ``last`` in the row's context), as
app.checkins.participation reports them: the team's answer rate, each member's days asked and
answered, rate, current streak and average reply time, who was asked and answered nothing, and a
link to the participation page of those days. Figures are as of when the row was made (a retry
renders the same email); every admin of a team with the same week shares one render.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, timedelta

from sqlmodel import Session

from app.checkins import participation
from app.models import OutboundMessage, Team
from app.settings import Settings

KIND = "participation"
WEEK_DAYS = 7


def key(member_id: int, day: date) -> str:
    """The idempotency key of ``member_id``'s summary in the ISO week of ``day``."""
    year, week, _ = day.isocalendar()
    return f"{KIND}:{member_id}:{year}-W{week:02d}"


def rows(plans: Iterable, teams_on: set[int], domain: str, tracked: set[int], nonce: str) -> list[dict]:
    """The outbox rows of the summaries riding on a digest batch's ``plans`` ((member row, team,
    tz, covered day, local day it goes) of each digest that fires): one per admin of a team in
    ``teams_on``; ``tracked``: the teams whose mail is tracked."""
    out = []
    for r, team, _tz, _covered, day in plans:
        if team.id not in teams_on or r.role != "admin":
            continue
        last = day - timedelta(days=1)
        first = last - timedelta(days=WEEK_DAYS - 1)
        context = {"first": first.isoformat(), "last": last.isoformat()}
        out.append(
            {
                "idempotency_key": key(r.id, day),
                "kind": KIND,
                "team_id": team.id,
                "member_id": r.id,
                "to_addr": r.email,
                "subject": f"{team.name}: participation, {first:%d %b} to {last:%d %b}",
                "template": KIND,
                "context": json.dumps(context | ({"_track": True} if team.id in tracked else {})),
                "message_id": f"<{nonce}.p{r.id}@{domain}>",
                "expires_at": None,
            }
        )
    return out


def summary_context(s: Session, msg: OutboundMessage, stored: dict, settings: Settings) -> dict:
    """Context of ``templates/email/participation``: the team's participation from the stored
    ``first`` to ``last``, as of when the row was made."""
    team = s.get(Team, msg.team_id)
    first, last = date.fromisoformat(stored["first"]), date.fromisoformat(stored["last"])
    r = participation.report(s, team, first, last, now=msg.created_at)
    return {
        "team": team,
        "first": first,
        "last": last,
        "report": r,
        "silent": [row.member for row in r.members if row.figures.asked and not row.figures.answered],
        "percent": participation.percent,
        "duration": participation.duration,
        "page_url": f"{settings.base_url}/teams/{team.id}/participation?from={first}&to={last}",
        "base_url": settings.base_url,
        "_headers": {"Auto-Submitted": "auto-generated", "X-Donebox-Kind": KIND},
    }
