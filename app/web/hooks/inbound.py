"""Inbound endpoints: authenticate, limit, store, commit, enqueue the id, answer.

Status codes follow each provider's retry rules (docs/inbound.md): anything that is our
transient fault answers 503, which every provider retries; 2xx only once the message is
committed. Mailgun and Postmark treat anything but 200 as a failure, so success is 200.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.db import session
from app.inbound import group_commit, sns
from app.inbound.accept import Replayed, accept, dedupe_key, forget_tokens, remember_token
from app.inbound.webhook_auth import (
    WEBHOOKS,
    AuthError,
    check_basic,
    check_bearer,
    check_mailgun,
    secret_of,
    warn_unconfigured,
)
from app.models import utcnow
from app.web.common import TooLarge, error, in_thread, read_limited
from jobs.enqueue import enqueue_processing
from parsers.providers import PROVIDERS, Keys, Payload, PayloadError

log = logging.getLogger("donebox.inbound")
BASIC = ("sendgrid", "postmark")  # providers authenticated by Basic credentials in the URL


class Refused(Exception):
    """Raised to answer a client error: ``status`` and the reason."""

    def __init__(self, status: int, reason: str, headers: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers


def store(name: str, keys: Keys, payload: Payload | None, token: str = "", token_max_age_s: int = 0):
    """Commit one message (and the webhook token it came with); (id, duplicate)."""
    now = utcnow()
    with session() as s:
        if token:
            remember_token(s, name, token, now=now)
            if random.random() < 0.01:  # now and then, drop tokens whose timestamps are stale anyway
                forget_tokens(s, before=now - timedelta(seconds=2 * token_max_age_s))
        return accept(
            s,
            provider=name,
            raw=keys.raw_mime or b"",
            key=dedupe_key(name, keys),
            now=now,
            payload=payload.body if payload is not None else None,
            payload_type=payload.content_type if payload is not None else "",
        )


async def _authenticate_headers(request: Request, name: str, settings) -> None:
    secret = secret_of(name, settings)
    if not secret:
        if settings.production or name == "raw":
            raise Refused(404, f"the {name} inbound endpoint is not configured")
        warn_unconfigured(name)
        return
    auth = request.headers.get("authorization", "")
    try:
        if name in BASIC:
            check_basic(auth, secret)
        elif name == "raw":
            check_bearer(auth, secret)
    except AuthError as e:
        headers = {"WWW-Authenticate": 'Basic realm="donebox inbound"'} if name in BASIC else None
        raise Refused(401, str(e), headers) from None


async def sns_preflight(
    payload: Payload, settings, arns: tuple[str, ...] | None = None, setting: str = "SES_TOPIC_ARNS"
) -> JSONResponse | None:
    """Pinned topic (``arns``, default SES_TOPIC_ARNS), SNS signature, subscription handshake; a
    response when the request carries no notification."""
    doc = payload.json
    arns = settings.ses_topic_arns if arns is None else arns
    if not sns.topic_allowed(doc, settings, arns):
        raise Refused(403, f"SNS topic {str(doc.get('TopicArn'))[:200]!r} is not in {setting}")
    if settings.ses_verify_signatures:
        await in_thread(sns.verify, doc, settings)
    kind = doc.get("Type")
    if kind == "SubscriptionConfirmation":
        if not (settings.ses_verify_signatures and arns):
            raise Refused(403, f"not confirmed: confirming needs {setting} and SES_VERIFY_SIGNATURES on")
        await in_thread(sns.confirm_subscription, doc, settings)
        log.info("confirmed the SNS subscription to %s", doc.get("TopicArn"))
        return JSONResponse({"confirmed": True})
    if kind == "UnsubscribeConfirmation":
        log.warning("SNS says %s was unsubscribed", doc.get("TopicArn"))
        return JSONResponse({"unsubscribed": True})
    return None


async def _intake(request: Request, name: str) -> JSONResponse:
    settings = request.app.state.settings
    await _authenticate_headers(request, name, settings)
    ctype = request.headers.get("content-type", "")
    if name == "raw" and ctype.split(";")[0].strip().lower() != "message/rfc822":
        raise Refused(415, "Content-Type must be message/rfc822")
    try:
        body = await read_limited(request, settings.max_inbound_bytes)
    except TooLarge:
        raise Refused(413, f"message larger than {settings.max_inbound_bytes} bytes") from None
    payload = Payload(body, ctype)
    token = ""
    if name == "mailgun" and settings.mailgun_signing_key:
        form = payload.form
        check_mailgun(
            form.text("timestamp"),
            form.text("token"),
            form.text("signature"),
            key=settings.mailgun_signing_key,
            max_age_s=settings.mailgun_max_age_s,
            now=utcnow(),
        )
        token = form.text("token")
    if name == "ses":
        early = await sns_preflight(payload, settings)
        if early is not None:
            return early
    keys = PROVIDERS[name].keys(payload)
    stored_payload = None if name == "raw" else payload
    if token:  # the token is recorded in the message's own transaction
        new_id, duplicate = await in_thread(
            store, name, keys, stored_payload, token, settings.mailgun_max_age_s
        )
    else:  # committed together with whatever else this process is accepting right now
        future = group_commit.writer(enqueue_processing).submit(
            name,
            keys.raw_mime or b"",
            dedupe_key(name, keys),
            stored_payload.body if stored_payload is not None else None,
            stored_payload.content_type if stored_payload is not None else "",
        )
        new_id, duplicate = await asyncio.wrap_future(future)
        return _accepted(name, new_id, duplicate)  # the writer enqueued it
    if not duplicate:
        enqueue_processing(new_id)
    return _accepted(name, new_id, duplicate)


def _accepted(name: str, new_id: int, duplicate: bool) -> JSONResponse:
    status = (200 if duplicate else 202) if name == "raw" else 200
    return JSONResponse({"id": new_id, "duplicate": duplicate}, status_code=status)


async def answer(work, what: str, bad_input: tuple[type[Exception], ...] = (PayloadError,)) -> JSONResponse:
    """Await a provider webhook's handler, mapping every failure to a status its provider handles
    right: 4xx with the reason for what it should not send again, 503 (retried) for our faults."""
    try:
        return await work
    except Refused as e:
        return JSONResponse({"error": e.reason}, status_code=e.status, headers=e.headers)
    except Replayed:
        return error(401, "this webhook token was already used (replay)")
    except AuthError as e:
        return error(401, str(e))
    except bad_input as e:
        return error(400, str(e))
    except sns.CertUnavailable as e:
        return error(503, f"{e}; retry later")
    except Exception:  # noqa: BLE001 - our fault, maybe transient: 503 makes every provider retry
        log.exception("%s failed; answered 503 so the provider retries", what)
        return error(503, "temporary failure: nothing was stored, retry later")


async def intake(request: Request, name: str) -> JSONResponse:
    """Run one intake, mapping every failure to a status the provider handles right."""
    return await answer(_intake(request, name), f"inbound {name} intake")


async def raw(request: Request) -> JSONResponse:
    """POST /inbound/raw: one RFC 5322 message as ``message/rfc822``, bearer token."""
    return await intake(request, "raw")


async def webhook(request: Request) -> JSONResponse:
    """POST /inbound/{provider}: a provider's inbound-parse webhook; an unknown provider is 404."""
    name = request.path_params["provider"]
    if name not in WEBHOOKS:
        return error(404, f"no inbound provider called {name[:40]!r} (known: {', '.join(WEBHOOKS)})")
    return await intake(request, name)


async def mailgun_mime(request: Request) -> JSONResponse:
    """POST /inbound/mailgun/mime: Mailgun sends ``body-mime`` (raw MIME) to route URLs ending in mime."""
    return await intake(request, "mailgun")


async def parse_only(request: Request) -> JSONResponse:
    """POST /dev/inbound/{provider}/parse-only (development only): authenticate, read and parse like
    the real endpoint but store nothing; the benchmark's ceiling of the web stack."""
    settings = request.app.state.settings
    name = request.path_params["provider"]
    if settings.production or name not in PROVIDERS:
        return error(404, "not found")
    try:
        await _authenticate_headers(request, name, settings)
        body = await read_limited(request, settings.max_inbound_bytes)
        keys = PROVIDERS[name].keys(Payload(body, request.headers.get("content-type", "")))
    except Refused as e:
        return JSONResponse({"error": e.reason}, status_code=e.status, headers=e.headers)
    except TooLarge:
        return error(413, "too large")
    except PayloadError as e:
        return error(400, str(e))
    return JSONResponse({"id": 0, "duplicate": False, "key": dedupe_key(name, keys)})
