"""GET /api/inbound?state= and /api/inbound/{id}: stored inbound mail, normalized, by API token.

A token limited to a team sees only messages attributed to a member of that team.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select

from app.inbound.accept import STATES
from app.inbound.process import QUARANTINED_NOTE, load_email
from app.models import Entry, InboundMessage, Member
from app.web.api.base import ApiError, ChoiceQuery, IntQuery, api
from app.web.api.shapes import (
    DATE_TIME,
    DAY,
    INT,
    STR,
    STRINGS,
    Field,
    Shape,
    many,
    nullable,
    one_of,
)
from app.web.common import id_in_range
from parsers.message import InboundEmail

STATE = one_of(STR, STATES)
ATTACHMENT = Shape(
    "Attachment",
    (
        Field("filename", STR, description="safe to store and show: no path, no control characters"),
        Field("raw_filename", STR, description="the name as the sender wrote it"),
        Field("content_type", STR),
        Field("size", INT, description="bytes"),
    ),
)
INBOUND_ENTRY = Shape(
    "InboundEntry",
    (Field("id", INT), Field("day", DAY), Field("kind", STR), Field("text", STR)),
)
SAME_MESSAGE_ID_AS = (
    "the first inbound message with the same Message-ID and envelope recipient, when this one is"
    " another mail reusing it or a second delivery (see notes); null otherwise"
)
INBOUND_SUMMARY = Shape(
    "InboundSummary",
    (
        Field("id", INT),
        Field("provider", STR),
        Field("state", STATE),
        Field("error", STR),
        Field("from", STR, "from_addr"),
        Field("subject", STR),
        Field("member_id", nullable(INT), description="who wrote it, once identified"),
        Field("received_at", nullable(DATE_TIME)),
        Field("same_message_id_as", nullable(INT), description=SAME_MESSAGE_ID_AS),
    ),
)
INBOUND_PAGE = Shape(
    "InboundPage",
    (
        Field("items", many(INBOUND_SUMMARY)),
        Field("next_before", nullable(INT), description="the next page's before=; null on the last page"),
    ),
)


class Stored(NamedTuple):
    """What GET /api/inbound/{id} shows: the row, its normalized email and the entries it made."""

    row: InboundMessage
    email: InboundEmail
    entries: list[Entry]


def _notes(stored: Stored) -> list[str]:
    """The parser's notes and processing's, once each, in order."""
    return list(dict.fromkeys([*stored.email.notes, *(n for n in stored.row.notes.split("\n") if n)]))


INBOUND = Shape(
    "Inbound",
    (
        Field("id", INT, "row.id"),
        Field("provider", STR, "row.provider"),
        Field("message_id", STR, "email.message_id"),
        Field("from", STR, "email.from_addr"),
        Field("from_name", STR, "email.from_name"),
        Field("to", STRINGS, "email.to"),
        Field("cc", STRINGS, "email.cc"),
        Field("subject", STR, "email.subject"),
        Field("date", nullable(DATE_TIME), "email.date", description="its Date header"),
        Field("text", nullable(STR), "email.text"),
        Field("html", nullable(STR), "email.html"),
        Field("reply_text", STR, "row.reply_text", description="the reply, without quote and signature"),
        Field("attachments", many(ATTACHMENT), "email.attachments"),
        Field("spf", STR, "email.spf"),
        Field("dkim", STR, "email.dkim"),
        Field("state", STATE, "row.state"),
        Field("error", STR, "row.error"),
        Field("notes", STRINGS, _notes, description="what parsing and processing noticed"),
        Field("member_id", nullable(INT), "row.member_id"),
        Field("received_at", nullable(DATE_TIME), "row.received_at"),
        Field("same_message_id_as", nullable(INT), "row.same_message_id_as", description=SAME_MESSAGE_ID_AS),
        Field("entries", many(INBOUND_ENTRY), "entries", description="the entries it made"),
    ),
)

STATE_Q = ChoiceQuery("state", STATES, "only messages in this state")
LIMIT_Q = IntQuery("limit", 50, high=200)
BEFORE_Q = IntQuery("before", description="only ids below this (the previous page's next_before)")


def _visible(s, token, row: InboundMessage) -> bool:
    if token.team_id is None:
        return True
    if row.member_id is None:
        return False
    member = s.get(Member, row.member_id)
    return member is not None and member.team_id == token.team_id


def stored(s, row: InboundMessage) -> Stored:
    """``row`` with its email normalized again (or a note saying why it cannot be) and its entries."""
    if row.state == "quarantined":  # its processing never finished: parsing it here could hang the web
        return Stored(row, InboundEmail(notes=(QUARANTINED_NOTE,)), [])
    try:
        email = load_email(row)
    except Exception as e:  # noqa: BLE001 - a stored payload our adapters can no longer read
        email = InboundEmail(notes=(f"cannot normalize the stored payload: {type(e).__name__}",))
    entries = s.execute(select(Entry).where(Entry.inbound_id == row.id).order_by(Entry.id)).scalars()
    return Stored(row, email, list(entries))


@api()
def get_inbound(request, s, token, body):
    """GET /api/inbound/{id}: one message, normalized, with its reply text and entries."""
    try:
        inbound_id = int(request.path_params["id"])
    except ValueError:
        raise ApiError(404, "no such inbound message") from None
    row = s.get(InboundMessage, inbound_id) if id_in_range(inbound_id) else None
    if row is None or not _visible(s, token, row):
        raise ApiError(404, "no such inbound message")
    return INBOUND.dump(stored(s, row))


@api()
def list_inbound(request, s, token, body):
    """GET /api/inbound?state=failed&limit=50&before=ID: newest first, one page."""
    state, limit, before = STATE_Q.read(request), LIMIT_Q.read(request), BEFORE_Q.read(request)
    q = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if state:
        q = q.where(InboundMessage.state == state)
    if before:
        q = q.where(InboundMessage.id < before)
    if token.team_id is not None:
        q = q.where(InboundMessage.member_id.in_(select(Member.id).where(Member.team_id == token.team_id)))
    rows = s.execute(q).scalars().all()
    return INBOUND_PAGE.dump({"items": rows, "next_before": rows[-1].id if len(rows) == limit else None})
