"""/api/suppressions: the suppression list by API token: list, add, remove, import and export CSV.

Thin endpoints over app.relay.suppressions, the list's one writer. A token made in a team's
settings sees and changes only that team's entries (``Suppression.team_id``; what it adds is its
team's); an entry of another team or of no team (instance-wide) is a 404 to it, and adding over
one is a 409 naming why. A token of every team (``donebox api-token create``) reaches every entry
and may give ``team_id``.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from app.errors import RequestError
from app.models import Team, utcnow
from app.relay import suppressions
from app.web.api.base import BEFORE_Q, ApiError, ChoiceQuery, IntQuery, TextQuery, api
from app.web.api.shapes import (
    BLANK_IS_NULL,
    BOOL,
    DATE_TIME,
    INT,
    STR,
    STRINGS,
    Field,
    Shape,
    next_before,
    nullable,
    one_of,
    paged,
)

REASON = one_of(STR, suppressions.REASONS)
SUPPRESSION = Shape(
    "Suppression",
    (
        Field("id", INT),
        Field("address", STR, "email"),
        Field("reason", REASON),
        Field("team_id", nullable(INT), description="whose entry it is; null: instance-wide (an operator's)"),
        Field("detail", STR),
        Field("created_at", DATE_TIME),
        Field("expires_at", nullable(DATE_TIME), description="null: for good"),
        Field("active", BOOL, lambda e: suppressions.active(e, utcnow()), description="it suppresses now"),
        Field("event_kind", BLANK_IS_NULL, description="the kind of event that caused it"),
        Field("event_id", BLANK_IS_NULL, description="the provider's id of that event"),
        Field("message_id", nullable(INT), description="the outbound message the event was about"),
    ),
)
SUPPRESSION_PAGE = paged("SuppressionPage", "items", SUPPRESSION)
SUPPRESSION_ADD = Shape(
    "SuppressionAdd",
    (
        Field("address", STR),
        Field("reason", REASON, required=False, default="manual"),
        Field("expires_at", DATE_TIME, required=False, description="with a UTC offset; default: never"),
        Field("detail", STR, required=False, description="a note for people; default: who added it"),
        Field(
            "team_id", INT, required=False, description="whose entry (all-team tokens only; default: none)"
        ),
    ),
)
SUPPRESSION_REMOVED = Shape("SuppressionRemoved", (Field("address", STR), Field("reason", REASON)))
IMPORTED = Shape(
    "SuppressionImport",
    (
        Field("imported", INT, description="entries written (new, or replacing a weaker or expired one)"),
        Field("unchanged", INT, description="good lines the list already had (as strong or stronger)"),
        Field("errors", STRINGS, description='bad lines, "line N: field: why"; nothing of them was imported'),
        Field("more_errors", INT, description="bad lines past the first 100, not listed"),
    ),
)

TEAM_Q = IntQuery("team_id", description="only this team's entries")
REASON_Q = ChoiceQuery("reason", suppressions.REASONS, "only entries of this reason")
WORDS_Q = TextQuery("q", 320, "only addresses containing this")
LIMIT_Q = IntQuery("limit", 50, high=500)


def _teams(token) -> list[int] | None:
    """The teams whose entries ``token`` reaches; None: every entry."""
    return None if token.team_id is None else [token.team_id]


def _team(s, token, team_id: int | None) -> int | None:
    """The team an entry the token adds belongs to; ApiError 404 for one it does not reach."""
    if team_id is None:
        return token.team_id
    if (token.team_id is not None and team_id != token.team_id) or s.get(Team, team_id) is None:
        raise ApiError(404, f"team_id: no team {team_id}")
    return team_id


@api(scope="read")
def list_suppressions(request, s, token, body):
    """GET /api/suppressions?team_id=&reason=&q=&before=&limit=: newest first, one page."""
    team_id, limit = TEAM_Q.read(request), LIMIT_Q.read(request)
    if team_id is not None and token.team_id is not None and team_id != token.team_id:
        raise ApiError(404, f"team_id: no team {team_id}")
    rows = suppressions.page(
        s,
        team_ids=_teams(token),
        team_id=team_id,
        reason=REASON_Q.read(request),
        q=WORDS_Q.read(request),
        before=BEFORE_Q.read(request),
        limit=limit,
    )
    return SUPPRESSION_PAGE.dump({"items": rows, "next_before": next_before(rows, limit)})


@api(body=True)
def add_suppression(request, s, token, body):
    """POST /api/suppressions: add one entry; 201 with it, 409 when it would change nothing."""
    data, now = SUPPRESSION_ADD.load(body), utcnow()
    try:
        expires_at = data.get("expires_at")
        entry = suppressions.add_checked(
            s,
            data["address"],
            data["reason"],
            admin_team_ids=_teams(token),
            team_id=_team(s, token, data.get("team_id")),
            expires_at=suppressions.parse_time(expires_at, "expires_at") if expires_at else None,
            detail=data.get("detail") or f"added with API token {token.name!r}",
            now=now,
        )
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    return JSONResponse(SUPPRESSION.dump(entry), status_code=201)


@api()
def remove_suppression(request, s, token, body):
    """DELETE /api/suppressions/{address}: take the address off the list (404 when not in reach)."""
    address = request.path_params["address"]
    entry = suppressions.lookup(s, address)
    if entry is None or (token.team_id is not None and entry.team_id != token.team_id):
        raise ApiError(404, f"address: {address[:320]} is not on the list")
    reason = suppressions.remove(s, entry.email)
    return SUPPRESSION_REMOVED.dump({"address": entry.email, "reason": reason})


@api(body=True, max_bytes=suppressions.MAX_IMPORT_BYTES, media_type="text/csv")
def import_suppressions(request, s, token, body):
    """POST /api/suppressions/import: CSV lines address[,reason[,expires_at]]; bad lines reported."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"body: not UTF-8 (byte {e.start})") from None
    try:
        result = suppressions.import_csv(
            s,
            text,
            admin_team_ids=_teams(token),
            team_id=token.team_id,
            detail=f"imported with API token {token.name!r}",
            now=utcnow(),
        )
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    return IMPORTED.dump(result)


@api(scope="read")
def export_suppressions(request, s, token, body):
    """GET /api/suppressions/export: the entries in reach that suppress now, as CSV import reads."""
    text = suppressions.export_csv(s, team_ids=_teams(token), now=utcnow())
    headers = {"Content-Disposition": 'attachment; filename="suppressions.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
