"""POST /events/postmark: Postmark's webhooks, proven by HTTP Basic (POSTMARK_EVENT_AUTH), move our
messages and the suppression list as SendGrid's events do; our id comes back in ``Metadata``."""

from __future__ import annotations

import base64
import json

import pytest

from app.models import Suppression
from tests.app.web.hooks.test_events_mailgun import (
    assert_bounced,
    count,
    message,
    state,
    suppressed,
    timeline,
)
from tests.app.web.hooks.test_inbound_providers import PM_AUTH, configure  # noqa: F401 - fixture
from tests.parsers.test_events_mailgun_postmark import postmark_body

EVENT_AUTH = "pmevents:s3cret-postmark-events"


def basic(secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()}


@pytest.fixture
def client(configure):  # noqa: F811
    return configure(POSTMARK_EVENT_AUTH=EVENT_AUTH)


def post(client, body: bytes, auth: str = EVENT_AUTH):
    headers = {"Content-Type": "application/json", **(basic(auth) if auth else {})}
    return client.post("/events/postmark", content=body, headers=headers)


def test_a_hard_bounce_bounces_the_message_and_suppresses_the_address(client):
    mid, _ = message()
    r = post(client, postmark_body("bounce_hard.json", str(mid)))
    assert_bounced(r, mid)
    ((_, detail),) = timeline(mid)
    assert detail["source"] == "postmark" and "550 5.1.1" in detail["response"]


def test_delivery_then_spam_complaint_moves_the_message_and_suppresses(client):
    mid, _ = message("ada@example.com")
    assert post(client, postmark_body("delivery.json", str(mid))).json()["moved"] == 1
    assert state(mid) == "delivered"
    assert post(client, postmark_body("spam_complaint.json", str(mid))).json()["moved"] == 1
    assert state(mid) == "complained" and suppressed() == {"ada@example.com": "complaint"}


def test_a_transient_bounce_is_an_event_and_changes_nothing_else(client):
    mid, _ = message("olga@example.com")
    assert post(client, postmark_body("bounce_transient.json", str(mid))).status_code == 200
    assert state(mid) == "sent" and suppressed() == {} and [k for k, _ in timeline(mid)] == ["deferred"]


def test_opens_clicks_and_unsubscribes_are_on_the_timeline(client):
    mid, _ = message("ada@example.com")
    for name in ("open.json", "click.json", "subscription_change.json"):
        assert post(client, postmark_body(name, str(mid))).status_code == 200
    events = timeline(mid)
    assert [k for k, _ in events] == ["open", "click", "unsubscribe"]
    assert (
        "Thunderbird" in events[0][1]["ua"] and events[1][1]["url"] == "https://donebox.test/teams/1/digest"
    )
    assert state(mid) == "sent" and suppressed() == {"ada@example.com": "unsubscribe"}


def test_a_retried_event_changes_nothing_twice(client):
    mid, _ = message()
    body = postmark_body("bounce_hard.json", str(mid))
    assert post(client, body).json()["applied"] == 1
    again = post(client, body)
    assert again.status_code == 200 and again.json()["duplicates"] == 1 and again.json()["applied"] == 0
    assert len(timeline(mid)) == 1 and count(Suppression) == 1


@pytest.mark.parametrize("auth", ["pmevents:wrong", PM_AUTH, ""])
def test_wrong_or_missing_credentials_are_401_and_store_nothing(client, auth):
    mid, _ = message()
    r = post(client, postmark_body("bounce_hard.json", str(mid)), auth=auth)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert state(mid) == "sent" and suppressed() == {} and timeline(mid) == []


def test_an_event_about_no_message_of_ours_is_accepted_and_ignored(client):
    message()
    r = post(client, postmark_body("bounce_hard.json", "999999"))
    assert r.status_code == 200 and r.json()["unknown"] == 1 and suppressed() == {}


def test_an_event_without_metadata_is_accepted_and_ignored(client):
    message()
    doc = json.loads(postmark_body("bounce_hard.json"))
    doc.pop("Metadata")
    r = post(client, json.dumps(doc).encode())
    assert r.status_code == 200 and r.json()["unknown"] == 1 and suppressed() == {}


def test_a_malformed_body_is_400_with_the_reason(client):
    r = post(client, b'{"MessageID": "x"}')
    assert r.status_code == 400 and "RecordType" in r.json()["error"]


def test_no_credentials_setting_is_404_in_production(configure, env):  # noqa: F811
    env.setenv("DONEBOX_ENV", "production")
    c = configure(POSTMARK_EVENT_AUTH=None)
    r = post(c, postmark_body("delivery.json"))
    assert r.status_code == 404 and "POSTMARK_EVENT_AUTH" in r.json()["error"]
