"""Inbound endpoints: verify, limit, store, commit, enqueue the id, answer."""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from app import inbound as domain
from app.db import session
from app.models import utcnow
from app.web.common import error, in_thread
from parsers.message import looks_like_message, raw_message_id

log = logging.getLogger("donebox.inbound")


class TooLarge(Exception):
    """Raised when a request body passes MAX_INBOUND_BYTES while it is being read."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, read in chunks; raises TooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer_ok(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


def _store(provider: str, raw: bytes, key: str) -> tuple[int, bool]:
    with session() as s:
        return domain.accept(s, provider=provider, raw=raw, key=key, now=utcnow())


async def raw(request: Request) -> JSONResponse:
    """POST /inbound/raw: one RFC 5322 message as ``message/rfc822``, bearer token."""
    settings = request.app.state.settings
    if not settings.inbound_raw_token:
        return error(404, "the raw inbound endpoint is not configured (INBOUND_RAW_TOKEN)")
    if not _bearer_ok(request, settings.inbound_raw_token):
        return error(401, "missing or wrong bearer token")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "message/rfc822":
        return error(415, "Content-Type must be message/rfc822")
    try:
        body = await read_limited(request, settings.max_inbound_bytes)
    except TooLarge:
        return error(413, f"message larger than {settings.max_inbound_bytes} bytes")
    why = looks_like_message(body)
    if why:
        return error(400, f"not an RFC 5322 message: {why}")
    mid = raw_message_id(body)
    new_id, duplicate = await in_thread(_store, "raw", body, domain.dedupe_key("raw", mid, body))
    if not duplicate:
        from jobs.actors import process_inbound

        try:
            process_inbound.send(new_id)
        except Exception:  # noqa: BLE001 - stored and committed: the sweeper enqueues it later
            log.exception("inbound %s stored but not enqueued; the sweeper will retry", new_id)
    return JSONResponse({"id": new_id, "duplicate": duplicate}, status_code=200 if duplicate else 202)
