"""A team's chat channels by API: added (checked), listed masked, test-posted through the outbox to a
local server standing in for the service, removed; another team's token reaches none of it."""

import pytest

from app.db import session
from app.models import Team, utcnow
from app.relay.api_tokens import create_token
from app.settings import get_settings
from jobs.broker import drain
from tests.app.relay.transports.webhook_server import WebhookServer


def token_for(team_id, scopes=("read", "manage")) -> dict:
    with session() as s:
        return {
            "Authorization": "Bearer " + create_token(s, "t", now=utcnow(), team_id=team_id, scopes=scopes)
        }


@pytest.fixture
def server(env):
    env.setenv("CHAT_ALLOW_LOCAL", "true")
    get_settings.cache_clear()
    s = WebhookServer().start()
    yield s
    s.stop()


def test_a_channel_is_added_listed_masked_test_posted_and_removed(server, client, team, sent):
    h = token_for(team.id)
    url = server.url("googlechat")
    r = client.post(
        f"/api/teams/{team.id}/chat", json={"service": "googlechat", "url": url, "label": "Eng"}, headers=h
    )
    assert r.status_code == 201
    channel = r.json()
    assert channel["service"] == "googlechat" and channel["label"] == "Eng" and url not in channel["url"]
    listed = client.get(f"/api/teams/{team.id}/chat", headers=h).json()["channels"]
    assert listed == [channel]

    r = client.post(f"/api/teams/{team.id}/chat/{channel['id']}/test", headers=h)
    assert r.status_code == 202
    drain()
    message = client.get(
        f"/api/messages/{r.json()['message_id']}", headers=token_for(team.id, ("read",))
    ).json()
    assert message["state"] == "sent" and message["to"] == f"chat:{channel['id']}"
    assert server.hits[0].json["cardsV2"][0]["card"]["header"]["title"] == "donebox: a test post for Rocket"

    assert client.delete(f"/api/teams/{team.id}/chat/{channel['id']}", headers=h).status_code == 204
    assert client.delete(f"/api/teams/{team.id}/chat/{channel['id']}", headers=h).status_code == 404
    assert client.get(f"/api/teams/{team.id}/chat", headers=h).json() == {"channels": []}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"service": "slack", "url": "https://example.com/services/x"}, "url: Slack webhooks live on"),
        (
            {"service": "slack", "url": "http://127.0.0.1/services/x"},
            "url: a webhook URL starts with https://",
        ),
        ({"service": "slack"}, "url is required"),
    ],
)
def test_a_refused_channel_is_a_400_naming_the_field(client, team, body, reason):
    r = client.post(f"/api/teams/{team.id}/chat", json=body, headers=token_for(team.id))
    assert r.status_code == 400 and r.json()["error"].startswith(reason)


def test_another_teams_token_and_a_read_token_change_nothing(client, team):
    with session() as s:
        other = Team(name="Other", created_at=utcnow())
        s.add(other)
        s.flush()
        other_id = other.id
    body = {"service": "slack", "url": "https://hooks.slack.com/services/T0/B0/x"}
    assert (
        client.post(f"/api/teams/{team.id}/chat", json=body, headers=token_for(other_id)).status_code == 404
    )
    assert (
        client.post(
            f"/api/teams/{team.id}/chat", json=body, headers=token_for(team.id, ("read",))
        ).status_code
        == 403
    )
    assert client.get(f"/api/teams/{team.id}/chat", headers=token_for(team.id)).json() == {"channels": []}


def test_blockers_is_a_boolean_off_unless_asked_for(client, team):
    h, url = token_for(team.id), "https://hooks.slack.com/services/T0/B0/x"
    r = client.post(f"/api/teams/{team.id}/chat", json={"service": "slack", "url": url}, headers=h)
    assert r.status_code == 201 and r.json()["blockers"] is False
    r = client.post(
        f"/api/teams/{team.id}/chat", json={"service": "slack", "url": url, "blockers": True}, headers=h
    )
    assert r.status_code == 201 and r.json()["blockers"] is True
    r = client.post(
        f"/api/teams/{team.id}/chat", json={"service": "slack", "url": url, "blockers": "yes"}, headers=h
    )
    assert r.status_code == 400 and "blockers" in r.json()["error"]
