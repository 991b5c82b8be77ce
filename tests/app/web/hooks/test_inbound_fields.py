"""POST /inbound/{provider} end to end with odd but real payload shapes: addresses in another case,
fields missing or malformed, hostile attachment names. Stored (never refused), identified, shown."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest

from app.checkins.reply_tokens import reply_address
from app.db import session
from app.models import InboundMessage
from jobs.broker import drain
from parsers.providers import PROVIDERS
from tests.app.checkins.test_loop import make_team
from tests.app.web.conftest import sign_in
from tests.app.web.hooks import test_inbound_providers as providers
from tests.app.web.hooks.test_inbound_providers import MG_KEY, PM_AUTH, SG_AUTH, basic
from tests.app.web.hooks.test_inbound_sender_auth import SECRET, TRUSTED, outcome
from tests.fixtures.make_fixtures import multipart

configure = providers.configure  # the fixture: set settings, then a client on an app built with them
FORM = "multipart/form-data; boundary=xYzZY"
DKIM = f"Authentication-Results: {TRUSTED}; dkim=pass header.d=example.com header.s=s1"


def _today():
    return datetime.now(UTC).date()  # the worker processes with the real clock; the team is on UTC


def send(client, provider: str, body: bytes, ctype: str, headers: dict | None = None):
    r = client.post(f"/inbound/{provider}", content=body, headers={"Content-Type": ctype, **(headers or {})})
    assert r.status_code == PROVIDERS[provider].created_status, r.text
    drain()
    return r.json()["id"]


def mailgun_signed(fields: list[tuple]) -> bytes:
    ts, token = str(int(time.time())), hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:50]
    sig = hmac.new(MG_KEY.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return multipart([*fields, ("timestamp", ts), ("token", token), ("signature", sig)])


# ------------------------------------------------------------------ identity: case kept, compared folded


def reply_from(client, path: str) -> int:
    """Ada's reply, From ``Ada@Example.COM``, authenticated, through ``path``; its stored id."""
    mime = (
        f"{DKIM}\r\nFrom: Ada Lovelace <Ada@Example.COM>\r\nTo: team@reply.test\r\n"
        "Subject: Re: today\r\nMessage-ID: <case-1@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n- Shipped it\r\n"
    )
    if path == "sendgrid":
        envelope = json.dumps({"to": ["team@reply.test"], "from": "Ada@Example.COM"})
        body = multipart([("email", mime), ("envelope", envelope), ("SPF", "pass"), ("dkim", "{}")])
        return send(client, "sendgrid", body, FORM, basic(SG_AUTH))
    if path == "postmark":  # the older document shape: no FromFull, From as "Name" <addr>
        doc = {
            "From": '"Ada Lovelace" <Ada@Example.COM>',
            "To": "team@reply.test",
            "Subject": "Re: today",
            "MessageID": "pm-case-1",
            "TextBody": "- Shipped it",
            "Headers": [{"Name": "Authentication-Results", "Value": DKIM.split(": ", 1)[1]}],
        }
        return send(client, "postmark", json.dumps(doc).encode(), "application/json", basic(PM_AUTH))
    return send(
        client, "raw", mime.encode(), "message/rfc822", {"Authorization": "Bearer test-inbound-token"}
    )


@pytest.mark.parametrize("path", ["sendgrid", "postmark", "raw"])
def test_a_reply_from_a_differently_cased_address_is_the_member_and_the_case_is_stored(configure, path):
    client = configure(AUTHSERV_IDS=TRUSTED)
    ada = make_team()
    row, made = outcome(reply_from(client, path))
    assert row.state == "processed" and row.member_id == ada, row.error
    assert row.from_addr == "Ada@Example.COM" and [t for _, t in made] == ["Shipped it"]


def test_a_reply_address_in_capitals_still_names_its_member(configure):
    client = configure(REPLY_WINDOW_DAYS=None)
    ada = make_team()
    to = reply_address(SECRET, "reply.test", ada, _today()).upper()
    mime = f"From: ada@example.com\r\nTo: {to}\r\nSubject: Re\r\n\r\n- Capital reply\r\n"
    row, made = outcome(
        send(client, "raw", mime.encode(), "message/rfc822", {"Authorization": "Bearer test-inbound-token"})
    )
    assert row.state == "processed" and row.member_id == ada and [t for _, t in made] == ["Capital reply"]


# ------------------------------------------------- every provider: odd fields stored, not refused


def test_sendgrid_parsed_mode_without_cc_or_to_fields_is_stored_and_read_from_its_headers(configure):
    client = configure(REPLY_WINDOW_DAYS=None)
    ada = make_team()
    to = reply_address(SECRET, "reply.test", ada, _today())
    headers = f"From: Ada <Ada@Example.COM>\r\nTo: <{to}>\r\nCc: Bob <Bob@Example.com>\r\nSubject: Re\r\n"
    body = multipart([("headers", headers), ("from", "Ada <Ada@Example.COM>"), ("text", "- Via headers")])
    iid = send(client, "sendgrid", body, FORM, basic(SG_AUTH))
    row, made = outcome(iid)
    assert row.state == "processed" and row.member_id == ada and [t for _, t in made] == ["Via headers"]


def test_mailgun_with_malformed_message_headers_is_stored_and_its_to_field_names_the_member(configure):
    client = configure(REPLY_WINDOW_DAYS=None)
    ada = make_team()
    to = reply_address(SECRET, "reply.test", ada, _today())
    fields = [
        ("from", "Ada <Ada@Example.COM>"),
        ("subject", "Re"),
        ("body-plain", "- Via the To field"),
        ("message-headers", '[["To", "broken'),
        ("To", f"<{to}>"),
        ("Message-Id", "<mg-fields@example.com>"),
    ]
    row, made = outcome(send(client, "mailgun", mailgun_signed(fields), FORM))
    assert row.state == "processed" and row.member_id == ada and [t for _, t in made] == ["Via the To field"]
    assert row.message_id == "<mg-fields@example.com>"


def test_a_postmark_document_missing_optional_fields_is_stored_not_refused(configure):
    client = configure(REPLY_WINDOW_DAYS=None)
    ada = make_team()
    doc = {"From": "Ada <Ada@Example.COM>", "To": reply_address(SECRET, "reply.test", ada, _today())}
    row, made = outcome(
        send(
            client,
            "postmark",
            json.dumps({**doc, "TextBody": "- Bare"}).encode(),
            "application/json",
            basic(PM_AUTH),
        )
    )
    assert row.state == "processed" and row.member_id == ada and [t for _, t in made] == ["Bare"]


# ------------------------------------------------------------------ attachment names: the safe one shown


def test_a_hostile_attachment_name_is_shown_safe_on_the_page_and_in_the_api(configure, sent):
    from app.accounts.users import make_operator
    from app.models import utcnow
    from tests.app.web.api.test_inbound import token

    client = configure()
    make_team()
    with session() as s:
        make_operator(s, "ada@example.com", now=utcnow())
    info = {"attachment1": {"filename": "\\share\\mail\\x.msg", "type": "application/vnd.ms-outlook"}}
    body = multipart(
        [
            ("from", "Ada <ada@example.com>"),
            ("to", "team@reply.test"),
            ("text", "- see the file"),
            ("attachment-info", json.dumps(info)),
            ("attachment1", b"msg bytes", "x.msg", "application/vnd.ms-outlook"),
        ]
    )
    iid = send(client, "sendgrid", body, FORM, basic(SG_AUTH))
    doc = client.get(f"/api/inbound/{iid}", headers=token()).json()
    assert [(a["filename"], a["raw_filename"]) for a in doc["attachments"]] == [
        ("x.msg", "\\share\\mail\\x.msg")
    ]
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/inbound/{iid}").text
    assert "x.msg" in page and "\\share\\mail" not in page


def test_stored_rows_keep_the_from_address_as_received(configure):
    client = configure()
    make_team()
    doc = {"From": '"Ada" <Ada@Example.COM>', "MessageID": "pm-row", "TextBody": "- x"}
    iid = send(client, "postmark", json.dumps(doc).encode(), "application/json", basic(PM_AUTH))
    with session() as s:
        assert s.get(InboundMessage, iid).from_addr == "Ada@Example.COM"
