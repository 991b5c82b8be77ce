"""POST /api/messages/{id}/redrive and POST /api/messages/redrive."""

from collections import Counter

from app.db import session
from app.models import utcnow
from app.relay import suppressions
from jobs.broker import drain
from tests.app.relay.test_redrive import fail, make, states, team_ids
from tests.app.web.api.test_messages import token


def test_one_failed_message_is_sent_again_and_a_sent_one_is_a_409(client, sent):
    [mid] = make(1)
    fail([mid])
    headers = token()
    r = client.post(f"/api/messages/{mid}/redrive", headers=headers)
    assert r.status_code == 200 and r.json() == {"id": mid, "state": "queued"}
    drain()
    assert states([mid]) == {"sent": 1} and len(sent) == 1
    events = client.get(f"/api/messages/{mid}", headers=headers).json()["events"]
    assert [e["kind"] for e in events][-3:] == ["queued", "sending", "sent"]
    assert events[-3]["from_state"] == "failed" and "sent again by API token 'test'" in events[-3]["detail"]
    again = client.post(f"/api/messages/{mid}/redrive", headers=headers)
    assert again.status_code == 409 and "it is sent" in again.json()["error"]
    assert client.post("/api/messages/424242/redrive", headers=headers).status_code == 404
    assert client.post(f"/api/messages/{mid}/redrive").status_code == 401


def test_a_still_suppressed_recipient_is_a_409_with_the_reason(client):
    [mid] = make(1)
    fail([mid])
    with session() as s:
        suppressions.add(s, "m0@example.com", "bounce", now=utcnow())
    r = client.post(f"/api/messages/{mid}/redrive", headers=token())
    assert r.status_code == 409 and "m0@example.com is still suppressed (bounce)" in r.json()["error"]
    assert states([mid]) == {"failed": 1}


def test_another_teams_token_gets_a_404_and_its_bulk_redrive_touches_nothing_else(client, sent):
    mine_team, their_team = team_ids("Mine", "Theirs")
    mine, theirs = make(3, team_id=mine_team, prefix="a"), make(2, team_id=their_team, prefix="b")
    fail(mine + theirs)
    theirs_token = token(their_team)
    assert client.post(f"/api/messages/{mine[0]}/redrive", headers=theirs_token).status_code == 404
    r = client.post("/api/messages/redrive", json={}, headers=theirs_token)
    assert r.status_code == 200 and r.json()["redriven"] == 2
    r = client.post("/api/messages/redrive", json={"team_id": mine_team}, headers=theirs_token)
    assert r.json()["redriven"] == 0
    drain()
    assert states(mine) == {"failed": 3} and states(theirs) == {"sent": 2}


def test_a_bulk_redrive_by_filter_counts_and_says_why_it_skipped(client, sent):
    ids = make(4, prefix="x") + make(2, prefix="y", domain="other.test")
    fail(ids)
    with session() as s:
        suppressions.add(s, "x3@example.com", "manual", now=utcnow())
    h = token()
    dry = client.post(
        "/api/messages/redrive", json={"domain": "example.com", "dry_run": True}, headers=h
    ).json()
    assert dry == {
        "redriven": 3,
        "skipped": 1,
        "skipped_examples": [{"id": ids[3], "reason": "x3@example.com is still suppressed (manual)"}],
        "dry_run": True,
    }
    assert states(ids) == {"failed": 6}
    body = {"domain": "example.com", "state": "failed", "since": "2000-01-01T00:00:00Z"}
    r = client.post("/api/messages/redrive", json=body, headers=h)
    assert r.status_code == 200 and r.json()["redriven"] == 3
    drain()
    assert states(ids[:3]) == {"sent": 3} and states(ids[3:]) == {"failed": 3}
    assert Counter(m["To"] for m in sent) == {f"x{i}@example.com": 1 for i in range(3)}
    again = client.post("/api/messages/redrive", json=body, headers=h).json()
    assert again["redriven"] == 0 and again["skipped"] == 1


def test_bad_redrive_filters_get_the_reason(client):
    h = token()
    for body, status, words in [
        ({"domian": "example.com"}, 400, "unknown filter field: domian"),
        ({"state": "sent"}, 400, "state must be one of failed, deferred, suppressed"),
        ({"since": "2026-11-23T10:00:00"}, 400, "since needs a UTC offset"),
        ({"until": "yesterday"}, 400, "until is not an ISO 8601 date-time"),
        ({"ids": 5}, 400, "ids must be message ids"),
        ({"ids": [0]}, 400, "ids must be message ids"),
        ({"time": "sent"}, 400, "time must be one of created, updated"),
        ({"dry_run": "yes"}, 400, "dry_run must be true or false"),
        ({"team_id": "1"}, 400, "team_id must be an integer"),
        ({"team_id": 2**63}, 400, "team_id must be an integer from 1 to"),
        ({"domain": "x" * 300}, 400, "domain is longer than 255 characters"),
    ]:
        r = client.post("/api/messages/redrive", json=body, headers=h)
        assert (r.status_code, words in r.json()["error"]) == (status, True), (body, r.text)
