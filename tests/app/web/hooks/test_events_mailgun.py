"""POST /events/mailgun: Mailgun's signed event webhooks (the signature object in the JSON body,
its token good once) move our messages and the suppression list as SendGrid's events do."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from app.db import session
from app.models import MessageEvent, OutboundMessage, Suppression, WebhookToken
from tests.app.relay.test_feedback import sent
from tests.app.web.hooks.test_inbound_providers import MG_KEY, configure  # noqa: F401 - fixture
from tests.parsers.test_events_mailgun_postmark import mailgun_body, mailgun_data

CT = {"Content-Type": "application/json"}


@pytest.fixture
def client(configure):  # noqa: F811
    return configure()


def post(client, body: bytes):
    return client.post("/events/mailgun", content=body, headers=CT)


def signed(name: str, message_id: str, *, token: str = "", ts: int | None = None, key: str = MG_KEY, **data):
    event = {**mailgun_data(name, message_id=message_id.strip("<>")), **data}
    return mailgun_body(event, key=key, ts=int(time.time()) if ts is None else ts, token=token)


def message(to: str = "bob@example.com", key: str = "m1") -> tuple[int, str]:
    mid = sent(key, to=to)
    with session() as s:
        return mid, s.get(OutboundMessage, mid).message_id


def state(mid: int) -> str:
    with session() as s:
        return s.get(OutboundMessage, mid).state


def suppressed() -> dict[str, str]:
    with session() as s:
        return dict(s.execute(select(Suppression.email, Suppression.reason)).all())


def timeline(mid: int) -> list[tuple[str, dict]]:
    with session() as s:
        rows = s.execute(
            select(MessageEvent.kind, MessageEvent.detail)
            .where(MessageEvent.message_id == mid, MessageEvent.provider_event_id.is_not(None))
            .order_by(MessageEvent.id)
        ).all()
    return [(k, json.loads(d)) for k, d in rows]


def count(model) -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar()


def assert_bounced(r, mid: int) -> None:
    """One event applied: the message bounced and its recipient bob@example.com suppressed."""
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 1,
        "applied": 1,
        "moved": 1,
        "suppressed": 1,
        "duplicates": 0,
        "unknown": 0,
    }
    assert state(mid) == "bounced" and suppressed() == {"bob@example.com": "bounce"}


def test_a_permanent_failure_bounces_the_message_and_suppresses_the_address(client):
    mid, msgid = message()
    r = post(client, signed("failed_permanent.json", msgid))
    assert_bounced(r, mid)
    ((kind, detail),) = timeline(mid)
    assert kind == "bounced" and detail["source"] == "mailgun" and detail["status"] == "550"


def test_delivered_then_complained_moves_the_message_and_suppresses_for_the_complaint(client):
    mid, msgid = message("ada@example.com")
    assert post(client, signed("delivered.json", msgid)).json()["moved"] == 1
    assert state(mid) == "delivered"
    assert post(client, signed("complained.json", msgid)).json()["moved"] == 1
    assert state(mid) == "complained" and suppressed() == {"ada@example.com": "complaint"}


def test_a_temporary_failure_is_an_event_and_changes_nothing_else(client):
    mid, msgid = message("olga@example.com")
    assert post(client, signed("failed_temporary.json", msgid)).status_code == 200
    assert state(mid) == "sent" and suppressed() == {}
    assert [k for k, _ in timeline(mid)] == ["deferred"]


def test_opens_clicks_and_unsubscribes_are_on_the_timeline(client):
    mid, msgid = message("ada@example.com")
    for name in ("opened.json", "clicked.json", "unsubscribed.json"):
        assert post(client, signed(name, msgid)).status_code == 200
    events = timeline(mid)
    assert [k for k, _ in events] == ["open", "click", "unsubscribe"]
    assert "Thunderbird" in events[0][1]["ua"] and events[0][1]["machine"] is False
    assert events[1][1]["url"] == "https://donebox.test/teams/1/digest"
    assert state(mid) == "sent" and suppressed() == {"ada@example.com": "unsubscribe"}


def test_the_donebox_id_user_variable_finds_the_message_without_its_message_id(client):
    mid, _ = message("ada@example.com")
    body = signed(
        "delivered.json", "<someone-else@mail.test>", **{"user-variables": {"donebox_id": str(mid)}}
    )
    assert post(client, body).json()["moved"] == 1 and state(mid) == "delivered"


def test_a_retried_event_changes_nothing_twice(client):
    mid, msgid = message()
    first = post(client, signed("failed_permanent.json", msgid, token="a" * 50))
    again = post(client, signed("failed_permanent.json", msgid, token="b" * 50))  # a retry, signed anew
    assert first.json()["applied"] == 1
    assert again.status_code == 200 and again.json()["duplicates"] == 1 and again.json()["applied"] == 0
    same = post(client, signed("failed_permanent.json", msgid, token="a" * 50))  # the very same request
    assert same.status_code == 200 and same.json()["duplicates"] == 1
    assert len(timeline(mid)) == 1 and count(Suppression) == 1


def test_a_used_token_on_other_event_data_is_a_replay_and_writes_nothing(client):
    mid, msgid = message("ada@example.com")
    assert post(client, signed("delivered.json", msgid, token="t" * 50)).status_code == 200
    forged = signed("complained.json", msgid, token="t" * 50)  # the signature covers timestamp + token only
    r = post(client, forged)
    assert r.status_code == 401 and "replay" in r.json()["error"]
    assert state(mid) == "delivered" and suppressed() == {} and [k for k, _ in timeline(mid)] == ["delivered"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"key": "key-not-ours"}, "wrong Mailgun signature"),
        ({"ts": int(time.time()) - 3600}, "stale"),
        ({"ts": int(time.time()) + 3600}, "stale"),
    ],
)
def test_a_forged_or_stale_signature_is_401_and_stores_nothing(client, change, why):
    mid, msgid = message()
    r = post(client, signed("failed_permanent.json", msgid, **change))
    assert r.status_code == 401 and why in r.json()["error"]
    assert state(mid) == "sent" and suppressed() == {} and timeline(mid) == [] and count(WebhookToken) == 0


def test_an_unsigned_body_is_401(client):
    r = post(client, json.dumps({"event-data": mailgun_data("delivered.json")}).encode())
    assert r.status_code == 401 and "signature" in r.json()["error"]


def test_an_event_about_no_message_of_ours_is_accepted_and_ignored(client):
    r = post(client, signed("failed_permanent.json", "<not-ours@elsewhere.test>"))
    assert r.status_code == 200 and r.json()["unknown"] == 1 and suppressed() == {}
    assert count(MessageEvent) == 0


def test_a_malformed_event_is_400_with_the_reason(client):
    body = mailgun_body({"recipient": "a@b.example"}, key=MG_KEY, ts=int(time.time()))
    r = post(client, body)
    assert r.status_code == 400 and "no 'event' name" in r.json()["error"]


def test_no_key_is_404_in_production(configure, env):  # noqa: F811
    env.setenv("DONEBOX_ENV", "production")
    c = configure(MAILGUN_SIGNING_KEY=None)
    r = post(c, signed("delivered.json", "<x@mail.test>"))
    assert r.status_code == 404 and "MAILGUN_SIGNING_KEY" in r.json()["error"]


def test_a_signed_event_with_nul_and_lone_surrogates_is_answered_not_a_crash(client):
    message()
    data = {**mailgun_data("failed_permanent.json"), "id": "x\x00y", "recipient": "bob\x00@example.com"}
    data["message"]["headers"]["message-id"] = "a\ud800b@mail.test"
    r = post(client, mailgun_body(data, key=MG_KEY, ts=int(time.time())))
    assert r.status_code == 200 and r.json()["unknown"] == 1 and suppressed() == {}
