"""A team's chat channels: GET and POST /api/teams/{team_id}/chat, DELETE and POST .../{id}/test,
through app.checkins.chat (as the Chat settings page and ``donebox team-chat``). Webhook URLs
are accepted, never given back: answers show them masked."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from app.checkins import chat
from app.checkins.teams import TeamError
from app.models import utcnow
from app.relay.chat import SERVICES
from app.web.api.base import ApiError, api
from app.web.api.shapes import BOOL, DATE_TIME, INT, STR, Field, Shape, listing, one_of
from app.web.api.teams import find_team
from jobs.enqueue import enqueue_deliveries

CHAT_CHANNEL = Shape(
    "ChatChannel",
    (
        Field("id", INT),
        Field("service", one_of(STR, tuple(SERVICES))),
        Field("label", STR, description="what the team calls the channel"),
        Field("url", STR, description="the webhook URL, masked: only its host and last four characters"),
        Field("blockers", BOOL, description="each new blocker entry is posted too, as it is written"),
        Field("created_at", DATE_TIME),
    ),
)
CHAT_CHANNEL_LIST = listing("ChatChannelList", "channels", CHAT_CHANNEL)
CHAT_CHANNEL_ADD = Shape(
    "ChatChannelAdd",
    (
        Field("service", one_of(STR, tuple(SERVICES))),
        Field("url", STR, description="the incoming webhook URL the service made (https, on its hosts)"),
        Field("label", STR, required=False, default="", description="e.g. #standup"),
        Field("blockers", BOOL, required=False, description="also post each new blocker (default false)"),
    ),
)
TEST_POST = Shape("ChatTestPost", (Field("message_id", INT, description="the test post's outbox message"),))


@api(scope="read")
def channels(request, s, token, body):
    """GET /api/teams/{team_id}/chat: the channels the team's digest is posted to."""
    t = find_team(s, token, request.path_params["team_id"])
    return CHAT_CHANNEL_LIST.dump({"channels": [chat.describe(d) for d in chat.destinations(s, t.id)]})


@api(scope="manage", body=True, max_bytes=16 * 1024)
def channel_add(request, s, token, body):
    """POST /api/teams/{team_id}/chat {service, url, label}: 201 with the channel; 400 names the
    refused field."""
    t = find_team(s, token, request.path_params["team_id"])
    got = CHAT_CHANNEL_ADD.load(body)
    try:
        dest = chat.add_destination(
            s,
            t.id,
            got["service"],
            got["url"],
            label=got["label"],
            blockers=got.get("blockers", False),
            now=utcnow(),
            settings=request.app.state.settings,
        )
    except TeamError as e:
        raise ApiError(400, f"{e.field}: {e}" if e.field else str(e)) from None
    return JSONResponse(CHAT_CHANNEL.dump(chat.describe(dest)), status_code=201)


@api(scope="manage")
def channel_remove(request, s, token, body):
    """DELETE /api/teams/{team_id}/chat/{channel_id}: 204; posts not yet sent there fail."""
    t = find_team(s, token, request.path_params["team_id"])
    try:
        chat.remove_destination(s, t.id, request.path_params["channel_id"])
    except TeamError:
        raise ApiError(404, "no such chat channel") from None
    return Response(status_code=204)


@api(scope="manage")
def channel_test(request, s, token, body):
    """POST /api/teams/{team_id}/chat/{channel_id}/test: 202 with the test post's outbox message id
    (its state and timeline: GET /api/messages/{id})."""
    t = find_team(s, token, request.path_params["team_id"])
    try:
        mid = chat.send_test_post(
            s, t, request.path_params["channel_id"], now=utcnow(), settings=request.app.state.settings
        )
    except TeamError:
        raise ApiError(404, "no such chat channel") from None
    s.commit()  # a worker must find the row its id names
    enqueue_deliveries([mid])
    return JSONResponse(TEST_POST.dump({"message_id": mid}), status_code=202)
