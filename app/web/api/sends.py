"""Scheduled sends by API: POST /api/messages, DELETE /api/messages/{id}, DELETE /api/batches/{batch_id}.

Thin endpoints over app.relay.sends: authenticate (API token), read a bounded JSON
body, store and commit, enqueue what is due now, answer. Every refusal is a
JSON error with the reason.
"""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.errors import RequestError
from app.models import utcnow
from app.relay import sends
from app.web.common import TooLarge, api_token, error, id_in_range, in_thread, no_api_token, read_limited
from jobs.enqueue import enqueue_deliveries

log = logging.getLogger("donebox.api")


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _create(body, token, settings) -> sends.Accepted:
    with session() as s:
        return sends.create(s, body, token, now=utcnow(), settings=settings)


async def create(request: Request) -> JSONResponse:
    """POST /api/messages: send now or at ``send_at``; 202 (200 when the idempotency key is known)."""
    settings = request.app.state.settings
    token = await in_thread(api_token, request)
    if token is None:
        return no_api_token()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return error(415, "Content-Type must be application/json")
    try:
        raw = await read_limited(request, settings.api_max_bytes)
    except TooLarge:
        return error(413, f"body larger than {settings.api_max_bytes} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        return error(400, f"the body is not valid JSON: {e}")
    try:
        accepted = await in_thread(_create, body, token, settings)
    except RequestError as e:
        return error(e.status, str(e))
    if accepted.state == "queued" and not accepted.duplicate:
        enqueue_deliveries([accepted.id])
    payload = {
        "id": accepted.id,
        "state": accepted.state,
        "send_at": _iso(accepted.send_at),
        "batch_id": accepted.batch_id,
        "duplicate": accepted.duplicate,
    }
    return JSONResponse(payload, status_code=200 if accepted.duplicate else 202)


def _cancel(message_id, token):
    with session() as s:
        return sends.cancel(s, message_id, token, now=utcnow())


async def cancel(request: Request) -> JSONResponse:
    """DELETE /api/messages/{id}: cancel a message that is still scheduled (409 once queued)."""
    token = await in_thread(api_token, request)
    if token is None:
        return no_api_token()
    message_id = request.path_params["id"]
    if not id_in_range(message_id):
        return error(404, f"no message {message_id}")
    try:
        state = await in_thread(_cancel, message_id, token)
    except RequestError as e:
        return error(e.status, str(e))
    return JSONResponse({"id": message_id, "state": state})


def _cancel_batch(batch_id, token):
    with session() as s:
        return sends.cancel_batch(s, batch_id, token, now=utcnow())


async def cancel_batch(request: Request) -> JSONResponse:
    """DELETE /api/batches/{batch_id}: cancel every message of the batch that is still scheduled."""
    token = await in_thread(api_token, request)
    if token is None:
        return no_api_token()
    try:
        result = await in_thread(_cancel_batch, request.path_params["batch_id"], token)
    except RequestError as e:
        return error(e.status, str(e))
    return JSONResponse(result)
