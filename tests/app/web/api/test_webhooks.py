"""/api/webhooks: add (the secret once), list, remove, what a team's token reaches, refused fields."""

import pytest

from app.db import session
from app.models import Team
from app.relay import api_tokens
from app.settings import get_settings
from tests.app.web.api.test_messages import token
from tests.conftest import FIXED_NOW


@pytest.fixture
def allow_loopback(env):
    env.setenv("WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()


def test_an_endpoint_is_added_with_its_secret_once_listed_without_it_and_removed(
    allow_loopback, client, team
):
    h = token(team.id)
    r = client.post(
        "/api/webhooks",
        json={
            "url": "http://127.0.0.1:9/hook",
            "kinds": ["delivered", "entry_created"],
            "description": "CRM",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["secret"].startswith("whsec_") and made["kinds"] == ["delivered", "entry_created"]
    assert (made["team_id"], made["url"], made["description"]) == (team.id, "http://127.0.0.1:9/hook", "CRM")
    listed = client.get("/api/webhooks", headers=h).json()["items"]
    assert [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    r = client.delete(f"/api/webhooks/{made['id']}", headers=h)
    assert r.status_code == 200 and r.json() == {"id": made["id"], "removed": 1}
    assert client.get("/api/webhooks", headers=h).json()["items"] == []
    assert client.delete(f"/api/webhooks/{made['id']}", headers=h).status_code == 404


def test_refused_fields_are_named(client, team):
    h = token(team.id)

    def refused(body):
        r = client.post("/api/webhooks", json=body, headers=h)
        return r.status_code, r.json()["error"]

    assert refused({"kinds": ["sent"]}) == (400, "url is required")
    assert refused({"url": "ftp://example.org/x", "kinds": ["sent"]}) == (
        422,
        "url must be an http:// or https:// URL",
    )
    status, why = refused({"url": "http://127.0.0.1:9/x", "kinds": ["sent"]})
    assert status == 422 and "loopback, private or reserved" in why  # WEBHOOK_ALLOW_PRIVATE is off
    status, why = refused({"url": "http://127.0.0.1:9/x", "kinds": ["sent", "teleported"]})
    assert status == 422 and why.startswith("kinds: unknown teleported")
    status, why = refused({"url": "http://127.0.0.1:9/x", "kinds": "sent"})
    assert status == 400 and "kinds" in why  # not a list: refused as the request shape, like a missing url


def test_a_team_token_reaches_only_its_team_and_changes_need_the_manage_scope(allow_loopback, client, team):
    with session() as s:
        other = Team(name="Other")
        s.add(other)
        s.flush()
        other_id = other.id
    body = {"url": "http://127.0.0.1:9/x", "kinds": ["sent"]}
    theirs = client.post("/api/webhooks", json={**body, "team_id": other_id}, headers=token()).json()
    mine = token(team.id)
    assert client.post("/api/webhooks", json={**body, "team_id": other_id}, headers=mine).status_code == 404
    assert client.get(f"/api/webhooks?team_id={other_id}", headers=mine).status_code == 404
    assert client.get("/api/webhooks", headers=mine).json()["items"] == []
    assert client.delete(f"/api/webhooks/{theirs['id']}", headers=mine).status_code == 404
    assert client.post("/api/webhooks", json=body, headers=token()).json()["error"].startswith("team_id")
    with session() as s:
        raw = api_tokens.create_token(s, "reader", now=FIXED_NOW, team_id=team.id, scopes=("read",))
    reader = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/webhooks", headers=reader).status_code == 200  # listing shows no secret
    r = client.post("/api/webhooks", json=body, headers=reader)
    assert r.status_code == 403 and "manage" in r.json()["error"]
