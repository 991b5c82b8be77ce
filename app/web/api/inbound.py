"""GET /api/inbound/{id} and GET /api/inbound?state=...: stored inbound mail, normalized, by API token.

A token limited to a team sees only messages attributed to a member of that team.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.inbound.accept import STATES
from app.inbound.process import load_email
from app.models import Entry, InboundMessage, Member
from app.relay.api_tokens import bearer, check_token
from app.web.common import MAX_ID, error, id_in_range, in_thread, no_api_token
from parsers.message import InboundEmail

MAX_LIMIT = 200


def _visible(s, token, row: InboundMessage) -> bool:
    if token.team_id is None:
        return True
    if row.member_id is None:
        return False
    member = s.get(Member, row.member_id)
    return member is not None and member.team_id == token.team_id


def detail(s, row: InboundMessage) -> dict:
    """The API document of one stored message."""
    try:
        email = load_email(row)
    except Exception as e:  # noqa: BLE001 - a stored payload our adapters can no longer read
        email = InboundEmail(notes=(f"cannot normalize the stored payload: {type(e).__name__}",))
    entries = s.execute(select(Entry).where(Entry.inbound_id == row.id).order_by(Entry.id)).scalars()
    return {
        "id": row.id,
        "provider": row.provider,
        "message_id": email.message_id,
        "from": email.from_addr,
        "from_name": email.from_name,
        "to": list(email.to),
        "cc": list(email.cc),
        "subject": email.subject,
        "date": email.date.isoformat() if email.date else None,
        "text": email.text,
        "html": email.html,
        "reply_text": row.reply_text,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in email.attachments
        ],
        "spf": email.spf,
        "dkim": email.dkim,
        "state": row.state,
        "error": row.error,
        "notes": list(dict.fromkeys([*email.notes, *(n for n in row.notes.split("\n") if n)])),
        "member_id": row.member_id,
        "received_at": row.received_at.isoformat() if row.received_at else None,
        "entries": [{"id": e.id, "day": e.day.isoformat(), "kind": e.kind, "text": e.text} for e in entries],
    }


def _summary(row: InboundMessage) -> dict:
    return {
        "id": row.id,
        "provider": row.provider,
        "state": row.state,
        "error": row.error,
        "from": row.from_addr,
        "subject": row.subject,
        "member_id": row.member_id,
        "received_at": row.received_at.isoformat() if row.received_at else None,
    }


def _get(raw_token: str, inbound_id: int):
    with session() as s:
        token = check_token(s, raw_token)
        if token is None:
            return 401, None
        row = s.get(InboundMessage, inbound_id)
        if row is None or not _visible(s, token, row):
            return 404, None
        return 200, detail(s, row)


def _list(raw_token: str, state: str | None, limit: int, before: int | None):
    with session() as s:
        token = check_token(s, raw_token)
        if token is None:
            return 401, None
        q = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
        if state:
            q = q.where(InboundMessage.state == state)
        if before:
            q = q.where(InboundMessage.id < before)
        if token.team_id is not None:
            members = select(Member.id).where(Member.team_id == token.team_id)
            q = q.where(InboundMessage.member_id.in_(members))
        rows = s.execute(q).scalars().all()
        items = [_summary(r) for r in rows]
        return 200, {"items": items, "next_before": rows[-1].id if len(rows) == limit else None}


async def get_inbound(request: Request) -> JSONResponse:
    """GET /api/inbound/{id}: one message, normalized, with its reply text and entries."""
    token = bearer(request.headers.get("authorization", ""))
    if not token:
        return no_api_token()
    try:
        inbound_id = int(request.path_params["id"])
    except ValueError:
        return error(404, "no such inbound message")
    if not id_in_range(inbound_id):
        return error(404, "no such inbound message")
    status, doc = await in_thread(_get, token, inbound_id)
    if status == 401:
        return no_api_token()
    if status == 404:
        return error(404, "no such inbound message")
    return JSONResponse(doc)


async def list_inbound(request: Request) -> JSONResponse:
    """GET /api/inbound?state=failed&limit=50&before=ID: newest first, one page."""
    token = bearer(request.headers.get("authorization", ""))
    if not token:
        return no_api_token()
    state = request.query_params.get("state") or None
    if state is not None and state not in STATES:
        return error(400, f"state must be one of {', '.join(STATES)}")
    try:
        limit = int(request.query_params.get("limit", "50"))
        before = int(request.query_params["before"]) if request.query_params.get("before") else None
    except ValueError:
        return error(400, "limit and before must be integers")
    if not 1 <= limit <= MAX_LIMIT:
        return error(400, f"limit must be between 1 and {MAX_LIMIT}")
    if before is not None and not id_in_range(before):
        return error(400, f"before must be between 1 and {MAX_ID}")
    status, doc = await in_thread(_list, token, state, limit, before)
    if status == 401:
        return no_api_token()
    return JSONResponse(doc)
