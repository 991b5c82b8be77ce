"""process_inbound on stored provider payloads: who wrote it, what it says, what is ignored."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from app.checkins.reply_tokens import reply_address, reply_token
from app.db import session
from app.inbound.accept import accept, dedupe_key
from app.inbound.process import process
from app.models import Entry, InboundMessage
from app.settings import get_settings
from parsers.providers import PROVIDERS, Payload
from tests.app.checkins.test_loop import make_team
from tests.conftest import FIXED_NOW
from tests.parsers.test_providers import FIXTURES, TO, payload

DAY = date(2026, 11, 23)


def accept_and_process(provider: str, p: Payload) -> InboundMessage:
    """Store ``p`` as the webhook does, then run the job body on it."""
    keys = PROVIDERS[provider].keys(p)
    with session() as s:
        iid, _ = accept(
            s,
            provider=provider,
            raw=keys.raw_mime or b"",
            key=dedupe_key(provider, keys),
            now=FIXED_NOW,
            payload=p.body,
            payload_type=p.content_type,
        )
    with session() as s:
        process(s, iid, now=FIXED_NOW, settings=get_settings())
    with session() as s:
        return s.get(InboundMessage, iid)


def entries(iid: int) -> list[str]:
    with session() as s:
        return list(s.execute(select(Entry.text).where(Entry.inbound_id == iid).order_by(Entry.id)).scalars())


def with_token(p: Payload, member_id: int) -> Payload:
    real = reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", member_id, DAY)
    return Payload(p.body.replace(TO.encode(), real.encode()), p.content_type)


def test_a_sendgrid_reply_to_the_signed_address_makes_entries(db):
    ada = make_team()
    row = accept_and_process("sendgrid", with_token(payload("sendgrid/parsed_utf8.multipart"), ada))
    assert row.state == "processed" and row.member_id == ada and row.day == DAY
    assert entries(row.id)[0].startswith("Shipped the billing export")


def test_a_postmark_mailbox_hash_identifies_the_member(db):
    ada = make_team()
    doc = json.loads((FIXTURES / "postmark/inbound.json").read_text())
    hook = "451d9b70cf9364d23ff6f9d51d870251569e+{h}@inbound.postmarkapp.com"
    token = reply_token("test-secret-key-0123456789-abcdefXYZ", ada, DAY)
    doc.update(
        To=hook.format(h=token),
        ToFull=[{"Email": hook.format(h=token), "Name": "", "MailboxHash": token}],
        OriginalRecipient=hook.format(h=token),
        MailboxHash=token,
        Headers=[h for h in doc["Headers"] if h["Name"] not in ("Authentication-Results", "Received-SPF")],
    )
    row = accept_and_process("postmark", Payload(json.dumps(doc).encode(), "application/json"))
    assert row.state == "processed" and row.member_id == ada
    assert entries(row.id) == ["Wrote the Postmark adapter."]


def _postmark_from_only(**changes) -> Payload:
    doc = json.loads((FIXTURES / "postmark/inbound.json").read_text())
    doc.update(
        To="team@inbound.example.com",
        ToFull=[{"Email": "team@inbound.example.com", "Name": "", "MailboxHash": ""}],
        OriginalRecipient="team@inbound.example.com",
        MailboxHash="",
        **changes,
    )
    doc["Headers"] = [h for h in doc["Headers"] if h["Name"] != "In-Reply-To"]
    return Payload(json.dumps(doc).encode(), "application/json")


def test_from_identifies_a_member_only_when_spf_or_dkim_passed(db, monkeypatch):
    monkeypatch.setenv("AUTHSERV_IDS", "inbound.postmarkapp.com")  # the fixture's header names it
    get_settings.cache_clear()
    ada = make_team()
    row = accept_and_process("postmark", _postmark_from_only())
    assert row.state == "processed" and row.member_id == ada


@pytest.mark.parametrize(
    "auth_headers",
    [
        [],
        [{"Name": "Authentication-Results", "Value": "mx.example; spf=fail; dkim=none"}],
        [
            {"Name": "Authentication-Results", "Value": "inbound.postmarkapp.com; spf=softfail; dkim=fail"},
            {"Name": "Authentication-Results", "Value": "forged.example; spf=pass; dkim=pass"},
        ],
    ],
)
def test_an_unauthenticated_from_is_stored_as_unverified_and_makes_no_entries(db, auth_headers):
    make_team()
    doc = json.loads(_postmark_from_only(MessageID=f"m-{len(auth_headers)}").body)
    doc["Headers"] = [
        h for h in doc["Headers"] if h["Name"] not in ("Authentication-Results", "Received-SPF")
    ] + auth_headers
    row = accept_and_process("postmark", Payload(json.dumps(doc).encode(), "application/json"))
    assert row.state == "unverified" and "not authenticated" in row.error
    assert entries(row.id) == [] and row.member_id is None


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "X-Autoreply: yes",
        "Precedence: bulk",
        "Precedence: auto_reply",
        "Precedence: junk",
    ],
)
def test_auto_replies_make_no_entries(db, header):
    ada = make_team()
    raw = (FIXTURES / "raw/windows-1252.eml").read_bytes()
    real = reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", ada, DAY).encode()
    raw = raw.replace(TO.encode(), real).replace(b"MIME-Version", header.encode() + b"\r\nMIME-Version")
    row = accept_and_process("raw", Payload(raw, "message/rfc822"))
    assert row.state == "ignored" and entries(row.id) == []


def test_a_delivery_status_notification_makes_no_entries(db):
    ada = make_team()
    real = reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", ada, DAY)
    dsn = (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nTo: {real}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.example.com>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; x@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    ).encode()
    row = accept_and_process("raw", Payload(dsn, "message/rfc822"))
    assert row.state == "ignored" and "delivery status" in row.error


def test_an_ses_s3_action_without_s3_settings_fails_with_the_reason_and_keeps_the_summary(db):
    env = json.loads((FIXTURES / "ses/notification_base64.json").read_text())
    msg = json.loads(env["Message"])
    del msg["content"]
    msg["receipt"]["action"] = {"type": "S3", "bucketName": "b", "objectKey": "k"}
    env["Message"] = json.dumps(msg)
    row = accept_and_process("ses", Payload(json.dumps(env).encode(), "text/plain"))
    assert row.state == "failed" and "s3://b/k: S3 is not configured" in row.error
    assert row.from_addr == "ada@example.com" and row.subject == "Re: Übersicht ✅"


def test_limits_hit_while_parsing_are_recorded_on_the_row(db):
    make_team()
    raw = (
        b"From: a@example.com\r\nMessage-ID: <cs@x>\r\nContent-Type: text/plain; charset=x-martian\r\n\r\nhi"
    )
    row = accept_and_process("raw", Payload(raw, "message/rfc822"))
    assert "unknown charset" in row.notes and row.state == "unverified"


def test_nul_characters_from_hostile_mail_are_stored_on_every_database(db):
    ada = make_team()
    real = reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", ada, DAY)
    raw = (
        f"From: A\x00da <ada@example.com>\r\nTo: {real}\r\nSubject: Re: x\x00y\r\nMessage-ID: <nul\x00@x>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nShipped\x00 it\r\n"
    ).encode()
    row = accept_and_process("raw", Payload(raw, "message/rfc822"))
    assert row.state == "processed" and "\x00" not in row.subject and entries(row.id)
