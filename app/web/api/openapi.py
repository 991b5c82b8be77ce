"""The OpenAPI 3.0 document of /api/ and GET /api/openapi.json.

The shapes (components/schemas) and the query parameters are the very objects the
endpoints serialize, read and validate with (app.web.api.shapes, app.web.api.base);
this module only says which operation answers what. Tests check that every route under
/api/ is documented here and every documented operation routed, and schemathesis holds
the responses to the document.
"""

from __future__ import annotations

from copy import deepcopy

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.web.api import (
    chat,
    comments,
    domains,
    entries,
    events,
    inbound,
    messages,
    passthrough,
    reports,
    send,
    suppressions,
    teams,
    webhooks,
)
from app.web.api.base import OPEN_FROM_Q, OPEN_TO_Q
from app.web.api.inbound import MAX_INDEX
from app.web.api.shapes import ERROR, Shape, ref
from app.web.common import MAX_ID
from app.web.security import DOWNLOAD_TYPES

SHAPES: tuple[Shape, ...] = (
    ERROR,
    teams.TEAM,
    teams.TEAM_LIST,
    teams.MEMBER,
    teams.MEMBER_LIST,
    teams.TEAM_SETTINGS,
    teams.TEAM_SETTINGS_PATCH,
    chat.CHAT_CHANNEL,
    chat.CHAT_CHANNEL_LIST,
    chat.CHAT_CHANNEL_ADD,
    chat.TEST_POST,
    entries.ENTRY,
    entries.ENTRY_LIST,
    entries.ENTRY_CREATE,
    entries.ENTRY_PATCH,
    comments.COMMENT,
    comments.COMMENT_PAGE,
    reports.PARTICIPATION_FIGURES,
    reports.PARTICIPATION_MEMBER,
    reports.PARTICIPATION_DAY,
    reports.PARTICIPATION,
    events.EVENT,
    events.EVENT_LIST,
    inbound.INBOUND_SUMMARY,
    inbound.INBOUND_PAGE,
    inbound.ATTACHMENT,
    inbound.INLINE_PART,
    inbound.INBOUND_ENTRY,
    inbound.INBOUND,
    messages.TIMELINE_EVENT,
    messages.MESSAGE,
    messages.MESSAGE_PAGE,
    send.MAILBOX,
    send.ATTACHMENT,
    send.MESSAGE_SEND,
    send.SEND_ACCEPTED,
    send.BATCH_SEND,
    send.BATCH_RESULT,
    send.BATCH_ACCEPTED,
    messages.CANCELLED,
    messages.BATCH_CANCELLED,
    suppressions.SUPPRESSION,
    suppressions.SUPPRESSION_PAGE,
    suppressions.SUPPRESSION_ADD,
    suppressions.SUPPRESSION_REMOVED,
    suppressions.IMPORTED,
    domains.RECORD,
    domains.DOMAIN,
    domains.DOMAIN_LIST,
    domains.DOMAIN_ADD,
    domains.REMOVED,
    messages.REDRIVE_FILTER,
    messages.SKIPPED,
    messages.REDRIVEN,
    messages.REQUEUED,
    passthrough.PASS_THROUGH,
    passthrough.PASS_THROUGH_SET,
    webhooks.WEBHOOK,
    webhooks.WEBHOOK_CREATED,
    webhooks.WEBHOOK_LIST,
    webhooks.WEBHOOK_ADD,
    webhooks.WEBHOOK_REMOVED,
)
SCHEMAS = {shape.name: shape.schema() for shape in SHAPES}


def _resp(desc: str, shape: Shape | None = None) -> dict:
    out = {"description": desc}
    if shape is not None:
        out["content"] = {"application/json": {"schema": ref(shape.name)}}
    return out


ERRORS = {
    "400": "bad input, with the reason",
    "401": "no valid bearer token",
    "403": "the token lacks the operation's scope",
    "404": "not found (or not in the token's reach)",
    "413": "body too large",
    "415": "not JSON",
    "422": "a value out of range, or text that cannot be stored (a NUL, a lone surrogate), named",
}


# a file's bytes: answered under every type app.web.security.download may give it
FILE = {
    "description": "the file's bytes as a download (attachment disposition, nosniff, a sandbox policy)",
    "headers": {
        "Content-Disposition": {
            "required": True,
            "description": "attachment, with the safe name as filename (ASCII) and filename* (UTF-8)",
            "schema": {"type": "string"},
        }
    },
    "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(DOWNLOAD_TYPES)},
}


def _op(
    endpoint, summary: str, ok: dict, *, params=(), body: Shape | None = None, found: bool = False
) -> dict:
    """One operation of ``endpoint``: its summary, the scope its token needs (``x-scopes``, and in
    words in the description), ``ok`` answers, parameters, body and the errors it can give."""
    codes = ["400", "401", "403"] + (["404"] if found else []) + (["413", "415"] if body else []) + ["422"]
    responses = {code: _resp(ERRORS[code], ERROR) for code in codes}
    responses["403"] = _resp(f"the token lacks the {endpoint.scope} scope", ERROR)
    responses.update(ok)
    op = {
        "summary": summary,
        "description": f"Needs a token with the `{endpoint.scope}` scope.",
        "x-scopes": [endpoint.scope],
        "parameters": list(params),
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body.name)}}}
    return op


def _csv_op(endpoint, summary: str, ok: dict, codes: list[str], *, body: bool = False) -> dict:
    """An operation of ``endpoint`` whose request (``body``) or answer is text/csv."""
    op = {
        "summary": summary,
        "description": f"Needs a token with the `{endpoint.scope}` scope.",
        "x-scopes": [endpoint.scope],
        "parameters": [],
        "responses": {c: _resp(ERRORS[c], ERROR) for c in codes},
    }
    op["responses"]["403"] = _resp(f"the token lacks the {endpoint.scope} scope", ERROR)
    op["responses"].update(ok)
    if body:
        csv = {
            "schema": {"type": "string"},
            "example": "address,reason,expires_at\nada@example.com,manual,\n",
        }
        op["requestBody"] = {"required": True, "content": {"text/csv": csv}}
    return op


EXPORT_FILE = {
    "description": "the entries and comments as a download, streamed, one record a row: CSV with a header"
    " line (cells that would start a formula get a leading '), one JSON array, or one JSON object a line;"
    " columns id, day, member_id, member, email, kind, text, created_at, status (a goal: open, done or"
    " carried; a blocker: open or resolved), entry_id and about_member_id (a comment, of kind comment: the"
    " entry it answers, the member it names)",
    "headers": {
        "Content-Disposition": {
            "required": True,
            "description": "attachment; filename=donebox-team-<id>-<from>-<to>.<format>",
            "schema": {"type": "string"},
        }
    },
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}
CSV_FILE = {
    "description": "address,reason,expires_at lines with a header, as import reads them",
    "content": {"text/csv": {"schema": {"type": "string"}}},
}


QUOTA_FULL = {
    **_resp("the team's hourly or daily quota is full: nothing was stored", ERROR),
    "headers": {
        "Retry-After": {
            "required": False,
            "description": "seconds until enough of the quota's window frees (absent: it never will)",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _path(name: str, schema: dict | None = None) -> dict:
    if schema is not None:
        return {"name": name, "in": "path", "required": True, "schema": schema}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "example": 1,
    }


def _q(*queries) -> list[dict]:
    return [q.parameter() for q in queries]


PATHS = {
    "/api/teams": {
        "get": _op(teams.teams, "The teams the token reaches", {"200": _resp("teams", teams.TEAM_LIST)})
    },
    "/api/teams/{team_id}": {
        "get": _op(
            teams.team,
            "One team",
            {"200": _resp("the team", teams.TEAM)},
            params=[_path("team_id")],
            found=True,
        )
    },
    "/api/teams/{team_id}/members": {
        "get": _op(
            teams.members,
            "The team's members",
            {"200": _resp("members", teams.MEMBER_LIST)},
            params=[_path("team_id")],
            found=True,
        )
    },
    "/api/teams/{team_id}/settings": {
        "get": _op(
            teams.settings_get,
            "The team's settings",
            {"200": _resp("the settings", teams.TEAM_SETTINGS)},
            params=[_path("team_id")],
            found=True,
        ),
        "patch": _op(
            teams.settings_patch,
            "Change the given settings (as the team settings page does); 400 names a refused one",
            {"200": _resp("the settings now", teams.TEAM_SETTINGS)},
            params=[_path("team_id")],
            body=teams.TEAM_SETTINGS_PATCH,
            found=True,
        ),
    },
    "/api/teams/{team_id}/chat": {
        "get": _op(
            chat.channels,
            "The chat channels the team's digest is posted to (webhook URLs masked)",
            {"200": _resp("the channels", chat.CHAT_CHANNEL_LIST)},
            params=[_path("team_id")],
            found=True,
        ),
        "post": _op(
            chat.channel_add,
            "Post the team's digest to a channel's incoming webhook too; 400 names a refused field",
            {"201": _resp("the channel", chat.CHAT_CHANNEL)},
            params=[_path("team_id")],
            body=chat.CHAT_CHANNEL_ADD,
            found=True,
        ),
    },
    "/api/teams/{team_id}/chat/{channel_id}": {
        "delete": _op(
            chat.channel_remove,
            "No more posts to the channel",
            {"204": _resp("removed")},
            params=[_path("team_id"), _path("channel_id")],
            found=True,
        )
    },
    "/api/teams/{team_id}/chat/{channel_id}/test": {
        "post": _op(
            chat.channel_test,
            "A test post to the channel, through the outbox",
            {"202": _resp("the test post's message", chat.TEST_POST)},
            params=[_path("team_id"), _path("channel_id")],
            found=True,
        )
    },
    "/api/teams/{team_id}/entries": {
        "get": _op(
            entries.entry_list,
            "The team's entries, newest first",
            {"200": _resp("entries", entries.ENTRY_LIST)},
            params=[_path("team_id"), *_q(entries.DAY_Q, entries.MEMBER_Q, entries.WORDS_Q, entries.LIMIT_Q)],
            found=True,
        ),
        "post": _op(
            entries.entry_create,
            "Add entries (one per line of text) for a member",
            {"201": _resp("the entries made", entries.ENTRY_LIST)},
            params=[_path("team_id")],
            body=entries.ENTRY_CREATE,
            found=True,
        ),
    },
    "/api/teams/{team_id}/participation": {
        "get": _op(
            reports.participation_get,
            "Days asked and answered, streaks and reply times of each member and the team over a span"
            " (default the last 30 days; at most 366: 422 beyond, naming the span)",
            {"200": _resp("the participation", reports.PARTICIPATION)},
            params=[_path("team_id"), *_q(reports.FROM_Q, reports.TO_Q)],
            found=True,
        )
    },
    "/api/teams/{team_id}/export": {
        "get": _op(
            reports.export_get,
            "The team's entries of a span as CSV, JSON or NDJSON, streamed (any size)",
            {"200": EXPORT_FILE},
            params=[_path("team_id"), *_q(reports.FORMAT_Q, OPEN_FROM_Q, OPEN_TO_Q)],
            found=True,
        )
    },
    "/api/teams/{team_id}/comments": {
        "get": _op(
            comments.comment_list,
            "The replies to the team's digests (on an entry, a member or the day), newest first, one page"
            " (next page: before=next_before); day=, or a span from= to=",
            {"200": _resp("comments", comments.COMMENT_PAGE)},
            params=[
                _path("team_id"),
                *_q(comments.DAY_Q, OPEN_FROM_Q, OPEN_TO_Q, comments.LIMIT_Q, comments.BEFORE_Q),
            ],
            found=True,
        )
    },
    "/api/entries/{entry_id}": {
        "get": _op(
            entries.entry_get,
            "One entry, with the comments on it",
            {"200": _resp("the entry", entries.ENTRY)},
            params=[_path("entry_id")],
            found=True,
        ),
        "patch": _op(
            entries.entry_patch,
            "Change an entry's text or kind",
            {"200": _resp("the entry", entries.ENTRY)},
            params=[_path("entry_id")],
            body=entries.ENTRY_PATCH,
            found=True,
        ),
        "delete": _op(
            entries.entry_delete,
            "Delete an entry",
            {"204": _resp("deleted")},
            params=[_path("entry_id")],
            found=True,
        ),
    },
    "/api/events": {
        "get": _op(
            events.events,
            "Message events in id order; poll with after_id",
            {"200": _resp("events", events.EVENT_LIST)},
            params=_q(events.MESSAGE_Q, events.AFTER_Q, events.LIMIT_Q),
        )
    },
    "/api/inbound": {
        "get": _op(
            inbound.list_inbound,
            "Received mail, newest first, one page (next page: before=next_before)",
            {"200": _resp("inbound messages", inbound.INBOUND_PAGE)},
            params=_q(inbound.STATE_Q, inbound.LIMIT_Q, inbound.BEFORE_Q),
        )
    },
    "/api/inbound/{id}": {
        "get": _op(
            inbound.get_inbound,
            "One received message: normalized, its reply text and the entries it made",
            {"200": _resp("the message", inbound.INBOUND)},
            params=[_path("id")],
            found=True,
        )
    },
    "/api/inbound/{id}/attachments/{index}": {
        "get": _op(
            inbound.get_attachment,
            "One attachment or inline part of a received message, by its index (attachments and inline"
            " parts share one index space)",
            {"200": FILE},
            params=[_path("id"), _path("index", {"type": "integer", "minimum": 0, "maximum": MAX_INDEX})],
            found=True,
        )
    },
    "/api/messages": {
        "get": _op(
            messages.list_messages,
            "Outbound messages, newest first, one page (next page: before=next_before)",
            {"200": _resp("messages", messages.MESSAGE_PAGE)},
            params=_q(messages.STATE_Q, messages.LIMIT_Q, messages.BEFORE_Q),
        ),
        "post": _op(
            send.create,
            "Send a message (or schedule it with send_at); idempotent by idempotency_key",
            {
                "202": _resp("accepted", send.SEND_ACCEPTED),
                "200": _resp("already accepted (same idempotency_key)", send.SEND_ACCEPTED),
                "403": _resp("the token lacks the send scope, or may not send for that team", ERROR),
                "413": _resp("body past its limit, or the message past MAX_MESSAGE_BYTES (named)", ERROR),
                "429": QUOTA_FULL,
            },
            body=send.MESSAGE_SEND,
        ),
    },
    "/api/messages/batch": {
        "post": _op(
            send.create_batch,
            "Send up to 500 messages: each checked on its own (a refused one is named by its index),"
            " the good ones stored together; 202 when any new message was stored, else 200",
            {
                "202": _resp("per message: its rows, or why it was refused", send.BATCH_ACCEPTED),
                "200": _resp("nothing new stored: every message refused or known", send.BATCH_ACCEPTED),
                "403": _resp("the token lacks the send scope", ERROR),
                "429": QUOTA_FULL,
            },
            body=send.BATCH_SEND,
        )
    },
    "/api/messages/{id}": {
        "get": _op(
            messages.get_message,
            "One message with its events timeline, oldest first",
            {"200": _resp("the message", messages.MESSAGE)},
            params=[_path("id")],
            found=True,
        ),
        "delete": _op(
            messages.cancel,
            "Cancel a message that is still scheduled",
            {"200": _resp("cancelled", messages.CANCELLED), "409": _resp("already queued or sent", ERROR)},
            params=[_path("id")],
            found=True,
        ),
    },
    "/api/messages/{id}/redrive": {
        "post": _op(
            messages.redrive_one,
            "Send a failed, deferred or suppressed message again (attempts reset, due now)",
            {
                "200": _resp("queued again", messages.REQUEUED),
                "409": _resp("not sent again: its state, expiry or a suppressed recipient", ERROR),
            },
            params=[_path("id")],
            found=True,
        )
    },
    "/api/messages/redrive": {
        "post": _op(
            messages.redrive_many,
            "Send again every failed, deferred or suppressed message the filter matches",
            {"200": _resp("counts, and why messages were skipped", messages.REDRIVEN)},
            body=messages.REDRIVE_FILTER,
        )
    },
    "/api/batches/{batch_id}": {
        "delete": _op(
            messages.cancel_batch,
            "Cancel every still-scheduled message of a batch",
            {"200": _resp("counts", messages.BATCH_CANCELLED)},
            params=[_path("batch_id", {"type": "string"})],
            found=True,
        )
    },
    "/api/domains": {
        "get": _op(
            domains.list_domains,
            "The sending domains in the token's reach, with the DNS records each must publish and their"
            " last verdicts",
            {"200": _resp("domains", domains.DOMAIN_LIST)},
        ),
        "post": _op(
            domains.add_domain,
            "Add a sending domain: its DKIM keys (RSA-2048 and Ed25519) are made; publish the records it"
            " answers, then verify; errors name the field",
            {
                "201": _resp("the domain and its records", domains.DOMAIN),
                "409": _resp("already a sending domain", ERROR),
            },
            body=domains.DOMAIN_ADD,
            found=True,
        ),
    },
    "/api/domains/{domain}/verify": {
        "post": _op(
            domains.verify_domain,
            "Look the domain's records up in DNS now and record the verdict per record; verified when all"
            " are found",
            {"200": _resp("the domain with the verdicts", domains.DOMAIN)},
            params=[_path("domain", {"type": "string"})],
            found=True,
        )
    },
    "/api/domains/{domain}": {
        "delete": _op(
            domains.remove_domain,
            "Remove a sending domain of the token's team, with its keys",
            {"200": _resp("removed", domains.REMOVED)},
            params=[_path("domain", {"type": "string"})],
            found=True,
        )
    },
    "/api/relay/pass-through": {
        "get": _op(
            passthrough.get_pass_through,
            "Pass-through: whether bulk mail goes out untracked now, the queue's wait, the counts",
            {"200": _resp("the state", passthrough.PASS_THROUGH)},
        ),
        "put": _op(
            passthrough.put_pass_through,
            "Set pass-through's mode (on, off, or auto: by the oldest waiting message), applied at once",
            {
                "200": _resp("the state it gives", passthrough.PASS_THROUGH),
                "403": _resp(
                    "the token lacks the manage scope, or is one team's (the mode is the instance's)", ERROR
                ),
            },
            body=passthrough.PASS_THROUGH_SET,
        ),
    },
    "/api/suppressions": {
        "get": _op(
            suppressions.list_suppressions,
            "The suppression list in the token's reach, newest first, one page (next: before=next_before)",
            {"200": _resp("entries", suppressions.SUPPRESSION_PAGE)},
            params=_q(
                suppressions.TEAM_Q,
                suppressions.REASON_Q,
                suppressions.WORDS_Q,
                suppressions.LIMIT_Q,
                suppressions.BEFORE_Q,
            ),
            found=True,
        ),
        "post": _op(
            suppressions.add_suppression,
            "Suppress an address (the token's team's entry); errors name the field",
            {
                "201": _resp("the entry", suppressions.SUPPRESSION),
                "409": _resp("already suppressed, or another team's or an instance-wide entry", ERROR),
            },
            body=suppressions.SUPPRESSION_ADD,
            found=True,
        ),
    },
    "/api/suppressions/import": {
        "post": _csv_op(
            suppressions.import_suppressions,
            "Import CSV lines address[,reason[,expires_at]]: good lines imported, bad ones reported by"
            " number; 400 only when no line is good",
            {"200": _resp("what was imported", suppressions.IMPORTED)},
            ["400", "401", "413", "415"],
            body=True,
        )
    },
    "/api/suppressions/export": {
        "get": _csv_op(
            suppressions.export_suppressions,
            "The entries in reach that suppress now, as CSV",
            {"200": CSV_FILE},
            ["400", "401"],
        )
    },
    "/api/suppressions/{address}": {
        "delete": _op(
            suppressions.remove_suppression,
            "Take an address off the list (its entry must be in the token's reach)",
            {"200": _resp("removed", suppressions.SUPPRESSION_REMOVED)},
            params=[_path("address", {"type": "string"})],
            found=True,
        )
    },
    "/api/webhooks": {
        "get": _op(
            webhooks.list_webhooks,
            "The webhook endpoints in the token's reach (never their secrets)",
            {"200": _resp("endpoints", webhooks.WEBHOOK_LIST)},
            params=_q(webhooks.TEAM_Q),
            found=True,
        ),
        "post": _op(
            webhooks.add_webhook,
            "Add a webhook endpoint: signed POSTs of the kinds named; its secret is in this answer only",
            {
                "201": _resp("the endpoint and its secret", webhooks.WEBHOOK_CREATED),
                "409": _resp("the team has the most endpoints it may have", ERROR),
            },
            body=webhooks.WEBHOOK_ADD,
            found=True,
        ),
    },
    "/api/webhooks/{endpoint_id}": {
        "delete": _op(
            webhooks.remove_webhook,
            "Remove a webhook endpoint (its pending deliveries fail; their log stays)",
            {"200": _resp("removed", webhooks.WEBHOOK_REMOVED)},
            params=[_path("endpoint_id")],
            found=True,
        )
    },
}


def document(base_url: str = "") -> dict:
    """The OpenAPI document served at /api/openapi.json."""
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "donebox API", "version": "1"},
        "paths": deepcopy(PATHS),
        "components": {
            "schemas": deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if base_url:
        doc["servers"] = [{"url": base_url}]
    return doc


async def openapi(request: Request) -> JSONResponse:
    """GET /api/openapi.json: the OpenAPI 3.0 document of this API (no token needed)."""
    return JSONResponse(document(request.app.state.settings.base_url))
