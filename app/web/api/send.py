"""POST /api/messages and POST /api/messages/batch: send one message, or up to 500, by API token.

Thin endpoints over app.relay.sends: what a request makes is stored and committed (with the
team's quota checked in the same transaction), then what is due now is enqueued. The body may be
as large as a MAX_MESSAGE_BYTES message in base64 (``Settings.api_message_max_bytes``).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from app.errors import QuotaExceeded, RequestError
from app.models import utcnow
from app.relay import sends
from app.web.api.base import ApiError, api
from app.web.api.messages import METADATA, TAGS
from app.web.api.shapes import (
    BOOL,
    DATE_TIME,
    INT,
    OBJECT,
    STR,
    Field,
    Shape,
    Type,
    many,
    nullable,
    one_of,
    ref,
)
from jobs.enqueue import enqueue_deliveries

MAILBOX = Shape(
    "Mailbox",
    (Field("email", STR), Field("name", STR, required=False, description="the display name")),
)
_ONE = {"oneOf": [{"type": "string", "description": "addr or Name <addr>"}, ref("Mailbox")]}
ADDRESS = Type(_ONE)
ADDRESSES = Type(
    {"oneOf": [*_ONE["oneOf"], {"type": "array", "items": _ONE, "maxItems": sends.MAX_RECIPIENTS}]}
)
ATTACHMENT = Shape(
    "AttachmentUpload",
    (
        Field("filename", STR),
        Field("content_type", STR, required=False, default="application/octet-stream"),
        Field("content", Type({"type": "string", "format": "byte"}), description="the bytes in base64"),
        Field(
            "content_id",
            STR,
            required=False,
            description="makes it an inline part the html shows as cid:<content_id>",
        ),
    ),
)
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# validated by app.relay.sends.prepare (its FIELDS; tests hold the two together)
MESSAGE_SEND = Shape(
    "MessageSend",
    (
        Field("to", ADDRESSES, description=f"to, cc and bcc: at most {sends.MAX_RECIPIENTS} recipients"),
        Field("subject", STR),
        Field("from", ADDRESS, required=False, description="on a verified sending domain; default MAIL_FROM"),
        Field("cc", ADDRESSES, required=False),
        Field("bcc", ADDRESSES, required=False, description="envelope only: in no header"),
        Field("reply_to", ADDRESSES, required=False),
        Field("text", STR, required=False),
        Field("html", STR, required=False),
        Field("template", STR, required=False, description="instead of text/html"),
        Field("model", OBJECT, required=False, description="the template's variables"),
        Field("context", OBJECT, required=False, description="the older name of model"),
        Field(
            "headers",
            Type({**_STRING_MAP, "maxProperties": 50}),
            required=False,
            description="custom headers; not those of a field, Content-*, or what the relay adds"
            " (DKIM-Signature, Received, Return-Path, List-Unsubscribe, ...)",
        ),
        Field(
            "attachments",
            Type({"type": "array", "items": ref("AttachmentUpload"), "maxItems": 100}),
            required=False,
            description="text, html and decoded attachments: at most MAX_MESSAGE_BYTES (10 MiB)",
        ),
        Field("tags", TAGS, required=False),
        Field("metadata", METADATA, required=False, description="flat; returned with the message"),
        Field("send_at", DATE_TIME, required=False, description="with a UTC offset; default: now"),
        Field("idempotency_key", STR, required=False, description="a repeat answers the first's rows"),
        Field("batch_id", STR, required=False),
        Field("team_id", INT, required=False),
    ),
)
IDS = Type({"type": "array", "items": {"type": "integer"}}, dump=list)
SEND_ACCEPTED = Shape(
    "SendAccepted",
    (
        Field("id", INT, description="the first recipient's row"),
        Field("ids", IDS, description="one row per recipient: to, cc, then bcc"),
        Field("state", one_of(STR, ("scheduled", "queued"))),
        Field("send_at", nullable(DATE_TIME)),
        Field("batch_id", nullable(STR)),
        Field("duplicate", BOOL, description="the idempotency_key was known: nothing new was made"),
    ),
)
BATCH_SEND = Shape(
    "MessageBatch",
    (
        Field(
            "messages",
            Type({"type": "array", "items": ref("MessageSend"), "minItems": 1, "maxItems": sends.MAX_BATCH}),
        ),
    ),
)
BATCH_RESULT = Shape(
    "BatchResult",
    (
        Field("index", INT),
        Field("status", INT, description="what this message alone would have been answered"),
        Field("ids", IDS, description="empty when refused"),
        Field("state", nullable(one_of(STR, ("scheduled", "queued")))),
        Field("duplicate", BOOL),
        Field("error", nullable(STR), description="why it was refused, naming messages[index].field"),
    ),
)
BATCH_ACCEPTED = Shape(
    "BatchAccepted",
    (
        Field("accepted", INT, description="messages stored (or known by their idempotency_key)"),
        Field("refused", INT),
        Field("results", many(BATCH_RESULT), description="one per message, in order"),
    ),
)


def _quota_refused(e: QuotaExceeded) -> ApiError:
    headers = {"Retry-After": str(e.retry_after_s)} if e.retry_after_s else {}
    return ApiError(429, str(e), headers)


def _body_limit(settings) -> int:
    return settings.api_message_max_bytes


@api(scope="send", body=True, max_bytes=_body_limit)
def create(request, s, token, body):
    """POST /api/messages: send now or at ``send_at``, one row per recipient; 202 (200 when the
    idempotency key is known); 429 with Retry-After when the team's quota is full (nothing stored)."""
    now, settings = utcnow(), request.app.state.settings
    try:
        accepted = sends.create(s, body, token, now=now, settings=settings)
        sends.check_quotas(s, [accepted], now=now, settings=settings)
    except QuotaExceeded as e:  # raised out of the session: the rows just made roll back
        raise _quota_refused(e) from None
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    s.commit()  # a worker must find the rows its ids name
    if accepted.state == "queued" and not accepted.duplicate:
        enqueue_deliveries(list(accepted.ids))
    return JSONResponse(SEND_ACCEPTED.dump(accepted), status_code=200 if accepted.duplicate else 202)


@api(scope="send", body=True, max_bytes=_body_limit)
def create_batch(request, s, token, body):
    """POST /api/messages/batch: up to 500 messages, each checked on its own; the good ones stored
    in one transaction, counted together against the team's quota (429: none stored)."""
    now, settings = utcnow(), request.app.state.settings
    try:
        results = sends.create_batch(s, body, token, now=now, settings=settings)
        sends.check_quotas(
            s, [r for r in results if isinstance(r, sends.Accepted)], now=now, settings=settings
        )
    except QuotaExceeded as e:
        raise _quota_refused(e) from None
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    s.commit()
    due = [
        i
        for r in results
        if isinstance(r, sends.Accepted) and r.state == "queued" and not r.duplicate
        for i in r.ids
    ]
    if due:
        enqueue_deliveries(due)
    rows = []
    for i, r in enumerate(results):
        if isinstance(r, sends.Accepted):
            status = 200 if r.duplicate else 202
            rows.append(
                {
                    "index": i,
                    "status": status,
                    "ids": r.ids,
                    "state": r.state,
                    "duplicate": r.duplicate,
                    "error": None,
                }
            )
        else:
            rows.append(
                {
                    "index": i,
                    "status": r.status,
                    "ids": (),
                    "state": None,
                    "duplicate": False,
                    "error": str(r),
                }
            )
    refused = sum(1 for r in results if not isinstance(r, sends.Accepted))
    made = any(isinstance(r, sends.Accepted) and not r.duplicate for r in results)
    answer = {"accepted": len(results) - refused, "refused": refused, "results": rows}
    return JSONResponse(BATCH_ACCEPTED.dump(answer), status_code=202 if made else 200)
