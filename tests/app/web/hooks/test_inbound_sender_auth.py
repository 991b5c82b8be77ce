"""Who may speak for a member, end to end: POST /inbound/{sendgrid,postmark,raw} -> the worker ->
the stored row and its entries. Forged Authentication-Results, the operator's authserv-id, SPF
vetoes, provider verdicts about another domain, and reply addresses past their window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.checkins.reply_tokens import reply_address
from app.checkins.teams import remove_member
from app.db import session
from app.models import Entry, InboundMessage, Member
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.app.web.hooks import test_inbound_providers as providers
from tests.app.web.hooks.test_inbound_providers import PM_AUTH, SG_AUTH, basic
from tests.fixtures.make_fixtures import multipart

SECRET = "test-secret-key-0123456789-abcdefXYZ"
TRUSTED = "mx.donebox.test"  # the operator's receiving host, named in AUTHSERV_IDS
FORGED = "Authentication-Results: mx.forged.example; spf=pass smtp.mailfrom=ada@example.com; " + (
    "dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
)
GOOD = f"Authentication-Results: {TRUSTED}; dkim=pass header.d=example.com header.s=s1"
SPF_FAIL = "Received-SPF: Fail (mailfrom) identity=mailfrom; envelope-from=ada@example.com"
PATHS = ("sendgrid", "postmark", "raw")
configure = providers.configure  # the fixture: set settings, then a client on an app built with them


def mime(n: int, headers: tuple[str, ...], to: str = "team@reply.test", body: str = "- Shipped it") -> str:
    lines = [
        *headers,
        "From: Ada <ada@example.com>",
        f"To: {to}",
        "Subject: Re: What did you get done today?",
        f"Message-ID: <auth-{n}@example.com>",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return "\r\n".join(lines) + f"\r\n\r\n{body}\r\n"


def post(client, path: str, n: int, headers: tuple[str, ...], *, spf: str = "none", sender: str = ""):
    """One reply by ``path`` (SendGrid raw mode, Postmark JSON or /inbound/raw); its stored id."""
    raw = mime(n, headers)
    if path == "sendgrid":
        envelope = {"to": ["team@reply.test"], "from": sender or "ada@example.com"}
        body = multipart(
            [
                ("email", raw),
                ("envelope", json.dumps(envelope)),
                ("SPF", spf),
                ("dkim", "{}"),
                ("to", "team@reply.test"),
                ("from", "Ada <ada@example.com>"),
            ]
        )
        ctype = "multipart/form-data; boundary=xYzZY"
        r = client.post("/inbound/sendgrid", content=body, headers={"Content-Type": ctype, **basic(SG_AUTH)})
    elif path == "postmark":
        head = [h.split(": ", 1) for h in headers]
        doc = {
            "MessageID": f"pm-{n}",
            "FromFull": {"Email": "ada@example.com", "Name": "Ada"},
            "To": "team@reply.test",
            "ToFull": [{"Email": "team@reply.test", "Name": "", "MailboxHash": ""}],
            "OriginalRecipient": "team@reply.test",
            "Subject": "Re: What did you get done today?",
            "TextBody": "- Shipped it",
            "Headers": [{"Name": k, "Value": v} for k, v in head]
            + [{"Name": "Message-ID", "Value": f"<auth-{n}@example.com>"}],
        }
        r = client.post(
            "/inbound/postmark",
            content=json.dumps(doc).encode(),
            headers={"Content-Type": "application/json", **basic(PM_AUTH)},
        )
    else:
        r = client.post(
            "/inbound/raw",
            content=raw.encode(),
            headers={"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"},
        )
    assert r.status_code in (200, 202), r.text
    drain()
    return r.json()["id"]


def outcome(iid: int) -> tuple[InboundMessage, list]:
    with session() as s:
        row = s.get(InboundMessage, iid)
        made = s.execute(select(Entry.day, Entry.text).where(Entry.inbound_id == iid)).all()
        return row, [tuple(e) for e in made]


@pytest.mark.parametrize("path", PATHS)
def test_a_forged_authentication_results_header_speaks_for_no_one(configure, path):
    client = configure(AUTHSERV_IDS=TRUSTED)
    make_team()
    row, made = outcome(post(client, path, 1, (FORGED,)))
    assert row.state == "unverified" and row.member_id is None and made == []
    assert "From is not authenticated" in row.error and "mx.forged.example" in row.error


@pytest.mark.parametrize("path", PATHS)
def test_with_no_authserv_id_configured_no_header_is_believed(configure, path):
    client = configure(AUTHSERV_IDS=None)
    make_team()
    row, made = outcome(post(client, path, 2, (GOOD,)))
    assert row.state == "unverified" and made == [] and "AUTHSERV_IDS" in row.error


@pytest.mark.parametrize("path", PATHS)
def test_dkim_pass_from_the_operators_authserv_id_identifies_the_member(configure, path):
    client = configure(AUTHSERV_IDS=f"other.example, {TRUSTED}")
    ada = make_team()
    row, made = outcome(post(client, path, 3, (GOOD, FORGED)))
    assert row.state == "processed" and row.member_id == ada, row.error
    assert [text for _, text in made] == ["Shipped it"]


@pytest.mark.parametrize("path", PATHS)
def test_received_spf_fail_beside_a_trusted_pass_vetoes_the_sender(configure, path):
    client = configure(AUTHSERV_IDS=TRUSTED)
    make_team()
    row, made = outcome(post(client, path, 4, (GOOD, SPF_FAIL)))
    assert row.state == "unverified" and made == []
    assert "spf=fail" in row.error and "vetoes" in row.error


@pytest.mark.parametrize("header", [f"{TRUSTED}; spf=pass smtp.mailfrom=ada@example.com; dmarc=fail"])
def test_a_dmarc_fail_vetoes_even_a_trusted_spf_pass(configure, header):
    client = configure(AUTHSERV_IDS=TRUSTED)
    make_team()
    row, made = outcome(post(client, "raw", 5, (f"Authentication-Results: {header}",)))
    assert row.state == "unverified" and made == [] and "dmarc=fail" in row.error


def test_a_trusted_dkim_pass_for_another_domain_does_not_authenticate_the_from(configure):
    client = configure(AUTHSERV_IDS=TRUSTED)
    make_team()
    header = f"Authentication-Results: {TRUSTED}; dkim=pass header.d=attacker.example"
    row, made = outcome(post(client, "raw", 6, (header,)))
    assert row.state == "unverified" and made == []
    assert "attacker.example" in row.error and "not about the From domain example.com" in row.error


def test_sendgrids_own_spf_pass_counts_only_for_the_envelope_senders_domain(configure):
    client = configure(AUTHSERV_IDS=None)
    ada = make_team()
    row, made = outcome(post(client, "sendgrid", 7, (), spf="pass", sender="bounce@attacker.example"))
    assert row.state == "unverified" and made == [] and "attacker.example" in row.error
    row, made = outcome(post(client, "sendgrid", 8, (), spf="pass", sender="ada@example.com"))
    assert row.state == "processed" and row.member_id == ada and len(made) == 1


def today_utc():
    return datetime.now(UTC).date()  # the worker processes with the real clock; the team is on UTC


def reply_with_token(client, n: int, member_id: int, day) -> int:
    to = reply_address(SECRET, "reply.test", member_id, day)
    r = client.post(
        "/inbound/raw",
        content=mime(n, (), to=to, body=f"- Reply {n}").encode(),
        headers={"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"},
    )
    assert r.status_code == 202, r.text
    drain()
    return r.json()["id"]


def test_a_reply_address_older_than_the_window_is_stored_unverified_with_the_reason(configure):
    client = configure(REPLY_WINDOW_DAYS=None)  # the default: 30 days
    ada = make_team()
    day = today_utc() - timedelta(days=31)
    row, made = outcome(reply_with_token(client, 10, ada, day))
    assert row.state == "unverified" and made == [] and row.member_id is None
    assert row.error == f"reply address for {day.isoformat()} expired after 30 days"


def test_the_window_is_configurable(configure):
    client = configure(REPLY_WINDOW_DAYS="3")
    ada = make_team()
    row, _ = outcome(reply_with_token(client, 11, ada, today_utc() - timedelta(days=4)))
    assert row.state == "unverified" and "expired after 3 days" in row.error
    day = today_utc() - timedelta(days=2)
    row, made = outcome(reply_with_token(client, 12, ada, day))
    assert row.state == "processed" and made == [(day, "Reply 12")]


def test_a_removed_members_reply_address_no_longer_works(configure):
    client = configure(REPLY_WINDOW_DAYS=None)
    ada = make_team()
    with session() as s:
        remove_member(s, ada)
    row, made = outcome(reply_with_token(client, 13, ada, today_utc()))
    assert row.state == "unverified" and made == [] and "no longer on the team" in row.error
    with session() as s:
        assert s.get(Member, ada).active is False


def test_yesterdays_reply_address_still_makes_entries_filed_under_yesterday(configure):
    client = configure(REPLY_WINDOW_DAYS=None)
    ada = make_team()
    yesterday = today_utc() - timedelta(days=1)
    row, made = outcome(reply_with_token(client, 14, ada, yesterday))
    assert row.state == "processed" and row.member_id == ada and row.day == yesterday
    assert made == [(yesterday, "Reply 14")]
