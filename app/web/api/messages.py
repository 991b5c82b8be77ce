"""Outbound messages by API token: list, read one with its events, cancel one or a batch,
send failed, deferred or suppressed ones again (redrive: app.relay.redrive); sending them is
app.web.api.send's.

Thin endpoints over app.relay.sends and the outbox. A token bound to a team sees and cancels only that team's
messages; any other id is a 404.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from app.errors import RequestError
from app.models import MessageEvent, OutboundMessage, utcnow
from app.relay import labels, sends
from app.relay import redrive as redrives
from app.relay.outbox import TRANSITIONS
from app.web.api.base import BEFORE_Q, ApiError, ChoiceQuery, IntQuery, api
from app.web.api.shapes import (
    BLANK_IS_NULL,
    BOOL,
    DATE_TIME,
    INT,
    STR,
    Field,
    Shape,
    Type,
    many,
    next_before,
    nullable,
    one_of,
    paged,
)
from app.web.common import id_in_range
from jobs.enqueue import enqueue_deliveries


def _detail(value: str):
    """An event's detail: the JSON object it holds, or the text."""
    try:
        return json.loads(value) if value.startswith("{") else value
    except ValueError:
        return value


TAGS = Type(
    {"type": "array", "items": {"type": "string", "maxLength": labels.MAX_TAG}, "maxItems": labels.MAX_TAGS}
)
METADATA = Type(
    {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": labels.MAX_METADATA_KEYS}
)


TIMELINE_EVENT = Shape(
    "TimelineEvent",
    (
        Field("kind", STR),
        Field("from_state", BLANK_IS_NULL, description="null for the first event and for non-states"),
        Field("detail", Type({"oneOf": [{"type": "string"}, {"type": "object"}]}, dump=_detail)),
        Field("at", DATE_TIME, "created_at"),
    ),
)
MESSAGE = Shape(
    "Message",
    (
        Field("id", INT),
        Field("idempotency_key", STR),
        Field("kind", STR, description="reminder, digest, api, ..."),
        Field("team_id", nullable(INT)),
        Field("to", STR, "to_addr"),
        Field("from", BLANK_IS_NULL, "from_addr", description="the application's From; null: MAIL_FROM"),
        Field("subject", STR),
        Field("message_id", STR, description="its Message-ID header"),
        Field("state", one_of(STR, TRANSITIONS)),
        Field("attempts", INT),
        Field("error", BLANK_IS_NULL, description="the last attempt's error"),
        Field("sender", BLANK_IS_NULL, description="the sender that transmitted the last attempt"),
        Field("provider_id", BLANK_IS_NULL),
        Field("created_at", DATE_TIME),
        Field("updated_at", DATE_TIME),
        Field("send_at", nullable(DATE_TIME)),
        Field("sent_at", nullable(DATE_TIME)),
        Field("next_attempt_at", nullable(DATE_TIME)),
        Field("expires_at", nullable(DATE_TIME)),
        Field("purged", BOOL, lambda m: m.purged_at is not None, description="content removed (retention)"),
        Field("tags", TAGS, lambda m: labels.read(m.context)[0]),
        Field("metadata", METADATA, lambda m: labels.read(m.context)[1]),
        Field("events", many(TIMELINE_EVENT), required=False, description="GET /api/messages/{id} only"),
    ),
)
MESSAGE_PAGE = paged("MessagePage", "messages", MESSAGE)
CANCELLED = Shape("Cancelled", (Field("id", INT), Field("state", STR)))
BATCH_CANCELLED = Shape(
    "BatchCancelled",
    (
        Field("batch_id", STR),
        Field("cancelled", INT),
        Field("already_cancelled", INT),
        Field("not_cancelled", INT),
    ),
)

REDRIVE_FILTER = Shape(
    "RedriveFilter",
    (
        Field(
            "ids",
            Type({"type": "array", "items": {"type": "integer"}, "maxItems": redrives.BATCH}),
            required=False,
        ),
        Field("team_id", INT, required=False),
        Field("sender", STR, required=False, description="the sender that transmitted the last attempt"),
        Field("state", one_of(STR, redrives.REDRIVABLE), required=False, description="default: any of them"),
        Field("domain", STR, required=False, description="the recipient's domain"),
        Field("since", DATE_TIME, required=False, description="with a UTC offset; inclusive"),
        Field("until", DATE_TIME, required=False, description="with a UTC offset; exclusive"),
        Field("time", one_of(STR, redrives.TIME_FIELDS), required=False, default="created"),
        Field("dry_run", BOOL, required=False, description="count only; nothing is sent"),
    ),
)
SKIPPED = Shape("Skipped", (Field("id", INT), Field("reason", STR)))
REDRIVEN = Shape(
    "Redriven",
    (
        Field("redriven", INT, description="messages queued again (or that would be, in a dry run)"),
        Field("skipped", INT, description="matched but left alone (still suppressed, expired, ...)"),
        Field("skipped_examples", many(SKIPPED), description=f"the first {redrives.BATCH // 5} skipped"),
        Field("dry_run", BOOL),
    ),
)
REQUEUED = Shape("Requeued", (Field("id", INT), Field("state", STR)))

STATE_Q = ChoiceQuery("state", tuple(TRANSITIONS), "only messages in this state")
LIMIT_Q = IntQuery("limit", 50, high=500)


@api(scope="send")
def cancel(request, s, token, body):
    """DELETE /api/messages/{id}: cancel a message that is still scheduled (409 once queued)."""
    message_id = request.path_params["id"]
    if not id_in_range(message_id):
        raise ApiError(404, f"no message {message_id}")
    try:
        state = sends.cancel(s, message_id, token, now=utcnow())
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    return CANCELLED.dump({"id": message_id, "state": state})


@api(scope="send")
def cancel_batch(request, s, token, body):
    """DELETE /api/batches/{batch_id}: cancel every message of the batch that is still scheduled."""
    try:
        result = sends.cancel_batch(s, request.path_params["batch_id"], token, now=utcnow())
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    return BATCH_CANCELLED.dump(result)


@api(scope="read")
def list_messages(request, s, token, body):
    """GET /api/messages?state=&limit=&before=: newest first; ``next_before`` pages on."""
    M = OutboundMessage
    state, limit, before = STATE_Q.read(request), LIMIT_Q.read(request), BEFORE_Q.read(request)
    stmt = select(M).order_by(M.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(M.state == state)
    if token.team_id is not None:
        stmt = stmt.where(M.team_id == token.team_id)
    if before is not None:
        stmt = stmt.where(M.id < before)
    rows = s.execute(stmt).scalars().all()
    return MESSAGE_PAGE.dump({"messages": rows, "next_before": next_before(rows, limit)})


@api(scope="read")
def get_message(request, s, token, body):
    """GET /api/messages/{id}: the message and its events timeline, oldest first."""
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(400, "a message id is a positive integer")
    m = s.get(OutboundMessage, int(raw)) if id_in_range(int(raw)) else None
    if m is None or (token.team_id is not None and m.team_id != token.team_id):
        raise ApiError(404, f"no message {raw}")
    events = s.execute(select(MessageEvent).where(MessageEvent.message_id == m.id).order_by(MessageEvent.id))
    return MESSAGE.dump(m, events=events.scalars().all())


def _instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name} is not an ISO 8601 date-time: {value[:60]!r}") from None
    if when.tzinfo is None:
        raise ApiError(400, f"{name} needs a UTC offset (e.g. +01:00 or Z)")
    return when.astimezone(UTC)


def _scope(token) -> tuple[int, ...] | None:
    return None if token.team_id is None else (token.team_id,)


def _actor(token) -> str:
    return f"API token {token.name!r} (#{token.id})"


@api(scope="send")
def redrive_one(request, s, token, body):
    """POST /api/messages/{id}/redrive: send a failed, deferred or suppressed message again
    (409 with the reason when it is in another state, expired, or its recipient still suppressed)."""
    mid = request.path_params["id"]
    if not id_in_range(mid):
        raise ApiError(404, f"no message {mid}")
    flt = redrives.Filter(ids=(mid,), scope=_scope(token))
    result = redrives.redrive(
        s,
        flt,
        actor=_actor(token),
        now=utcnow(),
        lease_s=request.app.state.settings.lease_s,
        after_batch=enqueue_deliveries,
    )
    if result.not_found:
        raise ApiError(404, f"no message {mid}")
    if mid in result.skipped:
        raise ApiError(409, f"message {mid} was not sent again: {result.skipped[mid]}")
    return REQUEUED.dump({"id": mid, "state": "queued"})


@api(scope="send", body=True)
def redrive_many(request, s, token, body):
    """POST /api/messages/redrive: send again every failed, deferred or suppressed message the
    filter in the body matches (in batches); counts, and why the skipped ones were left."""
    unknown = sorted(set(body) - set(REDRIVE_FILTER.by_name))
    if unknown:  # a misspelt criterion must not widen the redrive to everything
        raise ApiError(400, f"unknown filter field: {', '.join(unknown)}")
    got = REDRIVE_FILTER.load(body)
    ids = got.get("ids", [])
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and id_in_range(i) for i in ids
    ):
        raise ApiError(400, "ids must be message ids (positive integers)")
    dry_run = got.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "dry_run must be true or false")
    try:
        flt = redrives.Filter(
            ids=tuple(ids),
            team_id=got.get("team_id"),
            sender=got.get("sender", ""),
            states=(got["state"],) if "state" in got else redrives.REDRIVABLE,
            domain=got.get("domain", ""),
            since=_instant("since", got.get("since")),
            until=_instant("until", got.get("until")),
            time_field=got["time"],
            scope=_scope(token),
        )
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    result = redrives.redrive(
        s,
        flt,
        actor=_actor(token),
        now=utcnow(),
        lease_s=request.app.state.settings.lease_s,
        dry_run=dry_run,
        after_batch=enqueue_deliveries,
    )
    examples = [{"id": i, "reason": why} for i, why in sorted(result.skipped.items())[: redrives.BATCH // 5]]
    return REDRIVEN.dump(
        {
            "redriven": len(result.redriven),
            "skipped": len(result.skipped),
            "skipped_examples": examples,
            "dry_run": dry_run,
        }
    )
