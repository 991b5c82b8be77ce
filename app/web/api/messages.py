"""GET /api/messages and /api/messages/{id}: a message, its state and its events (API token).

A token bound to a team sees only that team's messages; any other id is a 404.
"""

from __future__ import annotations

import json

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.models import MessageEvent, OutboundMessage
from app.relay.outbox import TRANSITIONS
from app.web.common import MAX_ID, api_token, error, id_in_range, in_thread, no_api_token

MAX_LIMIT = 500


def _iso(t) -> str | None:
    return t.isoformat() if t else None


def _event(e: MessageEvent) -> dict:
    try:
        detail = json.loads(e.detail) if e.detail.startswith("{") else e.detail
    except ValueError:
        detail = e.detail
    return {"kind": e.kind, "from_state": e.from_state or None, "detail": detail, "at": _iso(e.created_at)}


def _message(m: OutboundMessage, events: list[MessageEvent] | None = None) -> dict:
    out = {
        "id": m.id,
        "idempotency_key": m.idempotency_key,
        "kind": m.kind,
        "team_id": m.team_id,
        "to": m.to_addr,
        "subject": m.subject,
        "message_id": m.message_id,
        "state": m.state,
        "attempts": m.attempts,
        "error": m.error or None,
        "sender": m.sender or None,
        "provider_id": m.provider_id or None,
        "created_at": _iso(m.created_at),
        "updated_at": _iso(m.updated_at),
        "send_at": _iso(m.send_at),
        "sent_at": _iso(m.sent_at),
        "next_attempt_at": _iso(m.next_attempt_at),
        "expires_at": _iso(m.expires_at),
        "purged": m.purged_at is not None,
    }
    if events is not None:
        out["events"] = [_event(e) for e in events]
    return out


def _auth(request: Request):
    token = api_token(request)
    return token, None if token else no_api_token()


def _one(message_id: int, team_id: int | None) -> dict | None:
    with session() as s:
        m = s.get(OutboundMessage, message_id)
        if m is None or (team_id is not None and m.team_id != team_id):
            return None
        events = s.execute(
            select(MessageEvent).where(MessageEvent.message_id == m.id).order_by(MessageEvent.id)
        ).scalars()
        return _message(m, list(events))


async def get_message(request: Request) -> JSONResponse:
    """GET /api/messages/{id}: the message and its events timeline, oldest first."""
    token, denied = await in_thread(_auth, request)
    if denied:
        return denied
    raw = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 18:
        return error(400, "a message id is a positive integer")
    if not id_in_range(int(raw)):
        return error(404, f"no message {raw}")
    found = await in_thread(_one, int(raw), token.team_id)
    return JSONResponse(found) if found else error(404, f"no message {raw}")


def _list(state: str | None, team_id: int | None, limit: int, before: int | None) -> list[dict]:
    M = OutboundMessage
    stmt = select(M).order_by(M.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(M.state == state)
    if team_id is not None:
        stmt = stmt.where(M.team_id == team_id)
    if before is not None:
        stmt = stmt.where(M.id < before)
    with session() as s:
        return [_message(m) for m in s.execute(stmt).scalars()]


def _int(value: str | None, name: str, default: int | None, low: int, high: int) -> int | None:
    if value is None or value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return int(value)


async def list_messages(request: Request) -> JSONResponse:
    """GET /api/messages?state=&limit=&before=: newest first; ``next_before`` pages on."""
    token, denied = await in_thread(_auth, request)
    if denied:
        return denied
    q = request.query_params
    state = q.get("state") or None
    if state and state not in TRANSITIONS:
        return error(400, f"state must be one of {', '.join(TRANSITIONS)}")
    try:
        limit = _int(q.get("limit"), "limit", 50, 1, MAX_LIMIT)
        before = _int(q.get("before"), "before", None, 1, MAX_ID)
    except ValueError as e:
        return error(400, str(e))
    rows = await in_thread(_list, state, token.team_id, limit, before)
    return JSONResponse({"messages": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None})
