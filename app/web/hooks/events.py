"""Provider event webhooks: verify, parse, apply in one transaction, answer with the counts.

``POST /events/sendgrid`` (SendGrid's signed Event Webhook) and ``POST /events/ses`` (SES
notifications through SNS). A body that is not the provider's format is 400 and writes
nothing; our own fault (the database, a certificate host) is 503 so the provider retries;
a retried batch records nothing twice (events are unique by the provider's event id).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.inbound.webhook_auth import check_sendgrid
from app.models import utcnow
from app.relay import feedback as domain
from app.web.common import TooLarge, in_thread, read_limited
from app.web.hooks.inbound import Refused, answer, sns_preflight
from parsers.events import DeliveryEvent, EventError
from parsers.events import sendgrid as sendgrid_events
from parsers.events import ses as ses_events
from parsers.providers import Payload, PayloadError

log = logging.getLogger("donebox.events")
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _apply(events: list[DeliveryEvent]) -> dict:
    with session() as s:
        return domain.apply_events(s, events, now=utcnow()).as_dict()


def _unconfigured(name: str, setting: str, production: bool) -> None:
    if production:
        raise Refused(404, f"the {name} event endpoint is not configured ({setting})")
    log.warning(
        "!!! %s event webhook has no %s: accepting UNAUTHENTICATED requests (development only; "
        "production refuses them with 404) !!!",
        name,
        setting,
    )


async def _body(request: Request, settings) -> bytes:
    try:
        return await read_limited(request, settings.max_inbound_bytes)
    except TooLarge:
        raise Refused(413, f"body larger than {settings.max_inbound_bytes} bytes") from None


async def _sendgrid(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    key = settings.sendgrid_event_public_key
    if not key:
        _unconfigured("sendgrid", "SENDGRID_EVENT_PUBLIC_KEY", settings.production)
    body = await _body(request, settings)
    if key:
        check_sendgrid(
            body,
            request.headers.get(SIGNATURE, ""),
            request.headers.get(TIMESTAMP, ""),
            public_key=key,
            max_age_s=settings.sendgrid_event_max_age_s,
            now=utcnow(),
        )
    return JSONResponse(await in_thread(_apply, sendgrid_events.parse(body)))


async def _ses(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    arns = settings.ses_event_topic_arns
    if not arns:
        _unconfigured("ses", "SES_EVENT_TOPIC_ARNS", settings.production)
    payload = Payload(await _body(request, settings), request.headers.get("content-type", ""))
    early = await sns_preflight(payload, settings, arns, "SES_EVENT_TOPIC_ARNS")
    if early is not None:
        return early
    if payload.json.get("Type") != "Notification":
        raise Refused(400, "not an SNS Notification")
    return JSONResponse(await in_thread(_apply, ses_events.parse(payload.json)))


async def sendgrid(request: Request) -> JSONResponse:
    """POST /events/sendgrid: SendGrid's Event Webhook (a JSON array, ECDSA-signed)."""
    return await answer(_sendgrid(request), "sendgrid events", (EventError, PayloadError))


async def ses(request: Request) -> JSONResponse:
    """POST /events/ses: SES bounce, complaint and delivery notifications through SNS."""
    return await answer(_ses(request), "ses events", (EventError, PayloadError))
