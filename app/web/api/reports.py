"""What a team did over a span, by API token: its participation (app.checkins.participation) and
the export of its entries and comments (app.checkins.export), streamed."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request

from app.checkins import export as exporting
from app.checkins import participation
from app.checkins.times import local_date
from app.models import Team, utcnow
from app.web.api.base import ApiError, ChoiceQuery, DateQuery, api, open_span
from app.web.api.shapes import DAY, INT, NUMBER, STR, Field, Shape, many, nested, nullable
from app.web.api.teams import find_team
from app.web.common import download

FROM_Q = DateQuery("from", "the first day, YYYY-MM-DD (default: 29 days before to)")
TO_Q = DateQuery("to", "the last day, YYYY-MM-DD (default: today in the team's time zone)")
FORMAT_Q = ChoiceQuery("format", exporting.FORMATS, "csv (the default), json (one array) or ndjson")

# (JSON name, Figures attribute, type, description): written once for the team's and each member's
_FIGURES = (
    (
        "days_asked",
        "asked",
        INT,
        "days the reminder reached them and counted (not paused, not today's still open)",
    ),
    ("days_answered", "answered", INT, "of those, the days they wrote an entry for"),
    (
        "answer_rate",
        "answer_rate",
        nullable(NUMBER),
        "days_answered / days_asked from 0 to 1; null: never asked",
    ),
    (
        "current_streak",
        "current_streak",
        INT,
        "answered days in a row up to the last day counted; pauses and days not asked do not break it"
        " (the team's: days everyone asked answered)",
    ),
    ("best_streak", "best_streak", INT, "the longest such run in the span"),
    (
        "average_reply_s",
        "average_reply_s",
        nullable(NUMBER),
        "mean seconds from the reminder's sending to the first entry written after it; null: none",
    ),
)


def _figure_fields(prefix: str = "") -> tuple[Field, ...]:
    return tuple(Field(n, t, prefix + a, description=d) for n, a, t, d in _FIGURES)


PARTICIPATION_FIGURES = Shape("ParticipationFigures", _figure_fields())
PARTICIPATION_MEMBER = Shape(
    "ParticipationMember",
    (
        Field("member_id", INT, "member.id"),
        Field("name", STR, "member.name"),
        Field("email", STR, "member.email"),
        *_figure_fields("figures."),
    ),
)
PARTICIPATION_DAY = Shape(
    "ParticipationDay",
    (
        Field("day", DAY),
        Field("asked", INT, description="members asked (and counted) that day"),
        Field("answered", INT, description="of those, the members who wrote"),
    ),
)
PARTICIPATION = Shape(
    "Participation",
    (
        Field("team_id", INT),
        Field("from", DAY, "first"),
        Field("to", DAY, "last"),
        Field("team", nested(PARTICIPATION_FIGURES)),
        Field(
            "members",
            many(PARTICIPATION_MEMBER),
            description="every member counted, by name (a token reads the whole team)",
        ),
        Field("days", many(PARTICIPATION_DAY), description="the team, day by day"),
    ),
)


def team_today(team: Team) -> date:
    """Today in the team's time zone."""
    return local_date(utcnow(), team.timezone)


@api(scope="read")
def participation_get(request: Request, s, token, body):
    """GET /api/teams/{team_id}/participation?from=&to=: days asked and answered, streaks and reply
    times of each member and the team (at most MAX_DAYS days; default the last DEFAULT_DAYS)."""
    t = find_team(s, token, request.path_params["team_id"])
    try:
        first, last = participation.span(FROM_Q.read(request), TO_Q.read(request), team_today(t))
    except participation.SpanError as e:
        raise ApiError(422, str(e)) from None
    r = participation.report(s, t, first, last, now=utcnow())
    return PARTICIPATION.dump(
        {"team_id": t.id, "first": first, "last": last, "team": r.team, "members": r.members, "days": r.days}
    )


@api(scope="read")
def export_get(request: Request, s, token, body):
    """GET /api/teams/{team_id}/export?format=csv|json|ndjson&from=&to=: the team's entries and
    comments, streamed."""
    t = find_team(s, token, request.path_params["team_id"])
    fmt = FORMAT_Q.read(request) or "csv"
    first, last = open_span(request)
    return download(
        exporting.export(t.id, first, last, fmt),
        exporting.MEDIA_TYPES[fmt],
        exporting.filename(t.id, first, last, fmt),
    )
