import json
import re

import pytest
from sqlalchemy import select

from app.db import session
from app.models import Entry, Member, utcnow
from app.relay.api_tokens import create_token
from tests.app.web.test_routes import other_team


def token_for(team_id=None) -> dict:
    with session() as s:
        return {"Authorization": "Bearer " + create_token(s, "t", now=utcnow(), team_id=team_id)}


def mid(email):
    with session() as s:
        return s.execute(select(Member.id).where(Member.email == email)).scalar_one()


@pytest.fixture
def h(team):
    return token_for(team.id)


def test_without_a_valid_token_every_api_call_is_401(client, team):
    for path in ("/api/teams", f"/api/teams/{team.id}", "/api/events", "/api/entries/1"):
        for headers in ({}, {"Authorization": "Bearer dbx_nope"}, {"Authorization": "Basic x"}):
            r = client.get(path, headers=headers)
            assert r.status_code == 401 and "token" in r.json()["error"], (path, headers)
    assert client.get("/api/teams").headers["www-authenticate"] == "Bearer"


def test_a_team_token_reaches_its_team_only(client, team, h):
    foreign = other_team()
    assert [t["name"] for t in client.get("/api/teams", headers=h).json()["teams"]] == ["Rocket"]
    assert client.get(f"/api/teams/{team.id}", headers=h).json()["timezone"] == "Europe/Berlin"
    for path in (f"/api/teams/{foreign}", f"/api/teams/{foreign}/members", f"/api/teams/{foreign}/entries"):
        assert client.get(path, headers=h).status_code == 404
    body = {"member_id": mid("zed@other.example"), "text": "x"}
    assert client.post(f"/api/teams/{foreign}/entries", json=body, headers=h).status_code == 404


def test_an_instance_token_reaches_every_team(client, team):
    other_team()
    names = [t["name"] for t in client.get("/api/teams", headers=token_for()).json()["teams"]]
    assert names == ["Rocket", "Other"]


def test_members_are_listed(client, team, h):
    rows = client.get(f"/api/teams/{team.id}/members", headers=h).json()["members"]
    assert {m["email"]: m["role"] for m in rows} == {
        "ada@example.com": "admin",
        "bob@example.com": "member",
        "olga@example.com": "observer",
    }


def test_entries_crud(client, team, h):
    base = f"/api/teams/{team.id}/entries"
    r = client.post(
        base,
        json={"member_id": mid("bob@example.com"), "text": "shipped #api for @ada", "day": "2026-11-20"},
        headers=h,
    )
    assert r.status_code == 201
    (e,) = r.json()["entries"]
    assert (e["text"], e["kind"], e["tags"], e["mentions"], e["day"]) == (
        "shipped #api for @ada",
        "done",
        ["api"],
        ["ada"],
        "2026-11-20",
    )
    assert client.get(f"/api/entries/{e['id']}", headers=h).json() == {**e, "comments": []}
    assert [x["id"] for x in client.get(base, headers=h, params={"day": "2026-11-20"}).json()["entries"]] == [
        e["id"]
    ]
    assert client.get(base, headers=h, params={"day": "2026-11-21"}).json()["entries"] == []
    assert [x["id"] for x in client.get(base, headers=h, params={"q": "shipped"}).json()["entries"]] == [
        e["id"]
    ]
    p = client.patch(f"/api/entries/{e['id']}", json={"kind": "blocker", "text": "stuck on #dns"}, headers=h)
    assert p.status_code == 200 and p.json()["kind"] == "blocker" and p.json()["tags"] == ["dns"]
    assert client.delete(f"/api/entries/{e['id']}", headers=h).status_code == 204
    assert client.get(f"/api/entries/{e['id']}", headers=h).status_code == 404


def test_bad_entry_input_is_a_400_or_415_with_a_reason_and_stores_nothing(client, team, h):
    base = f"/api/teams/{team.id}/entries"
    bob = mid("bob@example.com")
    for body, reason in (
        ({"text": "x"}, "member_id"),
        ({"member_id": "1", "text": "x"}, "member_id"),
        ({"member_id": 999999, "text": "x"}, "member"),
        ({"member_id": bob}, "text"),
        ({"member_id": bob, "text": "   "}, "empty"),
        ({"member_id": bob, "text": "x", "kind": "brag"}, "kind"),
        ({"member_id": bob, "text": "x", "day": "tomorrow"}, "day"),
        ({"member_id": bob, "text": "x" * 3000}, "longer"),
    ):
        r = client.post(base, json=body, headers=h)
        assert r.status_code == 400 and reason in r.json()["error"], (body, r.text)
    assert (
        client.post(base, content=b"[1]", headers={**h, "Content-Type": "application/json"}).status_code
        == 400
    )
    assert (
        client.post(base, content=b"{nope", headers={**h, "Content-Type": "application/json"}).status_code
        == 400
    )
    assert (
        client.post(base, content=b"text=x", headers={**h, "Content-Type": "text/plain"}).status_code == 415
    )
    assert client.get(base, headers=h, params={"member_id": "abc"}).status_code == 400
    assert client.get(base, headers=h, params={"limit": "0"}).status_code == 400
    with session() as s:
        assert s.execute(select(Entry)).first() is None


def test_events_follow_a_messages_states(client, team, sent):
    from tests.app.web.pages.test_mail import remind_everyone

    ids = remind_everyone()
    h = token_for(team.id)
    evs = client.get("/api/events", headers=h, params={"message_id": ids[0]}).json()["events"]
    assert [e["kind"] for e in evs] == ["queued", "sending", "sent"]
    later = client.get("/api/events", headers=h, params={"after_id": evs[0]["id"]}).json()["events"]
    assert all(e["id"] > evs[0]["id"] for e in later)
    foreign = other_team()
    assert client.get("/api/events", headers=token_for(foreign)).json()["events"] == []


def _routes():
    from app.web.routes import routes

    out = {}
    for r in routes:
        if r.path.startswith("/api/") and r.path != "/api/openapi.json":
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)
            out.setdefault(path, set()).update(m.lower() for m in r.methods - {"HEAD"})
    return out


def test_every_api_route_is_documented_and_every_documented_operation_is_routed():
    from app.web.api.openapi import PATHS

    routed = _routes()
    implemented = {p: set(ops) for p, ops in PATHS.items()}
    for path, methods in routed.items():
        documented = set(PATHS.get(path, {}))
        assert methods <= documented, f"{path}: {methods - documented} not in openapi.PATHS"
    for path, methods in implemented.items():
        assert methods <= routed.get(path, set()), (
            f"{path} {methods} documented as implemented but not routed"
        )


def test_every_documented_path_parameter_is_the_routes_own():
    from app.web.api.openapi import PATHS
    from app.web.routes import routes

    for r in routes:
        if r.path.startswith("/api/") and r.path != "/api/openapi.json":
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)
            for method in r.methods - {"HEAD"}:
                op = PATHS[path][method.lower()]
                documented = {p["name"] for p in op["parameters"] if p["in"] == "path"}
                assert documented == set(r.param_convertors), (path, method)


def test_every_api_route_without_a_live_token_is_the_same_401(client, team):
    from app.web.common import no_api_token
    from app.web.routes import routes

    expected = json.loads(no_api_token().body)
    for r in routes:
        if not r.path.startswith("/api/") or r.path == "/api/openapi.json":
            continue
        url = re.sub(r"\{\w+:\w+\}", "1", r.path)
        for method in r.methods - {"HEAD"}:
            for headers in ({}, {"Authorization": "Bearer dbx_nope"}):
                res = client.request(method, url, headers=headers, json={})
                assert res.status_code == 401 and res.json() == expected, (method, url, headers)
                assert res.headers["www-authenticate"] == "Bearer"


def test_the_openapi_document_is_served(client):
    doc = client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/teams/{team_id}/entries" in doc["paths"]
