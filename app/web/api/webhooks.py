"""/api/webhooks: a team's webhook endpoints by API token: list (``read`` scope), add and remove
(``manage``).

Thin endpoints over app.relay.webhooks. A team's token reaches its own team's endpoints; a token
of every team gives ``team_id``. The secret is in the answer to the POST that creates an endpoint,
and never again.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import JSONResponse

from app.errors import RequestError
from app.models import Team, WebhookEndpoint, id_in_range, utcnow
from app.relay import webhooks
from app.web.api.base import ApiError, IntQuery, api
from app.web.api.shapes import DATE_TIME, INT, STR, STRINGS, WORDS, Field, Shape, listing, one_of

_FIELDS = (
    Field("id", INT),
    Field("team_id", INT),
    Field("url", STR),
    Field(
        "kinds",
        one_of(WORDS, webhooks.KINDS),
        description=f"the event kinds it gets: {', '.join(webhooks.KINDS)}",
    ),
    Field("description", STR),
    Field("created_at", DATE_TIME),
)
WEBHOOK = Shape("Webhook", _FIELDS)
WEBHOOK_CREATED = Shape(
    "WebhookCreated",
    (
        *_FIELDS,
        Field("secret", STR, description="signs every POST (Donebox-Signature); shown this once"),
    ),
)
WEBHOOK_LIST = listing("WebhookList", "items", WEBHOOK)
WEBHOOK_ADD = Shape(
    "WebhookAdd",
    (
        Field("url", STR, description="https:// (http:// outside production); not a private address"),
        Field("kinds", STRINGS, description=f"one or more of {', '.join(webhooks.KINDS)}"),
        Field("description", STR, required=False, default=""),
        Field("team_id", INT, required=False, description="whose endpoint (all-team tokens only)"),
    ),
)
WEBHOOK_REMOVED = Shape("WebhookRemoved", (Field("id", INT), Field("removed", INT, description="1")))
TEAM_Q = IntQuery("team_id", description="only this team's endpoints")


def _team(s, token, team_id: int | None) -> int:
    """The team an endpoint is for; ApiError names a team the token does not reach."""
    if team_id is None:
        if token.team_id is None:
            raise ApiError(400, "team_id is required with a token of every team")
        return token.team_id
    if (token.team_id is not None and team_id != token.team_id) or s.get(Team, team_id) is None:
        raise ApiError(404, f"team_id: no team {team_id}")
    return team_id


@api(scope="read")
def list_webhooks(request, s, token, body):
    """GET /api/webhooks?team_id=: the endpoints in the token's reach (without their secrets)."""
    team_id = TEAM_Q.read(request)
    if team_id is not None:
        rows = webhooks.endpoints(s, _team(s, token, team_id))
    elif token.team_id is not None:
        rows = webhooks.endpoints(s, token.team_id)
    else:
        rows = list(s.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).scalars())
    return WEBHOOK_LIST.dump({"items": rows})


@api(body=True)
def add_webhook(request, s, token, body):
    """POST /api/webhooks: a new endpoint; 201 with it and its secret (shown once)."""
    data = WEBHOOK_ADD.load(body)
    team_id = _team(s, token, data.get("team_id"))
    try:
        e = webhooks.add(
            s,
            team_id,
            data["url"],
            data["kinds"],
            now=utcnow(),
            settings=request.app.state.settings,
            description=data.get("description", ""),
        )
    except RequestError as err:
        raise ApiError(err.status, str(err)) from None
    return JSONResponse(WEBHOOK_CREATED.dump(e), status_code=201)


@api()
def remove_webhook(request, s, token, body):
    """DELETE /api/webhooks/{id}: remove the endpoint (its pending deliveries fail; the log stays)."""
    eid = request.path_params["endpoint_id"]
    e = s.get(WebhookEndpoint, eid) if id_in_range(eid) else None
    if e is None or (token.team_id is not None and e.team_id != token.team_id):
        raise ApiError(404, f"id: no webhook endpoint {eid}")
    webhooks.remove(s, e.team_id, e.id, now=utcnow())
    return WEBHOOK_REMOVED.dump({"id": eid, "removed": 1})
