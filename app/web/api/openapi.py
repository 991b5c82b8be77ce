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

from app.web.api import chat, entries, events, inbound, messages, suppressions, teams
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
    messages.MESSAGE_SEND,
    messages.SEND_ACCEPTED,
    messages.CANCELLED,
    messages.BATCH_CANCELLED,
    suppressions.SUPPRESSION,
    suppressions.SUPPRESSION_PAGE,
    suppressions.SUPPRESSION_ADD,
    suppressions.SUPPRESSION_REMOVED,
    suppressions.IMPORTED,
    messages.REDRIVE_FILTER,
    messages.SKIPPED,
    messages.REDRIVEN,
    messages.REQUEUED,
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


CSV_FILE = {
    "description": "address,reason,expires_at lines with a header, as import reads them",
    "content": {"text/csv": {"schema": {"type": "string"}}},
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
    "/api/entries/{entry_id}": {
        "get": _op(
            entries.entry_get,
            "One entry",
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
            messages.create,
            "Send a message (or schedule it with send_at); idempotent by idempotency_key",
            {
                "202": _resp("accepted", messages.SEND_ACCEPTED),
                "200": _resp("already accepted (same idempotency_key)", messages.SEND_ACCEPTED),
                "403": _resp("the token lacks the send scope, or may not send for that team", ERROR),
                "429": {
                    **_resp("the team's hourly or daily quota is full: nothing was stored", ERROR),
                    "headers": {
                        "Retry-After": {
                            "required": True,
                            "description": "seconds until enough of the quota's window frees",
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    },
                },
            },
            body=messages.MESSAGE_SEND,
        ),
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
