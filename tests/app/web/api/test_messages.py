from datetime import timedelta

from app.db import session
from app.models import OutboundMessage, Team
from app.relay.api_tokens import create_token
from app.relay.pipeline import deliver
from app.relay.retention import purge
from app.relay.transports.memory import MemoryTransport
from tests.app.relay.test_pipeline import reminder_for
from tests.conftest import FIXED_NOW


def token(team_id=None) -> dict:
    with session() as s:
        return {"Authorization": f"Bearer {create_token(s, 'test', now=FIXED_NOW, team_id=team_id)}"}


def other_team_message() -> int:
    from app.relay import outbox

    with session() as s:
        t = Team(name="Other")
        s.add(t)
        s.flush()
        mid, _ = outbox.create(
            s,
            now=FIXED_NOW,
            idempotency_key="other:1",
            kind="api",
            team_id=t.id,
            to_addr="x@example.com",
            subject="Other",
            template="reminder",
            message_id=outbox.new_message_id("mail.test"),
        )
    return mid


def test_a_message_with_its_events_timeline(client, team):
    mid = reminder_for()
    deliver(mid, transport=MemoryTransport(), now=FIXED_NOW)
    r = client.get(f"/api/messages/{mid}", headers=token())
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "sent" and body["to"] == "ada@example.com" and body["attempts"] == 1
    assert [(e["kind"], e["from_state"]) for e in body["events"]] == [
        ("queued", None),
        ("sending", "queued"),
        ("sent", "sending"),
    ]


def test_listing_by_state_pages_newest_first(client, team):
    sent = reminder_for()
    deliver(sent, transport=MemoryTransport(), now=FIXED_NOW)
    queued = [reminder_for("bob@example.com")]
    r = client.get("/api/messages?state=queued", headers=token())
    assert [m["id"] for m in r.json()["messages"]] == queued
    r = client.get("/api/messages?limit=1", headers=token())
    page = r.json()
    assert len(page["messages"]) == 1 and page["next_before"] == page["messages"][0]["id"]
    r = client.get(f"/api/messages?limit=1&before={page['next_before']}", headers=token())
    assert r.json()["messages"][0]["id"] < page["next_before"]


def test_a_team_token_sees_only_its_team(client, team):
    mine, theirs = reminder_for(), other_team_message()
    headers = token(team.id)
    assert client.get(f"/api/messages/{mine}", headers=headers).status_code == 200
    assert client.get(f"/api/messages/{theirs}", headers=headers).status_code == 404
    ids = [m["id"] for m in client.get("/api/messages", headers=headers).json()["messages"]]
    assert ids == [mine]
    assert len(client.get("/api/messages", headers=token()).json()["messages"]) == 2


def test_bad_requests_get_clear_errors(client, team):
    assert client.get("/api/messages").status_code == 401
    assert client.get("/api/messages", headers={"Authorization": "Bearer dbx_nope"}).status_code == 401
    h = token()
    for url, words in [
        ("/api/messages?state=lost", "state must be one of"),
        ("/api/messages?limit=0", "limit must be"),
        ("/api/messages?before=x", "before must be"),
        ("/api/messages/abc", "positive integer"),
    ]:
        r = client.get(url, headers=h)
        assert r.status_code == 400 and words in r.json()["error"]
    assert client.get("/api/messages/424242", headers=h).status_code == 404
    assert client.post("/api/messages/1", headers=h).status_code == 405


def test_retention_purges_content_but_keeps_metadata_and_events(client, team):
    mid = reminder_for()
    deliver(mid, transport=MemoryTransport(), now=FIXED_NOW)
    with session() as s:
        assert purge(s, now=FIXED_NOW + timedelta(days=44), days=45) == 0
        assert purge(s, now=FIXED_NOW + timedelta(days=46), days=45) == 1
        assert purge(s, now=FIXED_NOW + timedelta(days=47), days=45) == 0
        m = s.get(OutboundMessage, mid)
        assert (m.context, m.provider_response, m.links) == ("{}", "", "")
    body = client.get(f"/api/messages/{mid}", headers=token()).json()
    assert body["purged"] and body["state"] == "sent" and body["subject"] and len(body["events"]) == 3


def test_a_message_still_to_be_sent_is_never_purged(client, team):
    mid = reminder_for()
    with session() as s:
        assert purge(s, now=FIXED_NOW + timedelta(days=100), days=45) == 0
        assert s.get(OutboundMessage, mid).context != "{}"
