"""Provider event webhooks: verify, parse, apply in one transaction, answer with the counts.

``POST /events/{provider}`` for every provider with an event webhook (its class names the
setting that proves it, ``event_setting``); any other name is 404. A body that is not the
provider's format is 400 and writes nothing; our own fault (the database, a certificate
host) is 503 so the provider retries; a retried batch records nothing twice (events are
unique by the provider's event id).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.inbound.accept import Replayed, forget_tokens, remember_token
from app.models import utcnow
from app.relay import feedback as domain
from app.web.common import in_thread
from app.web.hooks.webhooks import answer, authenticate, provider_for, read_body, sns_preflight, unconfigured
from parsers.providers import DeliveryEvent, Payload

log = logging.getLogger("donebox.events")


def _apply(events: list[DeliveryEvent], name: str = "", token: str = "", token_max_age_s: int = 0) -> dict:
    now = utcnow()
    with session() as s:
        if token:
            try:
                remember_token(s, name, token, now=now)
            except Replayed:
                if not domain.all_recorded(s, events):
                    raise
            if random.random() < 0.01:  # now and then, drop tokens whose timestamps are stale anyway
                forget_tokens(s, before=now - timedelta(seconds=2 * token_max_age_s))
        return domain.apply_events(s, events, now=now).as_dict()


async def _events(request: Request, name: str) -> JSONResponse:
    settings = request.app.state.settings
    provider = provider_for(name, events=True)
    secret = settings.event_secret_for(name)
    if not secret:
        unconfigured(provider, provider.event_setting, "event", settings, log)
    payload = Payload(await read_body(request, settings, "body"), request.headers.get("content-type", ""))
    if secret:
        max_age_s = settings.max_age_for(name, events=True)
        authenticate(provider, provider.verify_events, request, payload.body, secret, max_age_s)
    if provider.via_sns:
        early = await sns_preflight(payload, settings, pinned=bool(secret), setting=provider.event_setting)
        if early is not None:
            return early
    events = provider.parse_events(payload)
    token = provider.event_replay_token(payload) if secret else ""
    max_age_s = settings.max_age_for(name, events=True)
    return JSONResponse(await in_thread(_apply, events, name, token, max_age_s))


async def webhook(request: Request) -> JSONResponse:
    """POST /events/{provider}: a provider's delivery events; an unknown provider, or one without
    an event webhook, is 404."""
    name = request.path_params["provider"]
    return await answer(_events(request, name), f"{name[:40]} events")
