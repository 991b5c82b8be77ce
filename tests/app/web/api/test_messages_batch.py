"""POST /api/messages/batch: up to 500 messages, each checked on its own and named by its index when
refused, the good ones stored together and counted together against the team's quota."""

import email
import email.policy

import pytest
from sqlalchemy import func, select

from app.db import session
from app.models import OutboundBody, OutboundMessage, TeamRelay, utcnow
from app.relay import composed
from app.relay.api_tokens import create_token
from jobs.broker import drain


@pytest.fixture
def token(team):
    with session() as s:
        return create_token(s, "app", now=utcnow(), team_id=team.id)


def batch(client, token, messages):
    return client.post(
        "/api/messages/batch", json={"messages": messages}, headers={"Authorization": f"Bearer {token}"}
    )


def count(model=OutboundMessage) -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar()


def message(n: int, **extra) -> dict:
    return {"to": f"r{n}@example.com", "subject": f"Receipt {n}", "text": f"paid {n}", **extra}


def test_a_batch_of_500_is_stored_and_answered_message_by_message(client, team, token):
    r = batch(client, token, [message(n) for n in range(500)])
    assert r.status_code == 202, r.text[:300]
    body = r.json()
    assert (body["accepted"], body["refused"]) == (500, 0)
    assert [x["index"] for x in body["results"]] == list(range(500))
    assert all(x["status"] == 202 and len(x["ids"]) == 1 and x["error"] is None for x in body["results"])
    with session() as s:
        to = dict(s.execute(select(OutboundMessage.id, OutboundMessage.to_addr)).all())
    assert [to[x["ids"][0]] for x in body["results"]] == [f"r{n}@example.com" for n in range(500)]


def test_a_batch_of_501_is_refused_whole(client, team, token):
    r = batch(client, token, [message(n) for n in range(501)])
    assert r.status_code == 400 and "messages has 501 messages, more than 500" in r.json()["error"]
    assert count() == 0


def test_a_bad_message_is_named_by_its_index_and_the_good_ones_are_stored(client, team, token, sent):
    r = batch(
        client,
        token,
        [
            message(0),
            message(1, to="not-an-address"),
            message(2, cc="c@example.com", attachments=[{"filename": "a.txt", "content": "%%%"}]),
            message(3, cc="c@example.com", bcc=["b@example.com"]),
            "not an object",
        ],
    )
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["refused"]) == (2, 3)
    results = body["results"]
    assert results[1]["status"] == 400 and results[1]["error"].startswith(
        "messages[1].to is not an email address"
    )
    assert results[2]["error"] == "messages[2].attachments[0].content is not valid base64"
    assert results[4]["error"] == "messages[4]: the body must be a JSON object"
    assert results[1]["ids"] == [] and results[1]["state"] is None
    assert len(results[0]["ids"]) == 1 and len(results[3]["ids"]) == 3
    assert count() == 4 and count(OutboundBody) == 1
    with session() as s:
        raw = composed.load(s, s.get(OutboundMessage, results[3]["ids"][0]).body_id)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Cc"] == "c@example.com" and msg["Bcc"] is None and b"b@example.com" not in raw
    drain()  # the rendered one as before, and the composed one's copy to each of its three recipients
    assert sorted(m["To"] for m in sent) == ["r0@example.com"] + ["r3@example.com"] * 3


def test_a_batch_in_which_nothing_is_good_is_a_200_with_the_reasons(client, team, token):
    r = batch(client, token, [message(0, subject=None), message(1, tags="x")])
    assert r.status_code == 200
    assert [x["error"] for x in r.json()["results"]] == [
        "messages[0].subject is required",
        "messages[1].tags must be a list of at most 10 strings",
    ]
    assert count() == 0


def test_a_batch_counts_against_the_quota_as_a_whole(client, team, token):
    with session() as s:
        s.add(TeamRelay(team_id=team.id, quota_hour=10))
    r = batch(
        client,
        token,
        [message(0, cc=[f"c{i}@example.com" for i in range(5)]), *[message(n) for n in range(1, 6)]],
    )
    assert r.status_code == 429 and "11 messages are more than the team's quota of 10" in r.json()["error"]
    assert count() == 0 and count(OutboundBody) == 0
    assert batch(client, token, [message(n) for n in range(6)]).status_code == 202
    r = batch(client, token, [message(n) for n in range(10, 15)])
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert count() == 6


def test_a_repeated_batch_answers_the_rows_its_keys_made(client, team, token):
    messages = [message(n, idempotency_key=f"k{n}", bcc="b@example.com") for n in range(3)]
    first = batch(client, token, messages)
    again = batch(client, token, messages)
    assert first.status_code == 202 and again.status_code == 200
    assert [x["ids"] for x in again.json()["results"]] == [x["ids"] for x in first.json()["results"]]
    assert all(x["duplicate"] and x["status"] == 200 for x in again.json()["results"])
    assert count() == 6


BAD_BODIES = [
    ({}, "the body must be"),
    ({"messages": [], "extra": 1}, "the body must be"),
    ({"messages": []}, "messages must be a non-empty list"),
    ({"messages": {"to": "x"}}, "messages must be a non-empty list"),
]


@pytest.mark.parametrize("body,reason", BAD_BODIES, ids=[str(b) for b, _ in BAD_BODIES])
def test_a_batch_that_is_not_a_list_of_messages_is_a_400(client, team, token, body, reason):
    r = client.post("/api/messages/batch", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and reason in r.json()["error"]
