"""Webhook deliveries POSTed: the body of the deliver_webhooks jobs (app.relay.webhooks owns the
rows and what they say; this module signs, sends and records each attempt).

``Donebox-Signature: t=<unix>,v1=<hex>`` is HMAC-SHA256 with the endpoint's secret over
``"<t>." + body``. A 2xx answer delivers; anything else (another status, a redirect, which is never
followed, a time-out, a refused connection, a URL that now resolves to a private address) waits
``backoff`` and is tried again, until the next try would fall past the row's ``retry_until``: then
the delivery is ``failed``. Each attempt is a WebhookAttempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlmodel import Session

from app.db import session as db_session
from app.metrics import families as metrics
from app.models import OutboundMessage, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.relay import webhooks
from app.settings import Settings

log = logging.getLogger("donebox.webhooks")

HEADER = "Donebox-Signature"
BACKOFF_S = 30  # the wait after the first failed attempt; doubled after each further one ...
BACKOFF_MAX_S = 3600  # ... up to this
RESPONSE_CHARS = 500  # of each answer, kept on its attempt
CLAIM_S = 60  # a job's claim lasts this plus WEBHOOK_TIMEOUT_S + 5 s a delivery it took (then: swept)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` with ``secret``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


@dataclass(frozen=True)
class Answer:
    """What one POST came to: the status (None: no HTTP answer), an excerpt, the error text."""

    status: int | None
    response: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913 - urllib's signature
        return None  # the 3xx is the answer: a webhook never follows a redirect


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout_s: float) -> Answer:
    """POST ``body`` to ``url``; never raises, never follows a redirect."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(req, timeout=timeout_s) as resp:
            return Answer(resp.status, _excerpt(resp.read(RESPONSE_CHARS * 4)))
    except urllib.error.HTTPError as e:
        text = _excerpt(e.read(RESPONSE_CHARS * 4) if e.fp else b"")
        error = f"HTTP {e.code}"
        if 300 <= e.code < 400:
            error += f": a redirect (to {e.headers.get('Location', '?')}) is not followed"
        return Answer(e.code, text, error)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return Answer(None, "", f"{type(reason).__name__}: {reason}"[:RESPONSE_CHARS])


def _excerpt(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").replace("\x00", "")[:RESPONSE_CHARS]


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    return timedelta(seconds=min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, attempts - 1)))


def claim(s: Session, ids: list[int], *, now: datetime, lease_s: float) -> list[int]:
    """Take the due ones of ``ids`` for this job for ``lease_s`` (compare-and-set on the lease)."""
    D = WebhookDelivery
    cond = and_(
        D.id.in_(ids),
        D.state == "pending",
        D.next_attempt_at <= now,
        or_(D.lease_until.is_(None), D.lease_until < now),
    )
    stmt = (
        update(D)
        .where(cond)
        .values(lease_until=now + timedelta(seconds=lease_s))
        .returning(D.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(s.execute(stmt).scalars())


def deliver_many(
    ids: list[int],
    *,
    now: datetime,
    settings: Settings,
    poster: Callable[..., Answer] = post,
    clock: Callable[[], float] = time.time,
) -> dict[int, str]:
    """POST each due delivery of ``ids`` once; {id: its state after}. ``now`` schedules (backoff,
    giving up); ``clock`` is the signature's timestamp, the time the receiver checks it against."""
    # long enough for every POST of the batch to time out: a claim never ends while its job runs
    lease_s = CLAIM_S + len(ids) * (settings.webhook_timeout_s + 5)
    with db_session() as s:
        mine = claim(s, ids, now=now, lease_s=lease_s)
    out = {}
    for did in mine:
        with db_session() as s:
            out[did] = _attempt(s, did, now=now, settings=settings, poster=poster, clock=clock)
    return out


def _attempt(s: Session, did: int, *, now: datetime, settings: Settings, poster, clock) -> str:
    d = s.get(WebhookDelivery, did)
    endpoint = s.get(WebhookEndpoint, d.endpoint_id)
    if endpoint is None:
        d.state, d.last_error, d.lease_until = "failed", "the endpoint was removed", None
        return d.state
    if not d.payload:  # a message event: its body is built once, then every attempt sends it as is
        m = s.get(OutboundMessage, d.message_id)
        data = webhooks.message_data(m, d.detail) if m is not None else {"message": {"id": d.message_id}}
        d.payload = webhooks.body_of(d.kind, d.team_id, d.created_at, data)
    body_doc = json.loads(d.payload)
    body_doc["id"] = f"whd_{d.id}"
    body = json.dumps(body_doc, sort_keys=True).encode()
    stamp = int(clock())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "donebox-webhooks",
        HEADER: signature_header(endpoint.secret, stamp, body),
    }
    why = webhooks.check_url(endpoint.url, settings)  # again now: the host may resolve elsewhere than before
    started = time.perf_counter()
    answer = (
        Answer(None, "", f"refused: the url {why}")
        if why
        else poster(endpoint.url, body, headers, timeout_s=settings.webhook_timeout_s)
    )
    took_s = time.perf_counter() - started
    latency_ms = int(took_s * 1000)
    result = (
        "refused" if why else "ok" if answer.ok else "no_answer" if answer.status is None else "http_error"
    )
    metrics.webhook_attempt(result, took_s)
    error = answer.error or ("" if answer.ok else f"HTTP {answer.status}")
    s.add(
        WebhookAttempt(
            delivery_id=d.id,
            at=now,
            status=answer.status,
            latency_ms=latency_ms,
            response=answer.response,
            error=error,
        )
    )
    d.attempts += 1
    d.last_status = answer.status
    d.last_error = error
    d.lease_until = None
    if answer.ok:
        d.state, d.delivered_at = "delivered", now
    else:
        nxt = now + backoff(d.attempts)
        if d.retry_until is not None and nxt > d.retry_until:
            d.state = "failed"
            log.warning("webhook delivery %s failed after %s attempts: %s", d.id, d.attempts, error)
        else:
            d.next_attempt_at = nxt
    return d.state
