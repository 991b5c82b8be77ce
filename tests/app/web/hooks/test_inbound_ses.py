"""POST /inbound/ses: SNS signatures (v1, v2) with certificates from a local HTTPS host, pinned topics,
subscription confirmation only after verification."""

from __future__ import annotations

import json

import pytest

from app.db import session
from app.models import InboundMessage
from tests.app.web.hooks.test_inbound_providers import TOPIC, configure, stored  # noqa: F401 - fixture
from tests.app.web.sns_fake import rsa_key
from tests.parsers.test_providers import FIXTURES

SNS_HEADERS = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}


@pytest.fixture
def client(configure, fake_sns):  # noqa: F811
    return configure(SNS_CERT_HOSTS=fake_sns.host, SNS_CA_FILE=str(fake_sns.ca_file))


def doc(name: str) -> dict:
    return json.loads((FIXTURES / "ses" / name).read_text())


def send(client, message: dict):
    return client.post("/inbound/ses", content=json.dumps(message).encode(), headers=SNS_HEADERS)


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("name", ["notification_base64.json", "notification_utf8.json"])
def test_a_signed_ses_notification_is_stored_once(client, fake_sns, version, name):
    signed = fake_sns.sign(doc(name), version)
    r = send(client, signed)
    assert r.status_code == 200 and r.json()["duplicate"] is False
    assert send(client, signed).json() == {"id": r.json()["id"], "duplicate": True}
    with session() as s:
        row = s.get(InboundMessage, r.json()["id"])
        assert row.raw.startswith(b"Return-Path:") and row.dedupe_key.startswith("ses:")


def test_a_forged_signature_is_refused(client, fake_sns):
    other = rsa_key("forger")
    r = send(client, fake_sns.sign(doc("notification_base64.json"), "2", key=other))
    assert r.status_code == 401 and "does not verify" in r.json()["error"]
    tampered = fake_sns.sign(doc("notification_base64.json"), "1")
    tampered["Message"] = tampered["Message"].replace("PASS", "FAIL")
    assert send(client, tampered).status_code == 401
    assert stored() == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/SimpleNotificationService-x.pem",
        "http://{host}/SimpleNotificationService-x.pem",
        "https://{host}/not-a-cert.txt",
        "https://user@{host}/x.pem",
    ],
)
def test_a_certificate_url_off_the_allowed_hosts_is_refused_without_fetching(client, fake_sns, url):
    signed = fake_sns.sign(doc("notification_base64.json"), "1")
    signed["SigningCertURL"] = url.format(host=fake_sns.host)
    r = send(client, signed)
    assert r.status_code == 401 and "allowed SNS host" in r.json()["error"]
    assert fake_sns.requests == [] and stored() == 0


def test_an_unsupported_signature_version_or_garbage_signature_is_refused(client, fake_sns):
    signed = fake_sns.sign(doc("notification_base64.json"), "1")
    assert send(client, dict(signed, SignatureVersion="3")).status_code == 401
    assert send(client, dict(signed, Signature="%%%")).status_code == 401


def test_a_topic_that_is_not_pinned_is_403_before_any_fetch(client, fake_sns):
    other = doc("notification_base64.json")
    other["TopicArn"] = "arn:aws:sns:us-east-1:999999999999:someone-else"
    r = send(client, fake_sns.sign(other, "2"))
    assert r.status_code == 403 and "SES_TOPIC_ARNS" in r.json()["error"]
    assert fake_sns.requests == []


def test_a_subscription_confirmation_is_confirmed_after_its_signature_verifies(client, fake_sns):
    confirm = doc("subscription_confirmation.json")
    confirm["SubscribeURL"] = fake_sns.url("/?Action=ConfirmSubscription&TopicArn=" + TOPIC + "&Token=abc")
    r = send(client, fake_sns.sign(confirm, "1"))
    assert r.status_code == 200 and r.json() == {"confirmed": True}
    assert any(p.startswith("/?Action=ConfirmSubscription") for p in fake_sns.requests)
    assert stored() == 0


def test_a_forged_or_foreign_subscription_confirmation_visits_nothing(client, fake_sns):
    confirm = doc("subscription_confirmation.json")
    confirm["SubscribeURL"] = fake_sns.url("/?Action=ConfirmSubscription&Token=abc")
    forged = fake_sns.sign(confirm, "1", key=rsa_key("forger"))
    assert send(client, forged).status_code == 401
    foreign = fake_sns.sign(dict(confirm, TopicArn="arn:aws:sns:eu-west-1:1:other"), "1")
    assert send(client, foreign).status_code == 403
    elsewhere = fake_sns.sign(dict(confirm, SubscribeURL="https://attacker.example/confirm"), "1")
    assert send(client, elsewhere).status_code == 401
    assert not any("Action=ConfirmSubscription" in p for p in fake_sns.requests)


def test_an_unreachable_certificate_host_is_503_so_sns_retries(configure, fake_sns):  # noqa: F811
    c = configure(SNS_CERT_HOSTS="localhost:1", SNS_CA_FILE=str(fake_sns.ca_file))
    signed = fake_sns.sign(doc("notification_base64.json"), "1")
    signed["SigningCertURL"] = "https://localhost:1/SimpleNotificationService-x.pem"
    r = send(c, signed)
    assert r.status_code == 503 and stored() == 0


def test_notifications_are_refused_when_the_certificate_is_served_by_an_untrusted_ca(configure, fake_sns):  # noqa: F811
    c = configure(SNS_CERT_HOSTS=fake_sns.host, SNS_CA_FILE="")  # the system CAs do not know the test CA
    r = send(c, fake_sns.sign(doc("notification_base64.json"), "1"))
    assert r.status_code == 503 and stored() == 0


def test_no_subscription_is_confirmed_while_signature_checks_are_off(configure, fake_sns):  # noqa: F811
    c = configure(
        SNS_CERT_HOSTS=fake_sns.host, SNS_CA_FILE=str(fake_sns.ca_file), SES_VERIFY_SIGNATURES="false"
    )
    confirm = doc("subscription_confirmation.json")
    confirm["SubscribeURL"] = fake_sns.url("/?Action=ConfirmSubscription&Token=abc")
    r = send(c, confirm)
    assert r.status_code == 403 and "SES_VERIFY_SIGNATURES" in r.json()["error"]
    assert fake_sns.requests == []
