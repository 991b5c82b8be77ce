"""Providers' ``parse_events``: SendGrid's Event Webhook and SES notifications -> DeliveryEvents."""

import json
from pathlib import Path

import pytest

from parsers.providers import PROVIDERS, EventError, NoWebhook, Payload

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def sendgrid_batch(**ids) -> bytes:
    body = (FIXTURES / "sendgrid_events" / "batch.json").read_text()
    for name, value in {"ada": 1, "bob": 2, "olga": 3, **ids}.items():
        body = body.replace("{" + name + "}", str(value))
    return body.encode()


def ses_envelope(name: str, message_id: str = "<m1@mail.test>", sns_id: str = "sns-1") -> dict:
    message = (FIXTURES / "ses_events" / name).read_text().replace("{message_id}", message_id)
    return {"Type": "Notification", "MessageId": sns_id, "Message": message, "TopicArn": "arn:x"}


def sg_events(body: bytes | str) -> list:
    raw = body.encode() if isinstance(body, str) else body
    return PROVIDERS["sendgrid"].parse_events(Payload(raw, "application/json"))


def ses_events(envelope: dict) -> list:
    return PROVIDERS["ses"].parse_events(Payload(json.dumps(envelope).encode(), "text/plain"))


def test_sendgrid_events_map_to_our_kinds_with_ids_and_provider_id():
    events = sg_events(sendgrid_batch())
    assert [(e.kind, e.outbound_id, e.recipient) for e in events] == [
        ("processed", 1, "ada@example.com"),
        ("delivered", 1, "ada@example.com"),
        ("bounce", 2, "bob@example.com"),
        ("soft_bounce", 3, "olga@example.com"),  # type "blocked"
        ("deferred", 3, "olga@example.com"),
    ]
    assert events[0].provider_id == "X1mAbCdEfGhIjKlMnOpQrS"
    assert events[2].provider_id == "Y2nBcDeFgHiJkLmNoPqRsT"
    assert events[2].event_id == "sendgrid:Ym91bmNlLTEyMzQ1"
    assert events[2].detail["status"] == "5.1.1" and events[2].at.isoformat().startswith("2026-11-23")
    assert events[2].raw["bounce_classification"] == "Invalid Address"


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("Bounced Address", "bounce"),
        ("Invalid", "invalid"),
        ("Spam Reporting Address", "complaint"),
        ("Unsubscribed Address", "unsubscribe"),
        ("Invalid SMTPAPI header", "other"),
    ],
)
def test_a_dropped_event_says_why(reason, cause):
    body = json.dumps([{"event": "dropped", "email": "a@b.example", "reason": reason, "sg_event_id": "d1"}])
    (e,) = sg_events(body.encode())
    assert (e.kind, e.cause) == ("dropped", cause)


def test_engagement_and_unsubscribes_and_spam_reports_are_ours_too():
    body = json.dumps(
        [
            {"event": "open", "email": "a@b.example", "useragent": "Mozilla/5.0", "sg_machine_open": True},
            {"event": "click", "email": "a@b.example", "url": "https://x.example/"},
            {"event": "spamreport", "email": "a@b.example"},
            {"event": "group_unsubscribe", "email": "a@b.example", "asm_group_id": 1},
            {"event": "group_resubscribe", "email": "a@b.example"},  # nothing we act on
        ]
    ).encode()
    events = sg_events(body)
    assert [e.kind for e in events] == ["open", "click", "complaint", "unsubscribe"]
    assert events[0].detail == {"user_agent": "Mozilla/5.0", "machine_open": True}
    assert events[1].detail["url"] == "https://x.example/"


def test_an_event_without_an_id_is_named_by_its_content_so_a_retry_dedupes():
    body = json.dumps([{"event": "dropped", "email": "a@b.example", "reason": "Invalid", "timestamp": 1}])
    first, again = sg_events(body.encode()), sg_events(body.encode())
    assert first[0].event_id == again[0].event_id and first[0].event_id.startswith("sendgrid:sha256:")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b'{"event": "delivered"}', "not an array"),
        (b'[{"event": "delivered"}, 3]', "event 1 is not an object"),
        (b'[{"email": "a@b.example"}]', "no 'event'"),
    ],
)
def test_a_malformed_sendgrid_body_is_an_event_error(body, why):
    with pytest.raises(EventError, match=why):
        sg_events(body)


def test_a_donebox_id_that_is_not_an_id_is_ignored():
    body = json.dumps([{"event": "delivered", "donebox_id": "1; drop table", "sg_message_id": "abc.filter1"}])
    (e,) = sg_events(body.encode())
    assert e.outbound_id is None and e.provider_id == "abc"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("bounce_permanent.json", "bounce"),
        ("bounce_transient.json", "soft_bounce"),
        ("complaint.json", "complaint"),
        ("delivery.json", "delivered"),
    ],
)
def test_ses_notifications_map_to_our_kinds(name, kind):
    (e,) = ses_events(ses_envelope(name))
    assert (e.source, e.kind, e.event_id, e.recipient) == ("ses", kind, "ses:sns-1", "bob@example.com")
    assert e.message_ids == ("<m1@mail.test>",)
    assert e.provider_id.startswith("0100018bf5a19f80")
    assert e.at is not None and e.at.tzinfo is not None


def test_a_permanent_ses_bounce_keeps_status_and_diagnostic():
    (e,) = ses_events(ses_envelope("bounce_permanent.json"))
    assert e.detail["status"] == "5.1.1" and e.detail["diagnostic"] == "smtp; 550 5.1.1 user unknown"
    assert e.detail["type"] == "Permanent" and e.raw["bounce"]["bounceSubType"] == "General"


def test_an_ses_notification_about_several_recipients_gives_one_event_each():
    env = ses_envelope("bounce_permanent.json")
    doc = json.loads(env["Message"])
    doc["bounce"]["bouncedRecipients"].append({"emailAddress": "Zoe <zoe@example.com>", "status": "5.1.1"})
    env["Message"] = json.dumps(doc)
    assert [(e.event_id, e.recipient) for e in ses_events(env)] == [
        ("ses:sns-1", "bob@example.com"),
        ("ses:sns-1/1", "zoe@example.com"),
    ]


def test_event_publishing_uses_event_type_and_other_notifications_give_nothing():
    env = ses_envelope("delivery.json")
    doc = json.loads(env["Message"])
    doc["eventType"] = doc.pop("notificationType")
    assert [e.kind for e in ses_events(dict(env, Message=json.dumps(doc)))] == ["delivered"]
    other = {"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "You have subscribed"}
    assert ses_events(dict(env, Message=json.dumps(other))) == []


@pytest.mark.parametrize(
    ("message", "why"),
    [("not json", "not JSON"), ("[1]", "not a JSON object"), ('{"mail": {}}', "neither notificationType")],
)
def test_a_malformed_ses_message_is_an_event_error(message, why):
    with pytest.raises(EventError, match=why):
        ses_events({"Type": "Notification", "MessageId": "x", "Message": message})


def test_an_sns_message_that_is_not_a_notification_is_an_event_error():
    with pytest.raises(EventError, match="not an SNS Notification"):
        ses_events({"Type": "SubscriptionConfirmation", "MessageId": "x", "Message": "{}"})


@pytest.mark.parametrize("name", ["raw", "imap"])
def test_a_provider_without_an_event_webhook_says_so(name):
    assert PROVIDERS[name].event_setting == ""
    with pytest.raises(NoWebhook, match="no event webhook"):
        PROVIDERS[name].parse_events(Payload(b"[]", "application/json"))
