"""SES receipt rules with an S3 action: the object named, the summary of the notification until
the mail is fetched, the fetched mail parsed like any SES mail; hostile notifications never raise."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from parsers.providers import PROVIDERS, Payload, S3Object
from tests.parsers.test_providers import FIXTURES, TO, payload

SES = PROVIDERS["ses"]
NOTIFICATION = payload("ses/notification_s3.json")
OBJECT = (FIXTURES / "ses/s3_object.eml").read_bytes()


def with_message(change) -> Payload:
    """The S3 notification with its SES document changed by ``change(doc)``."""
    envelope = json.loads(NOTIFICATION.body)
    doc = json.loads(envelope["Message"])
    change(doc)
    return Payload(json.dumps(dict(envelope, Message=json.dumps(doc))).encode(), NOTIFICATION.content_type)


def test_an_s3_action_names_its_bucket_and_object_key():
    where = SES.s3_object(NOTIFICATION)
    assert where == S3Object("donebox-inbound-mail", "mail/s3k2vc1p0a9rq7m4t6e8b1d5f3h2j0lambda7x9y")
    assert str(where) == "s3://donebox-inbound-mail/mail/s3k2vc1p0a9rq7m4t6e8b1d5f3h2j0lambda7x9y"


@pytest.mark.parametrize("path", ["ses/notification_base64.json", "ses/notification_utf8.json"])
def test_a_notification_carrying_its_content_names_no_s3_object(path):
    assert SES.s3_object(payload(path)) is None


def test_the_keys_of_an_s3_notification_carry_no_raw_and_dedupe_on_the_ses_id():
    keys = SES.keys(NOTIFICATION)
    assert keys.raw_mime is None and keys.provider_id == "s3k2vc1p0a9rq7m4t6e8b1d5f3h2j0lambda7x9y"
    assert keys.message_id == "<ses-s3@mail.example.com>" and keys.envelope_to == (TO,)


def test_until_fetched_the_mail_is_summarized_from_the_notification_headers():
    email = SES.parse(NOTIFICATION)
    assert (email.from_addr, email.from_name) == ("ada@example.com", "Ada Lövelace")
    assert email.to == (TO,) and email.cc == ("grace@example.com",)
    assert email.subject == "Re: Status für heute" and email.message_id == "<ses-s3@mail.example.com>"
    assert email.date == datetime(2026, 11, 23, 16, 55, 10, tzinfo=UTC)
    assert email.header("Subject") == "Re: Status für heute"  # encoded words decoded
    assert email.header("Content-Type").startswith("multipart/mixed")
    assert email.text is None and email.html is None and email.attachments == ()
    assert (email.spf, email.dkim, email.dmarc, email.envelope_from) == (
        "pass",
        "pass",
        "pass",
        "ada@example.com",
    )
    assert email.envelope_to == (TO,) and email.provider == "ses"
    assert email.notes == (
        "content in S3 at s3://donebox-inbound-mail/mail/s3k2vc1p0a9rq7m4t6e8b1d5f3h2j0lambda7x9y, "
        "not fetched yet: this is the notification's summary",
    )


def test_the_fetched_object_is_parsed_like_any_ses_mail():
    email = SES.parse_stored(NOTIFICATION, OBJECT)
    assert email.subject == "Re: Status für heute" and email.from_name == "Ada Lövelace"
    assert email.text.startswith("Measured the S3 fetch on the big export")
    assert [(a.filename, a.size) for a in email.attachments] == [("profile.bin", 160 * 1024)]
    assert email.spf == "pass" and email.envelope_to == (TO,) and email.notes == ()


def test_the_summary_falls_back_to_the_header_list_when_common_headers_are_missing():
    email = SES.parse(with_message(lambda doc: doc["mail"].pop("commonHeaders")))
    assert email.from_addr == "ada@example.com" and email.from_name == "Ada Lövelace"
    assert email.subject == "Re: Status für heute" and email.message_id == "<ses-s3@mail.example.com>"


def test_an_s3_action_without_an_object_key_says_so():
    email = SES.parse(with_message(lambda doc: doc["receipt"]["action"].pop("objectKey")))
    assert SES.s3_object(with_message(lambda doc: doc["receipt"]["action"].pop("objectKey"))).key == ""
    assert email.notes[0] == "content in S3, but the notification names no bucket or object key"


def test_a_truncated_header_list_is_noted():
    email = SES.parse(with_message(lambda doc: doc["mail"].update(headersTruncated=True)))
    assert "SES truncated the header list" in email.notes


def _hostile(doc):
    doc["mail"]["headers"] = ["x", {"name": 5, "value": {"a": 1}}, {"name": "From", "value": None}, {}]
    doc["mail"]["commonHeaders"] = {"from": [1, None], "to": "nobody", "subject": ["x"], "date": "garbage"}
    doc["receipt"]["action"] = {"type": "S3", "bucketName": ["b"], "objectKey": {"k": 1}}


@pytest.mark.parametrize(
    "change",
    [
        _hostile,
        lambda doc: doc.update(mail="not a dict"),
        lambda doc: doc["mail"].update(headers="x" * 100, commonHeaders=[1, 2]),
        lambda doc: doc["receipt"].update(action=None),
        lambda doc: doc["mail"].update(headers=[{"name": "X", "value": "v" * 50_000}] * 5000),
    ],
)
def test_a_hostile_notification_never_raises(change):
    email = SES.parse(with_message(change))
    assert email.provider == "ses" and len(email.headers) <= 1000
    assert all(len(value) <= 10_000 for _, value in email.headers)


def test_envelope_recipients_keep_their_case():
    mixed = with_message(lambda doc: doc["receipt"].update(recipients=["Reply+Ada@Reply.Example.COM"]))
    assert SES.keys(mixed).envelope_to == ("Reply+Ada@Reply.Example.COM",)
    assert SES.parse(mixed).envelope_to == ("Reply+Ada@Reply.Example.COM",)
