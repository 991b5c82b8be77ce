"""Signed outgoing webhooks: a team's endpoints and the deliveries their events owe them.

A delivery is a row written by ``emit`` / ``emit_messages`` in the transaction of the event's
cause (a message's state change or tracking hit, an inbound reply processed, an entry stored), so
a crash between the cause and the POST loses nothing; a team with no endpoint that wants the kind
gets no row (one indexed lookup, nothing written). The scheduler's tick finds due deliveries
(``due``) and jobs POST them (app.relay.webhook_delivery), never the request that caused the event.
``replay`` queues any delivery again; ``deliveries`` and ``attempts`` are what the page shows.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache
from urllib.parse import urlsplit

from sqlalchemy import Select, delete, insert, or_, select, update
from sqlmodel import Session

from app.db import in_list
from app.errors import RequestError
from app.models import OutboundMessage, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.settings import Settings, get_settings

log = logging.getLogger("donebox.webhooks")

KINDS = (
    "sent",
    "delivered",
    "deferred",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
    "inbound_received",
    "entry_created",
)
# MessageEvent kind -> the webhook kind it is (states keep their names; hits get past tenses)
FROM_EVENT = {k: k for k in KINDS[:5]} | {"open": "opened", "click": "clicked", "unsubscribe": "unsubscribed"}
MAX_ENDPOINTS = 10  # per team
DUE_BATCH = 500  # deliveries the sweeper hands out per tick


def like(kind: str) -> str:
    """The LIKE pattern that finds ``kind`` in an endpoint's space-separated ``kinds``."""
    return f"% {kind} %"


# ---- endpoints ------------------------------------------------------------------------------


def check_url(url: str, settings: Settings, *, resolve=socket.getaddrinfo) -> str | None:
    """Why donebox refuses to POST to ``url``, or None: http(s) only (https in production), and no
    loopback, private, link-local or reserved address unless WEBHOOK_ALLOW_PRIVATE."""
    if not isinstance(url, str) or not url.strip():
        return "is required"
    if len(url) > 2000:
        return "is longer than 2000 characters"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        return f"is not a URL ({e})"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if settings.production and parts.scheme != "https" and not settings.webhook_allow_private:
        return "must be an https:// URL in production"
    if not parts.hostname:
        return "has no host"
    if parts.username or parts.password:
        return "must not carry a user name or password (the signature proves the sender)"
    if settings.webhook_allow_private:
        return None
    try:
        infos = resolve(
            parts.hostname, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError) as e:
        return f"host {parts.hostname} does not resolve ({e})"
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not ip.is_global:
            where = f"host {parts.hostname} is a loopback, private or reserved address ({ip})"
            return where + " (WEBHOOK_ALLOW_PRIVATE allows it)"
    return None


def parse_kinds(value) -> list[str]:
    """The kinds of ``value`` (a list or a space/comma-separated string), checked; RequestError names
    the field and the unknown kinds."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise RequestError("kinds must be a list of event kinds", 422)
    kinds = sorted(set(value), key=value.index)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise RequestError(f"kinds: unknown {', '.join(unknown)} (known: {', '.join(KINDS)})", 422)
    if not kinds:
        raise RequestError("kinds: name at least one event kind", 422)
    return kinds


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def add(
    s: Session,
    team_id: int,
    url: str,
    kinds,
    *,
    now: datetime,
    settings: Settings,
    description: str = "",
) -> WebhookEndpoint:
    """A new endpoint of the team; its ``secret`` is shown to the caller once. RequestError (422)
    names the refused field."""
    kinds = parse_kinds(kinds)
    why = check_url(url, settings)
    if why:
        raise RequestError(f"url {why}", 422)
    if not isinstance(description, str) or len(description) > 200:
        raise RequestError("description must be text of at most 200 characters", 422)
    count = len(endpoints(s, team_id))
    if count >= MAX_ENDPOINTS:
        raise RequestError(f"the team has {count} endpoints already, the most there may be", 409)
    e = WebhookEndpoint(
        team_id=team_id,
        url=url.strip(),
        secret=new_secret(),
        kinds=" ".join(kinds),
        description=description.strip(),
        created_at=now,
    )
    s.add(e)
    s.flush()
    return e


def endpoints(s: Session, team_id: int) -> list[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.team_id == team_id).order_by(WebhookEndpoint.id)
    return list(s.execute(stmt).scalars())


def remove(s: Session, team_id: int, endpoint_id: int, *, now: datetime) -> bool:
    """Delete the team's endpoint; its pending deliveries fail (the log stays). False if none."""
    n = s.execute(
        delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.team_id == team_id)
    ).rowcount
    if not n:
        return False
    s.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == "pending")
        .values(state="failed", last_error="the endpoint was removed", lease_until=None)
    )
    return True


# ---- emitting: in the cause's transaction -----------------------------------------------------


def _row(endpoint_id: int, team_id: int, kind: str, now: datetime, window: timedelta, **values) -> dict:
    return {
        "endpoint_id": endpoint_id,
        "team_id": team_id,
        "kind": kind,
        "message_id": None,
        "payload": "",
        "detail": "",
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "retry_until": now + window,
        "last_error": "",
        "created_at": now,
    } | values


def retry_window() -> timedelta:
    """How long after its event a delivery may still be tried (WEBHOOK_RETRY_HOURS)."""
    return timedelta(hours=get_settings().webhook_retry_hours)


def emit_messages(s: Session, events: list[tuple[int, str, str]], *, now: datetime) -> int:
    """Owe each message event of ``events`` ((message id, MessageEvent kind, detail)) to every
    endpoint of the message's team that wants its kind; rows written. Kinds no webhook carries are
    skipped; one SELECT when nobody listens, nothing written."""
    events = [(mid, FROM_EVENT[k], detail) for mid, k, detail in events if k in FROM_EVENT]
    if not events:
        return 0
    stmt = (
        select(WebhookEndpoint.id, WebhookEndpoint.team_id, WebhookEndpoint.kinds, OutboundMessage.id)
        .join(OutboundMessage, OutboundMessage.team_id == WebhookEndpoint.team_id)
        .where(OutboundMessage.id.in_(sorted({mid for mid, _, _ in events})))
    )
    by_message: dict[int, list[tuple[int, int, set[str]]]] = {}
    for eid, tid, kinds, mid in s.execute(stmt).all():
        by_message.setdefault(mid, []).append((eid, tid, set(kinds.split())))
    if not by_message:
        return 0
    window = retry_window()
    rows = [
        _row(eid, tid, kind, now, window, message_id=mid, detail=detail)
        for mid, kind, detail in events
        for eid, tid, kinds in by_message.get(mid, ())
        if kind in kinds
    ]
    if rows:
        s.execute(insert(WebhookDelivery.__table__), rows)
    return len(rows)


def listening(s: Session, team_ids: Iterable[int], kinds: Iterable[str]) -> dict[str, dict[int, list[int]]]:
    """{kind: {team id: its endpoint ids that want the kind}} for ``team_ids`` and ``kinds``, in
    one SELECT; teams with no such endpoint are absent."""
    team_ids, kinds = sorted(set(team_ids)), set(kinds)
    out: dict[str, dict[int, list[int]]] = {k: {} for k in kinds}
    if not team_ids:
        return out
    for tid, eid, wanted in s.connection().execute(_endpoints_of_teams(), {"teams": team_ids}).all():
        for kind in kinds & set(wanted.split()):
            out[kind].setdefault(tid, []).append(eid)
    return out


@cache
def _endpoints_of_teams() -> Select:
    return (
        select(WebhookEndpoint.team_id, WebhookEndpoint.id, WebhookEndpoint.kinds)
        .where(in_list(WebhookEndpoint.team_id, "teams"))
        .order_by(WebhookEndpoint.id)
    )


def emit(s: Session, kind: str, events: list[tuple[int, dict]], *, now: datetime, to=None) -> int:
    """Owe each event of ``events`` ((team id, its data)) of ``kind`` to the team's endpoints that
    want it; ``to`` is ``listening``'s answer when the caller asked already. Rows written."""
    if kind not in KINDS:
        raise ValueError(f"unknown webhook kind {kind!r}")
    to = listening(s, (t for t, _ in events), [kind])[kind] if to is None else to
    if not to:
        return 0
    window = retry_window()
    rows = []
    for tid, data in events:
        for eid in to.get(tid, ()):
            rows.append(_row(eid, tid, kind, now, window, payload=body_of(kind, tid, now, data)))
    if rows:
        s.execute(insert(WebhookDelivery.__table__), rows)
    return len(rows)


def body_of(kind: str, team_id: int, now: datetime, data: dict) -> str:
    event = {
        "kind": kind,
        "team_id": team_id,
        "created_at": now.isoformat(),
        "timestamp": int(now.timestamp()),
    }
    return json.dumps(event | data, sort_keys=True, default=str)


def message_data(m: OutboundMessage, detail: str) -> dict:
    """What a message event says about its message: ids, recipient, and the tags and metadata the
    application gave (from the message's context), when present."""
    try:
        context = json.loads(m.context or "{}")
    except ValueError:
        context = {}
    data = {
        "message": {
            "id": m.id,
            "message_id": m.message_id,
            "kind": m.kind,
            "to": m.to_addr,
            "subject": m.subject,
            "batch_id": m.batch_id,
        },
        "detail": detail,
    }
    if isinstance(context, dict):
        for key in ("tags", "metadata"):
            if key in context:
                data["message"][key] = context[key]
    return data


def due(s: Session, *, now: datetime, limit: int = DUE_BATCH) -> list[int]:
    """Ids of pending deliveries due now and held by no job (the sweeper enqueues them)."""
    D = WebhookDelivery
    stmt = (
        select(D.id)
        .where(
            D.state == "pending", D.next_attempt_at <= now, or_(D.lease_until.is_(None), D.lease_until < now)
        )
        .order_by(D.next_attempt_at, D.id)
        .limit(limit)
    )
    return list(s.execute(stmt).scalars())


def replay(s: Session, team_id: int, delivery_id: int, *, now: datetime, settings: Settings) -> bool:
    """Queue the team's delivery again, whatever its state: due now, WEBHOOK_RETRY_HOURS to succeed."""
    D = WebhookDelivery
    n = s.execute(
        update(D)
        .where(D.id == delivery_id, D.team_id == team_id)
        .values(
            state="pending",
            next_attempt_at=now,
            lease_until=None,
            retry_until=now + timedelta(hours=settings.webhook_retry_hours),
            delivered_at=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(n)


def deliveries(s: Session, team_id: int, *, limit: int = 50) -> list[WebhookDelivery]:
    """The team's latest deliveries, newest first."""
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.team_id == team_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    return list(s.execute(stmt).scalars())


def attempts(s: Session, delivery_ids: list[int]) -> dict[int, list[WebhookAttempt]]:
    """{delivery id: its attempts, oldest first}."""
    out: dict[int, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        stmt = (
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.id)
        )
        for a in s.execute(stmt).scalars():
            out[a.delivery_id].append(a)
    return out


def purge(s: Session, *, now: datetime, days: int, limit: int = 5000) -> int:
    """Delete up to ``limit`` finished deliveries (delivered, failed) older than ``days``
    (RETENTION_DAYS) with their attempts; how many. Pending ones stay until they finish."""
    D = WebhookDelivery
    ids = list(
        s.execute(
            select(D.id)
            .where(D.created_at < now - timedelta(days=days), D.state != "pending")
            .order_by(D.id)
            .limit(limit)
        ).scalars()
    )
    if ids:
        s.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
        s.execute(delete(D).where(D.id.in_(ids)))
    return len(ids)
