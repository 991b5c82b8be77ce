"""Entries by API token: list and add under /api/teams/{team_id}/entries, read (with its comments),
change and delete one.

The domain (app.checkins.entries) checks the text and the kind and gives the reason.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.responses import JSONResponse, Response

from app.checkins import comments, entries, questions, teams
from app.models import ApiToken, Entry, Member, utcnow
from app.web.api.base import ApiError, DateQuery, IntQuery, TextQuery, api
from app.web.api.comments import COMMENT
from app.web.api.shapes import DATE_TIME, DAY, INT, STR, WORDS, Field, Shape, listing, many, nullable, one_of
from app.web.api.teams import find_team
from app.web.common import id_in_range

MAX_BODY = 64 * 1024
KIND = one_of(STR, entries.KINDS)
TEXT = replace(STR, schema={"type": "string", "minLength": 1})

ENTRY = Shape(
    "Entry",
    (
        Field("id", INT),
        Field("team_id", INT),
        Field("member_id", INT),
        Field("day", DAY),
        Field("text", STR),
        Field("kind", KIND),
        Field("tags", WORDS, description="the text's #tags, without '#'"),
        Field("mentions", WORDS, description="the text's @mentions, without '@'"),
        Field("inbound_id", nullable(INT), description="the email it came from, if it came by email"),
        Field("created_at", DATE_TIME),
        Field("question", INT, description="which of the team's questions it answers, from 0"),
        Field("closed_on", nullable(DAY), description="a goal: the day it was closed; null while open"),
        Field("closed_as", STR, description="a goal: '' while open, done or carried"),
        Field(
            "comments",
            many(COMMENT),
            required=False,
            description="GET /api/entries/{entry_id} only: the replies to the digest on it, oldest first",
        ),
    ),
)
ENTRY_LIST = listing("EntryList", "entries", ENTRY)
ENTRY_CREATE = Shape(
    "EntryCreate",
    (
        Field("member_id", INT, description="an active member of the team"),
        Field("text", TEXT, description="one entry per line"),
        Field("kind", KIND, required=False, default="done"),
        Field("day", DAY, required=False, description="default: today (UTC)"),
    ),
)
ENTRY_PATCH = Shape(
    "EntryPatch",
    (Field("text", TEXT, required=False), Field("kind", KIND, required=False)),
)

DAY_Q = DateQuery("day", "only this day")
MEMBER_Q = IntQuery("member_id", description="only this member")
WORDS_Q = TextQuery("q", 200, "full-text search: every word must match")
LIMIT_Q = IntQuery("limit", 100, most=500, description="at most 500")


def find_entry(s, token: ApiToken, entry_id: int) -> Entry:
    """The entry ``entry_id`` if the token reaches its team; ApiError 404 otherwise."""
    e = s.get(Entry, entry_id) if id_in_range(entry_id) else None
    if e is None or (token.team_id is not None and token.team_id != e.team_id):
        raise ApiError(404, "no such entry")
    return e


@api(scope="read")
def entry_list(request, s, token, body):
    """GET /api/teams/{team_id}/entries?day=&member_id=&q=&limit=: the team's entries, newest first."""
    t = find_team(s, token, request.path_params["team_id"])
    rows = entries.search(
        s,
        t.id,
        WORDS_Q.read(request),
        member_id=MEMBER_Q.read(request),
        day=DAY_Q.read(request),
        limit=LIMIT_Q.read(request),
        everything=True,
    )
    return ENTRY_LIST.dump({"entries": rows})


@api(scope="manage", body=True, max_bytes=MAX_BODY)
def entry_create(request, s, token, body):
    """POST /api/teams/{team_id}/entries {member_id, text, kind?, day?}: 201 with the entries made."""
    t = find_team(s, token, request.path_params["team_id"])
    got = ENTRY_CREATE.load(body)
    m = s.get(Member, got["member_id"]) if id_in_range(got["member_id"]) else None
    if m is None or m.team_id != t.id or not m.active:
        raise ApiError(400, "member_id is not an active member of this team")
    day = got.get("day") or utcnow().date()
    try:
        made = entries.add(
            s,
            m,
            day,
            got["text"],
            got["kind"],
            now=utcnow(),
            settings=request.app.state.settings,
            questions=questions.of(teams.options(s, m.team_id)),
        )
    except entries.EntryError as e:
        raise ApiError(400, str(e)) from None
    return JSONResponse(ENTRY_LIST.dump({"entries": made}), status_code=201)


@api(scope="read")
def entry_get(request, s, token, body):
    """GET /api/entries/{entry_id}: one entry, with the comments on it."""
    e = find_entry(s, token, request.path_params["entry_id"])
    return ENTRY.dump(e, comments=comments.on_entry(s, e))


@api(scope="manage", body=True, max_bytes=MAX_BODY)
def entry_patch(request, s, token, body):
    """PATCH /api/entries/{entry_id} {text?, kind?}: change an entry."""
    e = find_entry(s, token, request.path_params["entry_id"])
    got = ENTRY_PATCH.load(body)
    try:
        entries.update(s, e, got.get("text", e.text), got.get("kind", e.kind))
    except entries.EntryError as err:
        raise ApiError(400, str(err)) from None
    return ENTRY.dump(e)


@api(scope="manage")
def entry_delete(request, s, token, body):
    """DELETE /api/entries/{entry_id}: 204."""
    s.delete(find_entry(s, token, request.path_params["entry_id"]))
    return Response(status_code=204)
