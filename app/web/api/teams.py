"""The JSON API under /api/: teams, members, entries (CRUD) and message events, with bearer tokens.

A token made in a team's settings reaches that team only; a token made with
``donebox api-token create`` (no --team) reaches every team. Anything outside
the token's reach answers 404, as if it did not exist. Shapes: app/web/openapi.py.
"""

from __future__ import annotations

import json
from datetime import date

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.checkins import entries
from app.db import session
from app.models import ApiToken, Entry, Member, MessageEvent, OutboundMessage, Team, utcnow
from app.web.common import id_in_range, in_thread

MAX_BODY = 64 * 1024


def team_json(t: Team) -> dict:
    """A team as the API shows it (openapi.SCHEMAS)."""
    return {
        "id": t.id,
        "name": t.name,
        "timezone": t.timezone,
        "reminder_time": t.reminder_time,
        "digest_time": t.digest_time,
        "workdays": t.workdays,
    }


def member_json(m: Member) -> dict:
    """A member as the API shows it (openapi.SCHEMAS)."""
    return {
        "id": m.id,
        "team_id": m.team_id,
        "email": m.email,
        "name": m.name,
        "role": m.role,
        "timezone": m.timezone,
        "active": m.active,
    }


def entry_json(e: Entry) -> dict:
    """An entry as the API shows it (openapi.SCHEMAS)."""
    return {
        "id": e.id,
        "team_id": e.team_id,
        "member_id": e.member_id,
        "day": e.day.isoformat(),
        "text": e.text,
        "kind": e.kind,
        "tags": e.tags.split(),
        "mentions": e.mentions.split(),
        "inbound_id": e.inbound_id,
        "created_at": e.created_at.isoformat(),
    }


def event_json(ev: MessageEvent) -> dict:
    """A message event as the API shows it (openapi.SCHEMAS)."""
    return {
        "id": ev.id,
        "message_id": ev.message_id,
        "kind": ev.kind,
        "from_state": ev.from_state,
        "detail": ev.detail,
        "created_at": ev.created_at.isoformat(),
    }


def _int(value, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise HTTPException(400, f"{what} must be an integer") from None
    if not id_in_range(n):
        raise HTTPException(400, f"{what} is out of range")
    return n


def _limit(request: Request, default: int = 100, most: int = 500) -> int:
    value = request.query_params.get("limit")
    return default if value is None else min(_int(value, "limit"), most)


def _token(request: Request, s) -> ApiToken:
    from app.relay.api_tokens import bearer, check_token

    token = check_token(s, bearer(request.headers.get("authorization", "")))
    if token is None:
        raise HTTPException(401, "missing, unknown or revoked bearer token", {"WWW-Authenticate": "Bearer"})
    return token


def _team(s, token: ApiToken, team_id: int) -> Team:
    team = s.get(Team, team_id) if id_in_range(team_id) else None
    if team is None or (token.team_id is not None and token.team_id != team.id):
        raise HTTPException(404, "no such team")
    return team


def _entry(s, token: ApiToken, entry_id: int) -> Entry:
    e = s.get(Entry, entry_id) if id_in_range(entry_id) else None
    if e is None or (token.team_id is not None and token.team_id != e.team_id):
        raise HTTPException(404, "no such entry")
    return e


async def _json_body(request: Request) -> dict:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "Content-Type must be application/json")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"body larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return data


def _str(data: dict, key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise HTTPException(400, f"{key} must be a string" if key in data else f"{key} is required")
    return value


def api(handler):
    """Run a sync ``handler(request, s, token, body)`` in the thread pool inside one DB session."""

    async def endpoint(request: Request):
        body = await _json_body(request) if request.method in ("POST", "PATCH") else {}

        def run():
            with session() as s:
                return handler(request, s, _token(request, s), body)

        result = await in_thread(run)
        return result if isinstance(result, Response) else JSONResponse(result)

    endpoint.__doc__ = handler.__doc__
    endpoint.__name__ = handler.__name__
    return endpoint


@api
def teams(request, s, token, body):
    """GET /api/teams: the teams the token reaches."""
    stmt = select(Team).order_by(Team.id)
    if token.team_id is not None:
        stmt = stmt.where(Team.id == token.team_id)
    return {"teams": [team_json(t) for t in s.execute(stmt).scalars()]}


@api
def team(request, s, token, body):
    """GET /api/teams/{team_id}: one team."""
    return team_json(_team(s, token, request.path_params["team_id"]))


@api
def members(request, s, token, body):
    """GET /api/teams/{team_id}/members: the team's members (removed ones with active=false)."""
    t = _team(s, token, request.path_params["team_id"])
    rows = s.execute(select(Member).where(Member.team_id == t.id).order_by(Member.id)).scalars()
    return {"members": [member_json(m) for m in rows]}


@api
def entry_list(request, s, token, body):
    """GET /api/teams/{team_id}/entries?day=&member_id=&q=&limit=: the team's entries, newest first."""
    t = _team(s, token, request.path_params["team_id"])
    qp = request.query_params
    day = None
    if "day" in qp:
        try:
            day = date.fromisoformat(qp["day"])
        except ValueError:
            raise HTTPException(400, "day must be YYYY-MM-DD") from None
    member_id = _int(qp["member_id"], "member_id") if "member_id" in qp else None
    rows = entries.search(
        s, t.id, qp.get("q", "")[:200], member_id=member_id, day=day, limit=_limit(request), everything=True
    )
    return {"entries": [entry_json(e) for e in rows]}


@api
def entry_create(request, s, token, body):
    """POST /api/teams/{team_id}/entries {member_id, text, kind?, day?}: 201 with the entries made."""
    t = _team(s, token, request.path_params["team_id"])
    member_id = body.get("member_id")
    if not isinstance(member_id, int) or isinstance(member_id, bool):
        raise HTTPException(400, "member_id (an integer) is required")
    m = s.get(Member, member_id) if id_in_range(member_id) else None
    if m is None or m.team_id != t.id or not m.active:
        raise HTTPException(400, "member_id is not an active member of this team")
    day_s = _str(body, "day", utcnow().date().isoformat())
    try:
        day = date.fromisoformat(day_s)
    except ValueError:
        raise HTTPException(400, "day must be YYYY-MM-DD") from None
    try:
        made = entries.add(s, m, day, _str(body, "text"), _str(body, "kind", "done"), now=utcnow())
    except entries.EntryError as e:
        raise HTTPException(400, str(e)) from None
    return JSONResponse({"entries": [entry_json(e) for e in made]}, status_code=201)


@api
def entry_get(request, s, token, body):
    """GET /api/entries/{entry_id}: one entry."""
    return entry_json(_entry(s, token, request.path_params["entry_id"]))


@api
def entry_patch(request, s, token, body):
    """PATCH /api/entries/{entry_id} {text?, kind?}: change an entry."""
    e = _entry(s, token, request.path_params["entry_id"])
    try:
        entries.update(s, e, _str(body, "text", e.text), _str(body, "kind", e.kind))
    except entries.EntryError as err:
        raise HTTPException(400, str(err)) from None
    return entry_json(e)


@api
def entry_delete(request, s, token, body):
    """DELETE /api/entries/{entry_id}: 204."""
    s.delete(_entry(s, token, request.path_params["entry_id"]))
    return Response(status_code=204)


@api
def events(request, s, token, body):
    """GET /api/events?message_id=&after_id=&limit=: message events in id order (poll with after_id)."""
    qp = request.query_params
    stmt = select(MessageEvent).join(OutboundMessage, OutboundMessage.id == MessageEvent.message_id)
    if token.team_id is not None:
        stmt = stmt.where(OutboundMessage.team_id == token.team_id)
    if "message_id" in qp:
        stmt = stmt.where(MessageEvent.message_id == _int(qp["message_id"], "message_id"))
    if "after_id" in qp:
        after = qp["after_id"]
        stmt = stmt.where(MessageEvent.id > (0 if after == "0" else _int(after, "after_id")))
    rows = s.execute(stmt.order_by(MessageEvent.id).limit(_limit(request))).scalars()
    return {"events": [event_json(ev) for ev in rows]}


async def openapi(request: Request):
    """GET /api/openapi.json: the OpenAPI 3.1 document of this API."""
    from app.web.api.openapi import document

    return JSONResponse(document(request.app.state.settings.base_url))
