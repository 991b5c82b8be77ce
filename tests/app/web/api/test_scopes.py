"""Token scopes: each /api/ endpoint needs one (send, read, manage); a token without it gets 403 naming it."""

import pytest
from sqlalchemy import func, select
from starlette.routing import Route

from app.db import session
from app.models import ApiToken, OutboundMessage, utcnow
from app.relay.api_tokens import SCOPES, create_token
from app.web.api.openapi import document
from app.web.routes import routes


def make(team_id=None, *scopes) -> str:
    with session() as s:
        return create_token(s, "app", now=utcnow(), team_id=team_id, scopes=scopes or SCOPES)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def outbox_count() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(OutboundMessage)).scalar_one()


SEND = {"to": "ann@example.com", "subject": "Hello", "text": "words"}


def test_a_read_only_token_gets_403_naming_send_on_post_messages_and_nothing_is_queued(client, team):
    r = client.post("/api/messages", json=SEND, headers=auth(make(team.id, "read")))
    assert r.status_code == 403 and "'send' scope" in r.json()["error"]
    assert outbox_count() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/api/teams",
        "/api/teams/{tid}",
        "/api/teams/{tid}/settings",
        "/api/messages",
        "/api/events",
        "/api/inbound",
    ],
)
def test_a_send_only_token_gets_403_naming_read_on_gets(client, team, path):
    r = client.get(path.format(tid=team.id), headers=auth(make(team.id, "send")))
    assert r.status_code == 403 and "'read' scope" in r.json()["error"]


def test_a_send_only_token_sends_and_a_read_only_token_reads(client, team):
    r = client.post("/api/messages", json=SEND, headers=auth(make(team.id, "send")))
    assert r.status_code == 202
    r = client.get("/api/messages", headers=auth(make(team.id, "read")))
    assert r.status_code == 200 and [m["to"] for m in r.json()["messages"]] == ["ann@example.com"]


def test_changing_settings_and_entries_needs_manage(client, team):
    narrow = auth(make(team.id, "send", "read"))
    r = client.patch(f"/api/teams/{team.id}/settings", json={"name": "Renamed"}, headers=narrow)
    assert r.status_code == 403 and "'manage' scope" in r.json()["error"]
    r = client.post(f"/api/teams/{team.id}/entries", json={"member_id": 1, "text": "x"}, headers=narrow)
    assert r.status_code == 403 and "'manage' scope" in r.json()["error"]
    r = client.patch(f"/api/teams/{team.id}/settings", json={"name": "Renamed"}, headers=auth(make(team.id)))
    assert r.status_code == 200 and r.json()["name"] == "Renamed"


def test_a_token_has_every_scope_unless_told_otherwise(db):
    with session() as s:
        create_token(s, "old style", now=utcnow())
        assert s.execute(select(ApiToken.scopes)).scalar_one().split() == list(SCOPES)


def test_a_token_cannot_be_made_without_a_known_scope(db):
    with session() as s, pytest.raises(ValueError, match="send, read, manage"):
        create_token(s, "nothing", now=utcnow(), scopes=("admin",))


def test_every_api_route_needs_a_scope_and_the_openapi_document_names_it():
    paths = document()["paths"]
    seen = 0
    for route in routes:
        if not isinstance(route, Route) or not route.path.startswith("/api/") or route.path.endswith(".json"):
            continue
        scope = route.endpoint.scope
        assert scope in SCOPES
        path = route.path.replace(":int", "").replace(":str", "")
        for method in route.methods - {"HEAD"}:
            op = paths[path][method.lower()]
            assert op["x-scopes"] == [scope] and f"`{scope}` scope" in op["description"], (path, method)
            assert (scope == "read") == (method == "GET"), (path, method)
            seen += 1
    assert seen >= 19
    assert paths["/api/messages"]["post"]["x-scopes"] == ["send"]
    assert paths["/api/teams/{team_id}/settings"]["patch"]["x-scopes"] == ["manage"]
