"""POST /inbound/{provider}: a retry that is not byte-identical is a duplicate; the same Message-ID
with another body is stored, linked to the first and noted, and a retry of it is its duplicate."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time

import pytest

from app.db import session
from app.models import InboundMessage, utcnow
from app.relay.api_tokens import create_token
from jobs.broker import drain
from parsers.providers import Payload
from tests.app.web.conftest import AUTH
from tests.app.web.hooks.test_inbound_providers import (  # noqa: F401 - configure is a fixture
    MG_KEY,
    PM_AUTH,
    SG_AUTH,
    basic,
    configure,
    stored,
)
from tests.app.web.hooks.test_inbound_ses import SNS_HEADERS
from tests.parsers.test_fingerprints import CASES, postmark, reboundary, ses, with_fields

_tokens = itertools.count()


def mailgun_signed(p: Payload) -> Payload:
    """``p`` with a fresh timestamp, a token never used before and their signature, under a new
    boundary: what each Mailgun attempt looks like."""
    ts, token = (
        str(int(time.time())),
        hashlib.sha256(f"{time.time_ns()}-{next(_tokens)}".encode()).hexdigest(),
    )
    sig = hmac.new(MG_KEY.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    signed = with_fields(p, {"timestamp": ts, "token": token, "signature": sig})
    return reboundary(signed, f"B{next(_tokens)}x") if "boundary=" in p.content_type else signed


def send(client, provider: str, p: Payload):
    headers = {"Content-Type": p.content_type}
    if provider == "mailgun":
        p = mailgun_signed(p)
        headers = {"Content-Type": p.content_type}
    elif provider == "raw":
        headers = AUTH
    else:
        headers.update(basic(SG_AUTH if provider == "sendgrid" else PM_AUTH))
    r = client.post(f"/inbound/{provider}", content=p.body, headers=headers)
    assert r.status_code in (200, 202), r.text
    return r.json()


def row(iid: int) -> InboundMessage:
    with session() as s:
        return s.get(InboundMessage, iid)


@pytest.fixture
def client(configure):  # noqa: F811 - the fixture imported above
    return configure()


# the cases whose dedupe key is the Message-ID (or the header block): the link is made at acceptance
KEYED_BY_MESSAGE_ID = [c for c in CASES if CASES[c][0] in ("sendgrid", "mailgun", "raw")]


@pytest.mark.parametrize("case", KEYED_BY_MESSAGE_ID)
def test_a_retry_is_a_duplicate_and_a_reused_message_id_is_stored_linked_and_noted(client, case):
    provider, first, retry, other = CASES[case]
    one = send(client, provider, first)
    assert one["duplicate"] is False
    assert send(client, provider, retry) == {"id": one["id"], "duplicate": True}
    two = send(client, provider, other)
    assert two["duplicate"] is False and two["id"] != one["id"]
    assert row(two["id"]).same_message_id_as == one["id"]
    assert f"same Message-ID as inbound message {one['id']}, different content" in row(two["id"]).notes
    assert send(client, provider, other) == {"id": two["id"], "duplicate": True}  # its retry: no third row
    assert send(client, provider, retry) == {"id": one["id"], "duplicate": True}
    assert stored() == 2
    drain()  # processing keeps the link and the note, and the first stays unlinked
    assert row(two["id"]).same_message_id_as == one["id"] and row(one["id"]).same_message_id_as is None
    assert f"same Message-ID as inbound message {one['id']}" in row(two["id"]).notes
    got = client.get(f"/api/inbound/{two['id']}", headers={"Authorization": f"Bearer {api_token()}"}).json()
    assert got["same_message_id_as"] == one["id"]
    assert any(f"inbound message {one['id']}, different content" in n for n in got["notes"])


def api_token() -> str:
    with session() as s:
        return create_token(s, "dedupe test", now=utcnow())


def test_postmark_retry_is_a_duplicate_and_another_mail_with_the_message_id_is_linked_at_processing(client):
    first = Payload(json.dumps(postmark("inbound.json")).encode(), "application/json")
    retry = Payload(json.dumps(postmark("inbound.json"), indent=2).encode(), "application/json")
    other = postmark("inbound.json", MessageID="second-postmark-id", TextBody="Wrote the Mailgun adapter.")
    other = Payload(json.dumps(other).encode(), "application/json")
    one = send(client, "postmark", first)
    assert send(client, "postmark", retry) == {"id": one["id"], "duplicate": True}
    two = send(client, "postmark", other)
    assert two["duplicate"] is False
    assert send(client, "postmark", other) == {"id": two["id"], "duplicate": True}
    assert stored() == 2
    drain()
    linked = row(two["id"])
    assert linked.same_message_id_as == one["id"] and linked.state != "ignored"
    assert f"same Message-ID as inbound message {one['id']}, different content" in linked.notes


def test_postmark_second_delivery_of_the_same_mail_under_a_new_id_is_ignored_and_linked(client):
    one = send(client, "postmark", Payload(json.dumps(postmark("inbound.json")).encode(), "application/json"))
    again = Payload(
        json.dumps(postmark("inbound.json", MessageID="redelivered-id")).encode(), "application/json"
    )
    two = send(client, "postmark", again)
    assert two["duplicate"] is False  # another provider id: stored, nothing is lost
    drain()
    second = row(two["id"])
    assert second.state == "ignored" and second.same_message_id_as == one["id"]
    assert f"same Message-ID and content as inbound message {one['id']}" in second.error


@pytest.fixture
def ses_client(configure, fake_sns):  # noqa: F811
    return configure(SNS_CERT_HOSTS=fake_sns.host, SNS_CA_FILE=str(fake_sns.ca_file))


def test_ses_retry_with_a_new_signature_is_a_duplicate_and_another_mail_is_linked(ses_client, fake_sns):
    def post(doc: dict, version: str) -> dict:
        r = ses_client.post(
            "/inbound/ses", content=json.dumps(fake_sns.sign(doc, version)).encode(), headers=SNS_HEADERS
        )
        assert r.status_code == 200, r.text
        return r.json()

    one = post(ses("notification_utf8.json"), "1")
    retry = ses("notification_utf8.json", Timestamp="2026-11-23T17:00:09.000Z")
    assert post(retry, "2") == {"id": one["id"], "duplicate": True}  # another signature and time

    def other_mail(content: str) -> str:
        return content + "\r\nP.S. and more"

    other = ses("notification_utf8.json", content=other_mail)
    message = json.loads(other["Message"])
    message["mail"]["messageId"] = "another-ses-id"
    other["Message"] = json.dumps(message)
    two = post(other, "1")
    assert two["duplicate"] is False
    assert post(dict(other, Timestamp="2026-11-23T17:00:10.000Z"), "2") == {
        "id": two["id"],
        "duplicate": True,
    }
    assert stored() == 2
    drain()
    assert row(two["id"]).same_message_id_as == one["id"]
    assert f"same Message-ID as inbound message {one['id']}, different content" in row(two["id"]).notes
