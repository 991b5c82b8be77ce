"""GET /api/teams, /api/teams/{team_id} and /api/teams/{team_id}/members, by API token."""

from __future__ import annotations

from sqlalchemy import select

from app.models import ROLES, ApiToken, Member, Team
from app.web.api.base import ApiError, api
from app.web.api.shapes import BOOL, INT, STR, Field, Shape, listing, nullable, one_of
from app.web.common import id_in_range

TEAM = Shape(
    "Team",
    (
        Field("id", INT),
        Field("name", STR),
        Field("timezone", STR, description="IANA time zone of the team's times"),
        Field("reminder_time", STR, description="local HH:MM of the evening question"),
        Field("digest_time", STR, description="local HH:MM of the morning digest"),
        Field("workdays", STR, description="ISO weekdays asked on, e.g. 12345 (1 = Monday)"),
    ),
)
MEMBER = Shape(
    "Member",
    (
        Field("id", INT),
        Field("team_id", INT),
        Field("email", STR),
        Field("name", STR),
        Field("role", one_of(STR, ROLES)),
        Field("timezone", nullable(STR), description="null: the team's"),
        Field("active", BOOL, description="false once removed from the team"),
    ),
)
TEAM_LIST = listing("TeamList", "teams", TEAM)
MEMBER_LIST = listing("MemberList", "members", MEMBER)


def find_team(s, token: ApiToken, team_id: int) -> Team:
    """The team ``team_id`` if the token reaches it; ApiError 404 otherwise."""
    team = s.get(Team, team_id) if id_in_range(team_id) else None
    if team is None or (token.team_id is not None and token.team_id != team.id):
        raise ApiError(404, "no such team")
    return team


@api()
def teams(request, s, token, body):
    """GET /api/teams: the teams the token reaches."""
    stmt = select(Team).order_by(Team.id)
    if token.team_id is not None:
        stmt = stmt.where(Team.id == token.team_id)
    return TEAM_LIST.dump({"teams": s.execute(stmt).scalars()})


@api()
def team(request, s, token, body):
    """GET /api/teams/{team_id}: one team."""
    return TEAM.dump(find_team(s, token, request.path_params["team_id"]))


@api()
def members(request, s, token, body):
    """GET /api/teams/{team_id}/members: the team's members (removed ones with active=false)."""
    t = find_team(s, token, request.path_params["team_id"])
    rows = s.execute(select(Member).where(Member.team_id == t.id).order_by(Member.id)).scalars()
    return MEMBER_LIST.dump({"members": rows})
