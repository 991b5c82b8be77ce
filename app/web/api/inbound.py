"""GET /api/inbound?state=, /api/inbound/{id} and its files: stored inbound mail, normalized, by API token.

A token limited to a team sees only messages attributed to a member of that team; a message
outside its reach is a 404, files included.

A message's files are its attachments and its inline parts (images its HTML shows by ``cid:``),
listed apart. They share one index space: a file's ``index`` is its position among all the
message's file parts in MIME order (``InboundEmail.attachments``), so attachments may be numbered
0, 2 and an inline part 1; GET /api/inbound/{id}/attachments/{index} serves either kind.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select

from app.inbound.accept import STATES
from app.inbound.process import QUARANTINED_NOTE, load_email
from app.models import Entry, InboundMessage, Member
from app.web.api.base import BEFORE_Q, ApiError, ChoiceQuery, IntQuery, api
from app.web.api.shapes import (
    DATE_TIME,
    DAY,
    INT,
    STR,
    STRINGS,
    Field,
    Shape,
    many,
    next_before,
    nullable,
    one_of,
    paged,
)
from app.web.common import id_in_range
from app.web.security import download
from parsers import limits
from parsers.message import Attachment, InboundEmail

STATE = one_of(STR, STATES)
_INDEX = Field(
    "index", INT, description="its number in GET /api/inbound/{id}/attachments/{index} (shared with inline)"
)
_FILE_FIELDS = (
    Field(
        "filename", STR, "file.filename", description="safe to store and show: no path, no control characters"
    ),
    Field("raw_filename", STR, "file.raw_filename", description="the name as the sender wrote it"),
    Field("content_type", STR, "file.content_type", description="as declared by the sender"),
    Field("size", INT, "file.size", description="bytes"),
)
ATTACHMENT = Shape("Attachment", (_INDEX, *_FILE_FIELDS))
INLINE_PART = Shape(
    "InlinePart",
    (
        _INDEX,
        Field(
            "content_id", STR, "file.content_id", description="without angle brackets, as cid: URLs name it"
        ),
        *_FILE_FIELDS,
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
INBOUND_PAGE = paged("InboundPage", "items", INBOUND_SUMMARY)


class FilePart(NamedTuple):
    """One file of a message with its index (see the module docstring)."""

    index: int
    file: Attachment


def files(email: InboundEmail, inline: bool) -> list[FilePart]:
    """The message's attachments (``inline`` False) or inline parts, each with its index."""
    return [FilePart(i, a) for i, a in enumerate(email.attachments) if a.inline == inline]


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
        Field(
            "cut_at",
            nullable(INT),
            "row.cut_at",
            description="how many of the body's lines (as the extractor read them) the reply keeps; null"
            " when nothing was cut",
        ),
        Field(
            "cut_rule",
            STR,
            "row.cut_rule",
            description="the rule that cut there (parsers.quotes.RULES; 'corrected' when a person moved it)",
        ),
        Field(
            "cut_confidence",
            STR,
            "row.cut_confidence",
            description="high, or low when the cut was a guess ('' when processed before cuts were kept)",
        ),
        Field(
            "attachments",
            many(ATTACHMENT),
            lambda st: files(st.email, inline=False),
            description="attached files; inline parts are not among them",
        ),
        Field(
            "inline",
            many(INLINE_PART),
            lambda st: files(st.email, inline=True),
            description="parts the HTML shows by cid: (a Content-ID and no attachment disposition)",
        ),
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

MAX_INDEX = limits.MAX_MIME_PARTS  # no message has more file parts than the parser reads parts
STATE_Q = ChoiceQuery("state", STATES, "only messages in this state")
LIMIT_Q = IntQuery("limit", 50, high=200)


def _visible(s, token, row: InboundMessage) -> bool:
    if token.team_id is None:
        return True
    if row.member_id is None:
        return False
    member = s.get(Member, row.member_id)
    return member is not None and member.team_id == token.team_id


def email_of(row: InboundMessage) -> InboundEmail:
    """``row``'s email normalized again, or one with a note saying why it cannot be."""
    if row.state == "quarantined":  # its processing never finished: parsing it here could hang the web
        return InboundEmail(notes=(QUARANTINED_NOTE,))
    try:
        return load_email(row)
    except Exception as e:  # noqa: BLE001 - a stored payload our adapters can no longer read
        return InboundEmail(notes=(f"cannot normalize the stored payload: {type(e).__name__}",))


def stored(s, row: InboundMessage) -> Stored:
    """``row`` with its email normalized again (or a note saying why it cannot be) and its entries."""
    entries = s.execute(select(Entry).where(Entry.inbound_id == row.id).order_by(Entry.id)).scalars()
    return Stored(row, email_of(row), list(entries))


def _row(request, s, token) -> InboundMessage:
    """The message the path names, if the token may see it; else ApiError 404 (whether it exists or not)."""
    try:
        inbound_id = int(request.path_params["id"])
    except ValueError:
        raise ApiError(404, "no such inbound message") from None
    row = s.get(InboundMessage, inbound_id) if id_in_range(inbound_id) else None
    if row is None or not _visible(s, token, row):
        raise ApiError(404, "no such inbound message")
    return row


@api(scope="read")
def get_inbound(request, s, token, body):
    """GET /api/inbound/{id}: one message, normalized, with its reply text and entries."""
    return INBOUND.dump(stored(s, _row(request, s, token)))


@api(scope="read")
def get_attachment(request, s, token, body):
    """GET /api/inbound/{id}/attachments/{index}: one attachment's or inline part's bytes, as a download.

    Served by app.web.security.download: under its safe name, as application/octet-stream unless
    its type is one browsers cannot run, with nosniff and a sandbox policy.
    """
    row = _row(request, s, token)
    value = request.path_params["index"]
    if not (value.isascii() and value.isdigit() and len(value) <= 9 and int(value) <= MAX_INDEX):
        raise ApiError(404, f"no such attachment: the index is a whole number from 0 to {MAX_INDEX}")
    email = email_of(row)
    index, count = int(value), len(email.attachments)
    if index >= count:
        why = f"the message has {count} file part(s), numbered from 0" if count else "the message has none"
        if row.state == "quarantined":
            why = "the message is quarantined: it is not parsed until reprocessed"
        raise ApiError(404, f"no such attachment: {why}")
    part = email.attachments[index]
    return download(part.content, part.filename, part.content_type)


@api(scope="read")
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
    return INBOUND_PAGE.dump({"items": rows, "next_before": next_before(rows, limit)})
