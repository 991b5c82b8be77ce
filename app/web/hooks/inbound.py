"""Inbound endpoints: authenticate, limit, store, commit, enqueue the id, answer.

``POST /inbound/{provider}`` for every provider with a webhook; what differs between them is
said by the provider's class (parsers/providers), so nothing here names one. Anything that
is our transient fault answers 503, which every provider retries; 2xx only once the message
is committed. Success is 200 (some providers take anything else as a failure) unless the
provider's ``created_status`` says otherwise for a new message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.inbound import group_commit
from app.inbound.accept import accept_many, dedupe_key, forget_tokens, item, remember_token
from app.metrics import families as metrics
from app.models import utcnow
from app.web.common import error, in_thread
from app.web.hooks.webhooks import (
    Refused,
    answer,
    authenticate,
    provider_for,
    read_body,
    sns_preflight,
    unconfigured,
)
from jobs.enqueue import enqueue_processing, inbound_batches
from parsers.providers import PROVIDERS, Keys, Payload, PayloadError, Provider

log = logging.getLogger("donebox.inbound")
warnings = logging.getLogger("donebox.webhooks")


def unreadable_keys(payload: Payload) -> Keys:
    """Dedupe keys of a payload its provider cannot read: the hash of its bytes."""
    return Keys(provider_id=f"unreadable:{hashlib.sha256(payload.body).hexdigest()}", header_hash="-")


def store(name: str, keys: Keys, payload: Payload | None, token: str = "", token_max_age_s: int = 0):
    """Commit one message (and the webhook token it came with); (id, duplicate)."""
    now = utcnow()
    with session() as s:
        if token:
            remember_token(s, name, token, now=now)
            if random.random() < 0.01:  # now and then, drop tokens whose timestamps are stale anyway
                forget_tokens(s, before=now - timedelta(seconds=2 * token_max_age_s))
        one = (
            item(name, keys, payload.body, payload.content_type) if payload is not None else item(name, keys)
        )
        return accept_many(s.connection(), [one], now=now)[0]


async def _verified(request: Request, provider: Provider, settings) -> tuple[Payload, str]:
    """The request's payload once proven (headers before the body is read, when the proof is in
    them), and the secret that proved it ('' in development without one)."""
    secret = settings.secret_for(provider.name)
    max_age_s = settings.max_age_for(provider.name)
    if not secret:
        unconfigured(provider, provider.setting, "inbound", settings, warnings)
    elif not provider.body_signed:
        authenticate(provider, provider.verify, request, b"", secret, max_age_s)
    ctype = request.headers.get("content-type", "")
    if provider.content_types and ctype.split(";")[0].strip().lower() not in provider.content_types:
        raise Refused(415, f"Content-Type must be {' or '.join(provider.content_types)}")
    body = await read_body(request, settings, "message")
    if secret and provider.body_signed:
        authenticate(provider, provider.verify, request, body, secret, max_age_s)
    return Payload(body, ctype), secret


async def _intake(request: Request, name: str) -> JSONResponse:
    settings = request.app.state.settings
    provider = provider_for(name)
    payload, secret = await _verified(request, provider, settings)
    if provider.via_sns:
        early = await sns_preflight(payload, settings, pinned=bool(secret), setting=provider.setting)
        if early is not None:
            return early
    stored_payload = payload if provider.stores_payload else None
    try:
        keys = provider.keys(payload)
    except PayloadError as e:
        if not payload.body.strip():
            raise  # nothing to store: 400
        # proven, within the size limit and of the right media type: it is mail we cannot read
        # yet. Stored whole under a key of its bytes (a retry is a duplicate), processing marks
        # it failed with the reason, and a fixed parser can reprocess it: no provider drops it
        log.warning("inbound %s: stored a payload it cannot read: %s", name, e)
        keys, stored_payload = unreadable_keys(payload), payload
    token = provider.replay_token(payload) if secret else ""
    if token:  # the token is recorded in the message's own transaction
        new_id, duplicate = await in_thread(
            store, name, keys, stored_payload, token, settings.max_age_for(name)
        )
    else:  # committed together with whatever else this process is accepting right now
        one = (
            item(name, keys, stored_payload.body, stored_payload.content_type)
            if stored_payload is not None
            else item(name, keys)
        )
        future = group_commit.writer(inbound_batches).submit(one)
        new_id, duplicate = await asyncio.wrap_future(future)
        return _accepted(provider, new_id, duplicate)  # the writer handed it to inbound_batches
    if not duplicate:
        enqueue_processing(new_id)
    return _accepted(provider, new_id, duplicate)


def _accepted(provider: Provider, new_id: int, duplicate: bool) -> JSONResponse:
    metrics.accepted(provider.name, duplicate)  # committed by now
    status = 200 if duplicate else provider.created_status
    return JSONResponse({"id": new_id, "duplicate": duplicate}, status_code=status)


async def intake(request: Request, name: str) -> JSONResponse:
    """Run one intake for provider ``name``, mapping every failure to a status it handles right."""
    response = await answer(_intake(request, name), f"inbound {name[:40]} intake")
    if response.status_code >= 400:
        metrics.refused(name, response.status_code, known=name in PROVIDERS)
    return response


async def webhook(request: Request) -> JSONResponse:
    """POST /inbound/{provider}: a provider's inbound webhook; an unknown provider is 404."""
    return await intake(request, request.path_params["provider"])


async def parse_only(request: Request) -> JSONResponse:
    """POST /dev/inbound/{provider}/parse-only (development only): authenticate, read and parse like
    the real endpoint but store nothing; the benchmark's ceiling of the web stack."""
    settings = request.app.state.settings
    name = request.path_params["provider"]
    provider = PROVIDERS.get(name)
    if settings.production or provider is None or not provider.webhook:
        return error(404, "not found")
    try:
        payload, _ = await _verified(request, provider, settings)
        keys = provider.keys(payload)
    except Refused as e:
        return JSONResponse({"error": e.reason}, status_code=e.status, headers=e.headers)
    except PayloadError as e:
        return error(400, str(e))
    return JSONResponse({"id": 0, "duplicate": False, "key": dedupe_key(name, keys)})
