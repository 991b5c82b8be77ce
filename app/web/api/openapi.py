"""The OpenAPI 3.0 document of /api/, written by hand next to the endpoints (tests hold the two together).

Tests check that every route under /api/ is documented here and that every
documented operation is routed, and schemathesis holds the responses to it.
"""

from __future__ import annotations

from copy import deepcopy

from app.models import ROLES
from parsers.entries import KINDS


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props}


S, INT, B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NS, NI = {"type": "string", "nullable": True}, {"type": "integer", "nullable": True}
DT = {"type": "string", "format": "date-time"}
NDT = {"type": "string", "format": "date-time", "nullable": True}
DAY = {"type": "string", "format": "date"}
STRS = {"type": "array", "items": S}
KIND = {"type": "string", "enum": list(KINDS)}


def ref(name: str) -> dict:
    """A reference to components/schemas/``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _list(key: str, item: str) -> dict:
    return _obj([key], **{key: {"type": "array", "items": ref(item)}})


SCHEMAS = {
    "Error": _obj(["error"], error=S),
    "Team": _obj(
        ["id", "name", "timezone", "reminder_time", "digest_time", "workdays"],
        id=INT,
        name=S,
        timezone=S,
        reminder_time=S,
        digest_time=S,
        workdays=S,
    ),
    "Member": _obj(
        ["id", "team_id", "email", "name", "role", "timezone", "active"],
        id=INT,
        team_id=INT,
        email=S,
        name=S,
        role={"type": "string", "enum": list(ROLES)},
        timezone=NS,
        active=B,
    ),
    "Entry": _obj(
        ["id", "team_id", "member_id", "day", "text", "kind", "tags", "mentions", "inbound_id", "created_at"],
        id=INT,
        team_id=INT,
        member_id=INT,
        day=DAY,
        text=S,
        kind=KIND,
        tags=STRS,
        mentions=STRS,
        inbound_id=NI,
        created_at=DT,
    ),
    "EntryCreate": _obj(
        ["member_id", "text"],
        member_id=INT,
        text={"type": "string", "minLength": 1},
        kind=KIND,
        day=DAY,
    ),
    "EntryPatch": _obj(
        [],
        text={"type": "string", "minLength": 1},
        kind=KIND,
    ),
    "Event": _obj(
        ["id", "message_id", "kind", "from_state", "detail", "created_at"],
        id=INT,
        message_id=INT,
        kind=S,
        from_state=S,
        detail=S,
        created_at=DT,
    ),
    "InboundSummary": _obj(
        ["id", "provider", "state", "error", "from", "subject", "member_id", "received_at"],
        id=INT,
        provider=S,
        state=S,
        error=S,
        **{"from": S},
        subject=S,
        member_id=NI,
        received_at=NDT,
    ),
    "InboundPage": _obj(
        ["items", "next_before"],
        items={"type": "array", "items": ref("InboundSummary")},
        next_before=NI,
    ),
    "Inbound": _obj(
        [
            "id",
            "provider",
            "message_id",
            "from",
            "from_name",
            "to",
            "cc",
            "subject",
            "date",
            "text",
            "html",
            "reply_text",
            "attachments",
            "spf",
            "dkim",
            "state",
            "error",
            "notes",
            "member_id",
            "received_at",
            "entries",
        ],
        id=INT,
        provider=S,
        message_id=S,
        **{"from": S},
        from_name=S,
        to=STRS,
        cc=STRS,
        subject=S,
        date=NDT,
        text=NS,
        html=NS,
        reply_text=S,
        attachments={
            "type": "array",
            "items": _obj(["filename", "content_type", "size"], filename=S, content_type=S, size=INT),
        },
        spf=S,
        dkim=S,
        state=S,
        error=S,
        notes=STRS,
        member_id=NI,
        received_at=NDT,
        entries={
            "type": "array",
            "items": _obj(["id", "day", "kind", "text"], id=INT, day=DAY, kind=S, text=S),
        },
    ),
    "TimelineEvent": _obj(
        ["kind", "from_state", "detail", "at"],
        kind=S,
        from_state=NS,
        detail={"oneOf": [S, {"type": "object"}]},
        at=NDT,
    ),
    "Message": _obj(
        [
            "id",
            "idempotency_key",
            "kind",
            "team_id",
            "to",
            "subject",
            "message_id",
            "state",
            "attempts",
            "error",
            "sender",
            "provider_id",
            "created_at",
            "updated_at",
            "send_at",
            "sent_at",
            "next_attempt_at",
            "expires_at",
            "purged",
        ],
        id=INT,
        idempotency_key=S,
        kind=S,
        team_id=NI,
        to=S,
        subject=S,
        message_id=S,
        state=S,
        attempts=INT,
        error=NS,
        sender=NS,
        provider_id=NS,
        created_at=NDT,
        updated_at=NDT,
        send_at=NDT,
        sent_at=NDT,
        next_attempt_at=NDT,
        expires_at=NDT,
        purged=B,
        events={"type": "array", "items": ref("TimelineEvent")},
    ),
    "MessagePage": _obj(
        ["messages", "next_before"],
        messages={"type": "array", "items": ref("Message")},
        next_before=NI,
    ),
    "MessageSend": _obj(
        ["to", "subject"],
        to=S,
        subject=S,
        text=S,
        html=S,
        template=S,
        context={"type": "object"},
        send_at=DT,
        idempotency_key=S,
        batch_id=S,
        team_id=INT,
    ),
    "SendAccepted": _obj(
        ["id", "state", "send_at", "batch_id", "duplicate"],
        id=INT,
        state={"type": "string", "enum": ["scheduled", "queued"]},
        send_at=NDT,
        batch_id=NS,
        duplicate=B,
    ),
    "Cancelled": _obj(["id", "state"], id=INT, state=S),
    "BatchCancelled": _obj(
        ["batch_id", "cancelled", "already_cancelled", "not_cancelled"],
        batch_id=S,
        cancelled=INT,
        already_cancelled=INT,
        not_cancelled=INT,
    ),
}


def _resp(desc: str, schema: dict | None = None) -> dict:
    out = {"description": desc}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


ERR = ref("Error")
COMMON = {"400": _resp("bad input, with the reason", ERR), "401": _resp("no valid bearer token", ERR)}


def _op(summary: str, ok: dict, *, params=(), body: str | None = None, extra=()) -> dict:
    responses = dict(COMMON)
    responses.update(ok)
    for code in extra:
        responses[code] = _resp(
            {"404": "not found (or not in the token's reach)", "413": "body too large", "415": "not JSON"}[
                code
            ],
            ERR,
        )
    op = {"summary": summary, "parameters": list(params), "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
        responses.setdefault("413", _resp("body too large", ERR))
        responses.setdefault("415", _resp("not JSON", ERR))
    return op


def _path(name: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
        "example": 1,
    }


def _query(name: str, schema: dict, desc: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


ID = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, "at most 500")
NF = ("404",)

PATHS = {
    "/api/teams": {
        "get": _op("The teams the token reaches", {"200": _resp("teams", _list("teams", "Team"))})
    },
    "/api/teams/{team_id}": {
        "get": _op("One team", {"200": _resp("the team", ref("Team"))}, params=[_path("team_id")], extra=NF)
    },
    "/api/teams/{team_id}/members": {
        "get": _op(
            "The team's members",
            {"200": _resp("members", _list("members", "Member"))},
            params=[_path("team_id")],
            extra=NF,
        )
    },
    "/api/teams/{team_id}/entries": {
        "get": _op(
            "The team's entries, newest first",
            {"200": _resp("entries", _list("entries", "Entry"))},
            params=[
                _path("team_id"),
                _query("day", DAY, "only this day"),
                _query("member_id", ID, "only this member"),
                _query("q", S, "full-text search: every word must match"),
                LIMIT,
            ],
            extra=NF,
        ),
        "post": _op(
            "Add entries (one per line of text) for a member",
            {"201": _resp("the entries made", _list("entries", "Entry"))},
            params=[_path("team_id")],
            body="EntryCreate",
            extra=NF,
        ),
    },
    "/api/entries/{entry_id}": {
        "get": _op(
            "One entry", {"200": _resp("the entry", ref("Entry"))}, params=[_path("entry_id")], extra=NF
        ),
        "patch": _op(
            "Change an entry's text or kind",
            {"200": _resp("the entry", ref("Entry"))},
            params=[_path("entry_id")],
            body="EntryPatch",
            extra=NF,
        ),
        "delete": _op("Delete an entry", {"204": _resp("deleted")}, params=[_path("entry_id")], extra=NF),
    },
    "/api/events": {
        "get": _op(
            "Message events in id order; poll with after_id",
            {"200": _resp("events", _list("events", "Event"))},
            params=[_query("message_id", ID), _query("after_id", {"type": "integer", "minimum": 0}), LIMIT],
        )
    },
    "/api/inbound": {
        "get": _op(
            "Received mail, newest first, one page (next page: before=next_before)",
            {"200": _resp("inbound messages", ref("InboundPage"))},
            params=[_query("state", S), LIMIT, _query("before", ID)],
        )
    },
    "/api/inbound/{id}": {
        "get": _op(
            "One received message: normalized, its reply text and the entries it made",
            {"200": _resp("the message", ref("Inbound"))},
            params=[_path("id")],
            extra=NF,
        )
    },
    "/api/messages": {
        "get": _op(
            "Outbound messages, newest first, one page (next page: before=next_before)",
            {"200": _resp("messages", ref("MessagePage"))},
            params=[_query("state", S), LIMIT, _query("before", ID)],
        ),
        "post": _op(
            "Send a message (or schedule it with send_at); idempotent by idempotency_key",
            {
                "202": _resp("accepted", ref("SendAccepted")),
                "200": _resp("already accepted (same idempotency_key)", ref("SendAccepted")),
                "403": _resp("the token may not send for that team", ERR),
            },
            body="MessageSend",
        ),
    },
    "/api/messages/{id}": {
        "get": _op(
            "One message with its events timeline, oldest first",
            {"200": _resp("the message", ref("Message"))},
            params=[_path("id")],
            extra=NF,
        ),
        "delete": _op(
            "Cancel a message that is still scheduled",
            {"200": _resp("cancelled", ref("Cancelled")), "409": _resp("already queued or sent", ERR)},
            params=[_path("id")],
            extra=NF,
        ),
    },
    "/api/batches/{batch_id}": {
        "delete": _op(
            "Cancel every still-scheduled message of a batch",
            {"200": _resp("counts", ref("BatchCancelled"))},
            params=[{"name": "batch_id", "in": "path", "required": True, "schema": S}],
            extra=NF,
        )
    },
}


def document(base_url: str = "") -> dict:
    """The OpenAPI document served at /api/openapi.json."""
    paths = deepcopy(PATHS)
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "donebox API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if base_url:
        doc["servers"] = [{"url": base_url}]
    return doc
