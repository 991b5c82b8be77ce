"""Scheduled sends by API: create, send later, idempotency, cancel one or a batch, clear 4xx."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import session
from app.models import OutboundMessage, Team, utcnow
from app.relay.api_tokens import create_token
from app.relay.outbox import events
from app.settings import ROOT, get_settings
from jobs.broker import drain
from jobs.scheduler import tick


@pytest.fixture
def token(client):
    with session() as s:
        return create_token(s, "test", now=utcnow())


@pytest.fixture
def teams(client):
    """Two teams and a token limited to the first: (team_a, team_b, token_a)."""
    with session() as s:
        a, b = Team(name="A"), Team(name="B")
        s.add_all([a, b])
        s.flush()
        return a.id, b.id, create_token(s, "team a", now=utcnow(), team_id=a.id)


def post(client, token, **body):
    return client.post("/api/messages", json=body, headers={"Authorization": f"Bearer {token}"})


def delete(client, token, path):
    return client.delete(path, headers={"Authorization": f"Bearer {token}"})


def state(mid) -> str:
    with session() as s:
        return s.get(OutboundMessage, mid).state


def test_a_message_without_send_at_is_queued_and_delivered_with_its_content(client, token, sent):
    r = post(
        client,
        token,
        to="ann@example.com",
        subject="Hello",
        text="Plain words",
        html="<p>Rich <b>words</b></p>",
    )
    assert r.status_code == 202 and r.json()["state"] == "queued"
    drain()
    assert state(r.json()["id"]) == "sent"
    msg = sent[0]
    assert msg["To"] == "ann@example.com" and msg["Subject"] == "Hello"
    assert msg.get_body(("plain",)).get_content().strip() == "Plain words"
    assert "<p>Rich <b>words</b></p>" in msg.get_body(("html",)).get_content()


def test_html_only_gets_a_text_part_and_text_only_an_escaped_html_part(client, token, sent):
    post(client, token, to="ann@example.com", subject="A", html="<h1>Title</h1><p>Body</p>")
    post(client, token, to="bob@example.com", subject="B", text="1 < 2 & <b>not bold</b>")
    drain()
    by_to = {m["To"]: m for m in sent}
    assert "Title" in by_to["ann@example.com"].get_body(("plain",)).get_content()
    html = by_to["bob@example.com"].get_body(("html",)).get_content()
    assert "1 &lt; 2 &amp; &lt;b&gt;not bold&lt;/b&gt;" in html


def test_a_message_with_send_at_waits_for_the_tick_that_reaches_it(client, token, sent):
    # real clock (the in-process worker leases with it): due in a second
    when = utcnow() + timedelta(seconds=1)
    r = post(client, token, to="ann@example.com", subject="Later", text="x", send_at=when.isoformat())
    body = r.json()
    assert r.status_code == 202 and body["state"] == "scheduled"
    assert body["id"] not in tick(now=utcnow(), settings=get_settings())["swept"]
    assert state(body["id"]) == "scheduled"
    time.sleep(max(0.0, (when - utcnow()).total_seconds()) + 0.05)
    assert body["id"] in tick(now=utcnow(), settings=get_settings())["swept"]
    drain()
    assert state(body["id"]) == "sent" and [m["Subject"] for m in sent] == ["Later"]
    with session() as s:
        kinds = [(e.from_state, e.kind) for e in events(s, body["id"])]
    assert kinds[:2] == [("", "scheduled"), ("scheduled", "queued")]


def test_the_same_idempotency_key_makes_one_message(client, token, sent):
    first = post(client, token, to="ann@example.com", subject="Once", text="x", idempotency_key="order-42")
    again = post(client, token, to="ann@example.com", subject="Once", text="x", idempotency_key="order-42")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    drain()
    assert len(sent) == 1


def test_cancel_stops_a_scheduled_message_and_refuses_a_queued_one(client, token, sent):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    mid = post(client, token, to="ann@example.com", subject="S", text="x", send_at=later).json()["id"]
    r = delete(client, token, f"/api/messages/{mid}")
    assert r.status_code == 200 and r.json() == {"id": mid, "state": "cancelled"}
    assert delete(client, token, f"/api/messages/{mid}").status_code == 200  # idempotent
    tick(now=utcnow() + timedelta(hours=2), settings=get_settings())
    drain()
    assert state(mid) == "cancelled" and sent == []
    now_id = post(client, token, to="ann@example.com", subject="N", text="x").json()["id"]
    drain()
    r = delete(client, token, f"/api/messages/{now_id}")
    assert r.status_code == 409 and "only scheduled" in r.json()["error"]
    assert delete(client, token, "/api/messages/999999").status_code == 404


def test_cancelling_a_batch_cancels_what_is_still_scheduled(client, token, sent):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    ids = [
        post(
            client, token, to=f"u{i}@example.com", subject="B", text="x", send_at=later, batch_id="nl-7"
        ).json()
        for i in range(3)
    ]
    post(client, token, to="now@example.com", subject="B", text="x", batch_id="nl-7")
    drain()
    r = delete(client, token, "/api/batches/nl-7")
    assert r.status_code == 200
    assert r.json() == {"batch_id": "nl-7", "cancelled": 3, "already_cancelled": 0, "not_cancelled": 1}
    assert all(state(i["id"]) == "cancelled" for i in ids)
    assert delete(client, token, "/api/batches/nope").status_code == 404
    assert [m["To"] for m in sent] == ["now@example.com"]


def test_a_team_token_sends_and_cancels_only_for_its_team(client, teams, token, sent):
    a, b, token_a = teams
    r = post(client, token_a, to="ann@example.com", subject="S", text="x", team_id=b)
    assert r.status_code == 403
    later = (utcnow() + timedelta(hours=1)).isoformat()
    other = post(client, token, to="x@example.com", subject="S", text="x", team_id=b, send_at=later).json()[
        "id"
    ]
    assert delete(client, token_a, f"/api/messages/{other}").status_code == 404
    mine = post(client, token_a, to="y@example.com", subject="S", text="x", send_at=later).json()["id"]
    with session() as s:
        assert s.get(OutboundMessage, mine).team_id == a
    assert delete(client, token_a, f"/api/messages/{mine}").status_code == 200


BAD = [
    ({"subject": "s", "text": "x"}, "to is required"),
    ({"to": "not-an-address", "subject": "s", "text": "x"}, "not an email address"),
    ({"to": "a@example.com\r\nBcc: evil@example.com", "subject": "s", "text": "x"}, "not an email address"),
    ({"to": "a@example.com", "subject": "Hi\r\nBcc: evil@example.com", "text": "x"}, "one line"),
    ({"to": "a@example.com", "subject": "s"}, "give text, html"),
    ({"to": "a@example.com", "subject": "s", "text": 5}, "text must be a string"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "send_at": "2026-12-01T09:00"}, "UTC offset"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "send_at": "tomorrow"}, "ISO 8601"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "send_at": "2099-01-01T00:00Z"}, "days ahead"),
    ({"to": "a@example.com", "subject": "s", "template": "reminder"}, "unknown template"),
    ({"to": "a@example.com", "subject": "s", "template": "../../etc/passwd"}, "unknown template"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "template": "digest"}, "not both"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "context": {"a": 1}}, "context goes with template"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "idempotency_key": "has space"}, "idempotency_key"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "batch_id": "a/b"}, "batch_id"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "team_id": "1"}, "team_id must be an integer"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "team_id": 424242}, "no team"),
    ({"to": "a@example.com", "subject": "s", "text": "x", "bcc_all": "b@example.com"}, "unknown field"),
]


@pytest.mark.parametrize("body,reason", BAD, ids=[r for _, r in BAD])
def test_a_bad_request_is_a_400_with_the_reason_and_stores_nothing(client, token, body, reason):
    r = client.post("/api/messages", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and reason in r.json()["error"]
    with session() as s:
        assert s.execute(select(func.count()).select_from(OutboundMessage)).scalar() == 0


def test_template_context_cannot_set_headers(client, token, tmp_path):
    r = post(
        client, token, to="a@example.com", subject="s", template="api", context={"_headers": {"Bcc": "x"}}
    )
    assert r.status_code == 400


def test_no_token_bad_json_and_wrong_type_are_refused(client, token):
    assert client.post("/api/messages", json={}).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/messages", content=b"{nope", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = client.post("/api/messages", content=b"[]", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 400 and "object" in r.json()["error"]
    r = client.post("/api/messages", content=b"to=a", headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert client.delete("/api/messages/1").status_code == 401
    assert client.delete("/api/batches/x").status_code == 401


def test_layouts_and_the_templates_of_donebox_own_mail_cannot_be_sent_through_the_api(db, env):
    from starlette.testclient import TestClient

    from app.db import session
    from app.models import utcnow
    from app.relay.api_tokens import create_token
    from app.web.factory import create_app

    with session() as s:
        token = create_token(s, "layouts", now=utcnow())
    with TestClient(create_app()) as c:
        # layouts, and every template of donebox's own mail: only "api" (and templates an operator
        # adds) may be sent through the API
        own = {p.stem for p in (ROOT / "templates" / "email").glob("*.txt")} - {"api"}
        assert {"reminder", "signin", "away", "comment"} <= own
        for name in ("_card", "_report", *sorted(own)):
            r = c.post(
                "/api/messages",
                json={"to": "x@example.com", "subject": "hi", "template": name},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 400 and "unknown template" in r.json()["error"]


def test_html_past_the_parsing_budgets_is_refused_at_the_door_with_the_reason(client, token, sent):
    # 20,000 nested elements overflow css-inline's stack in a worker: refused before it is queued
    deep = "<div>" * 20000 + "x" + "</div>" * 20000
    r = post(client, token, to="ann@example.com", subject="Deep", html=deep)
    assert r.status_code == 400 and "nested deeper than 512" in r.json()["error"]
    with session() as s:
        assert s.scalar(select(func.count()).select_from(OutboundMessage)) == 0
    ok = post(
        client, token, to="ann@example.com", subject="Nested", html="<div>" * 100 + "y" + "</div>" * 100
    )
    assert ok.status_code == 202
    drain()
    assert len(sent) == 1 and "y" in sent[0].get_body(("html",)).get_content()
