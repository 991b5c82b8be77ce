"""GET /api/events: message events in id order, for polling with after_id (API token)."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.models import MessageEvent, OutboundMessage
from app.relay import labels
from app.web.api.base import IntQuery, api
from app.web.api.shapes import DATE_TIME, INT, STR, Field, Shape, Type, listing


def _json(value, kind: type):
    """A label column's value (parsed already on PostgreSQL, JSON text on SQLite) if it is a ``kind``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return kind()
    return value if isinstance(value, kind) else kind()


EVENT = Shape(
    "Event",
    (
        Field("id", INT),
        Field("message_id", INT),
        Field("kind", STR, description="a state name, or open, click, unsubscribe, ..."),
        Field("from_state", STR, description="the state it left ('' for the first, and for non-states)"),
        Field("detail", STR),
        Field("created_at", DATE_TIME),
        Field("tags", Type({"type": "array", "items": {"type": "string"}}), lambda e: _json(e["tags"], list)),
        Field(
            "metadata",
            Type({"type": "object", "additionalProperties": {"type": "string"}}),
            lambda e: _json(e["metadata"], dict),
            description="the message's, as it was sent with",
        ),
    ),
)
EVENT_LIST = listing("EventList", "events", EVENT)

MESSAGE_Q = IntQuery("message_id", description="only this message's events")
AFTER_Q = IntQuery("after_id", low=0, description="only events after this id")
LIMIT_Q = IntQuery("limit", 100, most=500, description="at most 500")


@api(scope="read")
def events(request, s, token, body):
    """GET /api/events?message_id=&after_id=&limit=: message events in id order (poll with after_id)."""
    E = MessageEvent
    tags, metadata = labels.columns(s.get_bind().dialect.name)
    columns = (E.id, E.message_id, E.kind, E.from_state, E.detail, E.created_at)
    stmt = select(*columns, tags.label("tags"), metadata.label("metadata"))
    stmt = stmt.join(OutboundMessage, OutboundMessage.id == MessageEvent.message_id)
    if token.team_id is not None:
        stmt = stmt.where(OutboundMessage.team_id == token.team_id)
    message_id, after_id = MESSAGE_Q.read(request), AFTER_Q.read(request)
    if message_id is not None:
        stmt = stmt.where(MessageEvent.message_id == message_id)
    if after_id is not None:
        stmt = stmt.where(MessageEvent.id > after_id)
    rows = s.execute(stmt.order_by(MessageEvent.id).limit(LIMIT_Q.read(request))).mappings().all()
    return EVENT_LIST.dump({"events": rows})
