"""POST /events/ses: SES bounce, complaint and delivery notifications through SNS, signed and pinned
like /inbound/ses (a local HTTPS certificate host stands in for SNS)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.db import session
from app.models import MessageEvent
from tests.app.relay.test_feedback import sent
from tests.app.web.hooks.test_events_mailgun import state, suppressed
from tests.app.web.hooks.test_inbound_providers import configure  # noqa: F401 - fixture
from tests.app.web.sns_fake import rsa_key
from tests.parsers.test_events import ses_envelope

EVENT_TOPIC = "arn:aws:sns:us-east-1:123456789012:donebox-events"
SNS_HEADERS = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
OURS = "<ses-test-1@mail.test>"


@pytest.fixture
def client(configure, fake_sns):  # noqa: F811
    return configure(
        SES_EVENT_TOPIC_ARNS=EVENT_TOPIC, SNS_CERT_HOSTS=fake_sns.host, SNS_CA_FILE=str(fake_sns.ca_file)
    )


def notification(name: str, sns_id: str = "5e0d1f7a-0000-4000-8000-000000000001") -> dict:
    return dict(ses_envelope(name, OURS, sns_id), TopicArn=EVENT_TOPIC, Timestamp="2026-11-23T12:05:31.000Z")


def send(client, doc: dict):
    return client.post("/events/ses", content=json.dumps(doc).encode(), headers=SNS_HEADERS)


def recorded() -> int:
    with session() as s:
        return s.execute(
            select(func.count()).select_from(MessageEvent).where(MessageEvent.provider_event_id.is_not(None))
        ).scalar()


@pytest.mark.parametrize(
    ("name", "after", "reason"),
    [
        ("bounce_permanent.json", "bounced", "bounce"),
        ("bounce_transient.json", "sent", None),
        ("complaint.json", "complained", "complaint"),
        ("delivery.json", "delivered", None),
    ],
)
@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_notification_is_applied_once(client, fake_sns, name, after, reason, version):
    mid = sent(message_id=OURS)
    signed = fake_sns.sign(notification(name), version)
    r = send(client, signed)
    assert r.status_code == 200, r.text
    assert (r.json()["applied"], r.json()["moved"]) == (1, int(after != "sent"))
    assert state(mid) == after and suppressed() == ({"bob@example.com": reason} if reason else {})
    again = send(client, signed)  # SNS retries with the same MessageId
    assert again.json()["duplicates"] == 1 and recorded() == 1


def test_a_message_sent_through_the_ses_api_is_matched_by_its_ses_message_id(client, fake_sns):
    mid = sent(provider_id="0100018bf5a19f80-1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f-000000")
    doc = dict(ses_envelope("delivery.json", "<not-ours@x>"), TopicArn=EVENT_TOPIC, Timestamp="t")
    assert send(client, fake_sns.sign(doc, "2")).json()["moved"] == 1 and state(mid) == "delivered"


def test_a_late_delivery_after_a_bounce_changes_nothing(client, fake_sns):
    mid = sent(message_id=OURS)
    send(client, fake_sns.sign(notification("bounce_permanent.json", "sns-a"), "2"))
    r = send(client, fake_sns.sign(notification("delivery.json", "sns-b"), "2"))
    assert r.json()["moved"] == 0 and state(mid) == "bounced" and recorded() == 2


def test_a_forged_or_tampered_notification_is_401_and_changes_nothing(client, fake_sns):
    mid = sent(message_id=OURS)
    forged = fake_sns.sign(notification("bounce_permanent.json"), "2", key=rsa_key("forger"))
    assert send(client, forged).status_code == 401
    tampered = fake_sns.sign(notification("delivery.json"), "1")
    tampered["Message"] = tampered["Message"].replace("Delivery", "Bounce")
    assert send(client, tampered).status_code == 401
    assert state(mid) == "sent" and suppressed() == {} and recorded() == 0


def test_a_topic_not_pinned_for_events_is_403_even_if_pinned_for_inbound(client, fake_sns):
    doc = dict(
        notification("bounce_permanent.json"), TopicArn="arn:aws:sns:us-east-1:123456789012:donebox-inbound"
    )
    r = send(client, fake_sns.sign(doc, "2"))
    assert r.status_code == 403 and "SES_EVENT_TOPIC_ARNS" in r.json()["error"]
    assert fake_sns.requests == []


def test_a_subscription_confirmation_is_confirmed_after_its_signature_verifies(client, fake_sns):
    confirm = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": EVENT_TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": fake_sns.url("/?Action=ConfirmSubscription&TopicArn=" + EVENT_TOPIC + "&Token=abc"),
        "Timestamp": "2026-11-23T12:00:00.000Z",
    }
    r = send(client, fake_sns.sign(confirm, "1"))
    assert r.status_code == 200 and r.json() == {"confirmed": True}
    assert any(p.startswith("/?Action=ConfirmSubscription") for p in fake_sns.requests)
    forged = fake_sns.sign(confirm, "1", key=rsa_key("forger"))
    fake_sns.requests.clear()
    assert send(client, forged).status_code == 401 and fake_sns.requests == []


@pytest.mark.parametrize(
    ("message", "why"), [("not json", "not JSON"), ('{"mail": {}}', "neither notificationType")]
)
def test_a_malformed_ses_message_is_400_and_nothing_is_written(client, fake_sns, message, why):
    doc = dict(notification("delivery.json"), Message=message)
    r = send(client, fake_sns.sign(doc, "2"))
    assert r.status_code == 400 and why in r.json()["error"] and recorded() == 0


def test_a_body_that_is_not_an_sns_message_is_400(client):
    r = client.post("/events/ses", content=b"[]", headers=SNS_HEADERS)
    assert r.status_code == 400


def test_no_pinned_topic_is_404_in_production(configure, env, fake_sns):  # noqa: F811
    env.setenv("DONEBOX_ENV", "production")
    c = configure(SES_EVENT_TOPIC_ARNS=None)
    r = send(c, fake_sns.sign(notification("delivery.json"), "2"))
    assert r.status_code == 404 and "SES_EVENT_TOPIC_ARNS" in r.json()["error"]


def test_an_unreachable_certificate_host_is_503_so_sns_retries(configure, fake_sns):  # noqa: F811
    c = configure(
        SES_EVENT_TOPIC_ARNS=EVENT_TOPIC, SNS_CERT_HOSTS="localhost:1", SNS_CA_FILE=str(fake_sns.ca_file)
    )
    signed = fake_sns.sign(notification("delivery.json"), "1")
    signed["SigningCertURL"] = "https://localhost:1/SimpleNotificationService-x.pem"
    assert send(c, signed).status_code == 503 and recorded() == 0
