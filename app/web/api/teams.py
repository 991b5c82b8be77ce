"""GET /api/teams, /api/teams/{team_id} and /api/teams/{team_id}/members, and a team's settings
(GET and PATCH /api/teams/{team_id}/settings, through app.checkins.teams.update_team), by API token."""

from __future__ import annotations

from sqlalchemy import select

from app.checkins import teams as team_domain
from app.checkins.teams import TeamError
from app.checkins.times import ScheduleError
from app.models import ROLES, ApiToken, Member, Team, utcnow
from app.web.api.base import ApiError, api
from app.web.api.shapes import BOOL, INT, STR, STRINGS, Field, Shape, Type, listing, nullable, one_of
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
# a member's id; null (or 0 in a PATCH) for none
OWNER = Type(
    {"type": "integer", "nullable": True},
    load=lambda v: 0 if v is None else INT.load(v),
    what="a member's id, or null",
)
# (JSON name, update_team's keyword, type, description): each setting written once, for both shapes
_SETTINGS = (
    ("name", "name", STR, ""),
    ("timezone", "timezone", STR, "IANA time zone of the team's times"),
    ("reminder_time", "reminder_time", STR, "local HH:MM of the evening question"),
    ("digest_time", "digest_time", STR, "local HH:MM of the morning digest"),
    ("workdays", "workdays", STR, "ISO weekdays asked on, e.g. 12345 (1 = Monday)"),
    ("digest_workdays", "digest_workdays", STR, "ISO weekdays the digest goes out on"),
    ("digest_enabled", "digest_enabled", BOOL, "send the daily digest at all"),
    ("digest_include_quiet", "digest_include_quiet", BOOL, "list the members who wrote nothing"),
    ("skip_empty_digests", "skip_empty", BOOL, "no digest (daily or weekly) for a span nobody wrote in"),
    (
        "weekly_digest_day",
        "weekly_day",
        INT,
        "ISO weekday (one of digest_workdays) the weekly digest goes out with the daily one; 0: none",
    ),
    ("tracking", "tracking", BOOL, "open pixel and rewritten links in reminders and digests"),
    (
        "reply_domain",
        "reply_domain",
        STR,
        "domain of the reply+ addresses: '' for REPLY_DOMAIN, or one of INBOUND_DOMAINS",
    ),
    (
        "questions",
        "questions",
        STRINGS,
        "the 1 to 5 questions a reminder asks, each at most 200 characters, each a section of the digest; "
        'default ["What did you get done today?"]',
    ),
    (
        "nudge_hours",
        "nudge_hours",
        INT,
        "a second reminder to who has not replied, this many hours before the digest; 0: none",
    ),
    ("nudge_cutoff", "nudge_cutoff", STR, "local HH:MM: no nudge at or after it"),
    (
        "participation_summary",
        "participation_summary",
        BOOL,
        "each admin gets a weekly email of the team's participation, with their first digest of the week",
    ),
    (
        "blocker_owner",
        "blocker_owner",
        OWNER,
        "the id of the member (of this team) whom blockers notify instead of the admins and who may resolve "
        "them; null: the admins (as when the owner leaves the team); a PATCH sets null or 0 for the admins",
    ),
)
TEAM_SETTINGS = Shape(
    "TeamSettings", tuple(Field(name, kind, src=key, description=d) for name, key, kind, d in _SETTINGS)
)
TEAM_SETTINGS_PATCH = Shape(
    "TeamSettingsPatch",
    tuple(Field(name, kind, required=False, description=d) for name, _, kind, d in _SETTINGS),
)
_KEYWORD = {name: key for name, key, _, _ in _SETTINGS}
TEAM_LIST = listing("TeamList", "teams", TEAM)
MEMBER_LIST = listing("MemberList", "members", MEMBER)


def find_team(s, token: ApiToken, team_id: int) -> Team:
    """The team ``team_id`` if the token reaches it; ApiError 404 otherwise."""
    team = s.get(Team, team_id) if id_in_range(team_id) else None
    if team is None or (token.team_id is not None and token.team_id != team.id):
        raise ApiError(404, "no such team")
    return team


@api(scope="read")
def teams(request, s, token, body):
    """GET /api/teams: the teams the token reaches."""
    stmt = select(Team).order_by(Team.id)
    if token.team_id is not None:
        stmt = stmt.where(Team.id == token.team_id)
    return TEAM_LIST.dump({"teams": s.execute(stmt).scalars()})


@api(scope="read")
def team(request, s, token, body):
    """GET /api/teams/{team_id}: one team."""
    return TEAM.dump(find_team(s, token, request.path_params["team_id"]))


@api(scope="read")
def members(request, s, token, body):
    """GET /api/teams/{team_id}/members: the team's members (removed ones with active=false)."""
    t = find_team(s, token, request.path_params["team_id"])
    rows = s.execute(select(Member).where(Member.team_id == t.id).order_by(Member.id)).scalars()
    return MEMBER_LIST.dump({"members": rows})


@api(scope="read")
def settings_get(request, s, token, body):
    """GET /api/teams/{team_id}/settings: every setting of the team."""
    t = find_team(s, token, request.path_params["team_id"])
    return TEAM_SETTINGS.dump(team_domain.current(s, t.id))


@api(scope="manage", body=True, max_bytes=16 * 1024)
def settings_patch(request, s, token, body):
    """PATCH /api/teams/{team_id}/settings {...}: change the given settings (the page's and the CLI's
    update_team); 400 with the reason, and nothing changed, when one is refused."""
    t = find_team(s, token, request.path_params["team_id"])
    unknown = sorted(set(body) - _KEYWORD.keys())
    if unknown:
        raise ApiError(400, f"unknown settings: {', '.join(unknown)[:200]}")
    got = TEAM_SETTINGS_PATCH.load(body)
    try:
        team_domain.update_team(
            s,
            t.id,
            now=utcnow(),
            settings=request.app.state.settings,
            **{_KEYWORD[name]: value for name, value in got.items()},
        )
    except (TeamError, ScheduleError) as e:
        raise ApiError(400, str(e)) from None
    return TEAM_SETTINGS.dump(team_domain.current(s, t.id))
