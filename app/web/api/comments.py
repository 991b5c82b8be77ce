"""Comments by API token: GET /api/teams/{team_id}/comments, the replies to a team's digests
(app.checkins.comments), newest first, a page at a time; an entry's own are in GET /api/entries/{id}."""

from __future__ import annotations

from app.checkins import comments
from app.models import Comment
from app.web.api.base import BEFORE_Q, ApiError, DateQuery, IntQuery, api, open_span
from app.web.api.shapes import DATE_TIME, DAY, INT, STR, Field, Shape, next_before, nullable, one_of, paged
from app.web.api.teams import find_team

ON = ("entry", "member", "day")


def _on(c: Comment) -> str:
    return "entry" if c.entry_id else "member" if c.member_id else "day"


COMMENT = Shape(
    "Comment",
    (
        Field("id", INT),
        Field("team_id", INT),
        Field("day", DAY, description="the day of the digest it answers (the entry's day when on an entry)"),
        Field("author_id", INT, description="the member who wrote it (a reply to their digest)"),
        Field("on", one_of(STR, ON), _on, description="what it is on: an entry, a member or the day"),
        Field(
            "entry_id",
            nullable(INT),
            description="the entry it answers (null when on a member or the day; it may be deleted since)",
        ),
        Field("member_id", nullable(INT), description="the member it is about when on a member, else null"),
        Field("text", STR),
        Field("inbound_id", nullable(INT), description="the reply it came from"),
        Field("created_at", DATE_TIME),
    ),
)
COMMENT_PAGE = paged("CommentPage", "comments", COMMENT)

DAY_Q = DateQuery("day", "only the comments of this day (not with from or to)")
LIMIT_Q = IntQuery("limit", 100, most=500, description="at most 500")


@api(scope="read")
def comment_list(request, s, token, body):
    """GET /api/teams/{team_id}/comments?day=|from=&to=&limit=&before=: the team's comments, newest
    first; ``next_before`` pages on."""
    t = find_team(s, token, request.path_params["team_id"])
    day, (first, last) = DAY_Q.read(request), open_span(request)
    if day is not None and (first is not None or last is not None):
        raise ApiError(400, "day: give day, or from and to, not both")
    if day is not None:
        first = last = day
    limit = LIMIT_Q.read(request)
    rows = comments.page(s, t.id, first=first, last=last, before=BEFORE_Q.read(request), limit=limit)
    return COMMENT_PAGE.dump({"comments": rows, "next_before": next_before(rows, limit)})
