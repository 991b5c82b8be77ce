"""POST /inbound/ses for a receipt rule with an S3 action: the SNS-signed notification carries no
mail, processing fetches the object from a local S3 (moto's server over real HTTP), and until the
fetch works the message shows the notification's summary and a state naming the object."""

from __future__ import annotations

import json
from datetime import date

import pytest

from app.checkins.reply_tokens import reply_address
from app.cli import main
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.app.inbound.test_copies import entries, row
from tests.app.web.api.test_inbound import token
from tests.app.web.hooks.test_inbound_providers import configure  # noqa: F401 - fixture
from tests.app.web.hooks.test_inbound_ses import SNS_HEADERS
from tests.conftest import TEST_ENV
from tests.parsers.test_providers import FIXTURES, TO

DAY = date(2026, 11, 23)
BUCKET = "donebox-inbound-mail"
OBJECT = (FIXTURES / "ses/s3_object.eml").read_bytes()


def key() -> str:
    doc = json.loads(json.loads((FIXTURES / "ses/notification_s3.json").read_text())["Message"])
    return doc["receipt"]["action"]["objectKey"]


def post(client, fake_sns, to: str) -> int:
    """Post the signed S3-action notification (addressed to ``to``), run the jobs; the row's id."""
    text = (FIXTURES / "ses/notification_s3.json").read_text().replace(TO, to)
    r = client.post(
        "/inbound/ses", content=json.dumps(fake_sns.sign(json.loads(text), "2")), headers=SNS_HEADERS
    )
    assert r.status_code == 200 and r.json()["duplicate"] is False
    drain()
    return r.json()["id"]


@pytest.fixture
def member():
    """Ada's id and her signed reply address for DAY."""
    ada = make_team()
    return ada, reply_address(TEST_ENV["SECRET_KEY"], "reply.test", ada, DAY)


@pytest.fixture
def client(configure, fake_sns, local_s3):  # noqa: F811
    return configure(SNS_CERT_HOSTS=fake_sns.host, SNS_CA_FILE=str(fake_sns.ca_file), **local_s3.settings)


def test_the_mail_is_fetched_from_the_bucket_parsed_and_makes_entries(client, fake_sns, local_s3, member):
    ada, address = member
    local_s3.put(BUCKET, key(), OBJECT.replace(TO.encode(), address.encode()))
    iid = post(client, fake_sns, address)
    stored = row(iid)
    assert stored.state == "processed" and stored.member_id == ada and stored.day == DAY, stored.error
    assert stored.subject == "Re: Status für heute" and stored.from_addr == "ada@example.com"
    assert stored.raw.startswith(b"Return-Path:") and b"profile.bin" in stored.raw  # the object, stored
    assert json.loads(stored.payload)["Type"] == "Notification"  # the provider payload is kept
    assert entries(iid) == ["Measured the S3 fetch on the big export", "Sent the profile to Grace"]
    shown = client.get(f"/api/inbound/{iid}", headers=token()).json()
    assert shown["text"].startswith("Measured the S3 fetch")
    assert [(a["filename"], a["size"]) for a in shown["attachments"]] == [("profile.bin", 160 * 1024)]
    assert shown["spf"] == "pass" and shown["dkim"] == "pass"


def test_a_missing_object_fails_naming_its_key_and_shows_the_summary(client, fake_sns, local_s3, member):
    ada, address = member
    local_s3.client.create_bucket(Bucket=BUCKET)  # the bucket, but no object in it
    iid = post(client, fake_sns, address)
    stored = row(iid)
    assert (
        stored.state == "failed" and f"s3://{BUCKET}/{key()}" in stored.error and "NoSuchKey" in stored.error
    )
    assert stored.raw == b"" and entries(iid) == []  # no entries from a summary
    shown = client.get(f"/api/inbound/{iid}", headers=token()).json()
    assert shown["from"] == "ada@example.com" and shown["from_name"] == "Ada Lövelace"
    assert shown["subject"] == "Re: Status für heute" and shown["cc"] == ["grace@example.com"]
    assert shown["state"] == "failed" and "NoSuchKey" in shown["error"]
    # the object turns up (or the bucket policy is fixed): reprocessing fetches it
    local_s3.put(BUCKET, key(), OBJECT.replace(TO.encode(), address.encode()))
    assert main(["inbound", "reprocess", str(iid)]) == 0
    drain()
    assert row(iid).state == "processed" and len(entries(iid)) == 2


def test_a_missing_bucket_fails_naming_the_bucket(client, fake_sns, member):
    iid = post(client, fake_sns, member[1])
    stored = row(iid)
    assert stored.state == "failed" and "NoSuchBucket" in stored.error and BUCKET in stored.error


def test_without_s3_settings_the_error_says_s3_is_not_configured(configure, fake_sns, member):  # noqa: F811
    client = configure(SNS_CERT_HOSTS=fake_sns.host, SNS_CA_FILE=str(fake_sns.ca_file))
    iid = post(client, fake_sns, member[1])
    stored = row(iid)
    assert stored.state == "failed" and "S3 is not configured (set SES_S3_REGION)" in stored.error
    assert f"s3://{BUCKET}/{key()}" in stored.error and stored.subject == "Re: Status für heute"
