"""Bounce and complaint reports (tests/fixtures/dsn/: Postfix, Gmail, Exchange, Exim, qmail, ARF)."""

import re
from pathlib import Path

import pytest

from parsers.dsn import delivery_events, field_blocks, parse_report
from parsers.message import parse_mime

DSN = Path(__file__).resolve().parent.parent / "fixtures" / "dsn"

# fixture: (format, recipient, action, status, our event kind, the original Message-ID)
CASES = {
    "postfix_user_unknown.eml": (
        "dsn",
        "bob@example.com",
        "failed",
        "5.1.1",
        "bounce",
        "postfix-7f3c2a9e1b8d",
    ),
    "postfix_delayed.eml": (
        "dsn",
        "carol@slow.example.org",
        "delayed",
        "4.4.1",
        "deferred",
        "postfix-delay-91ab",
    ),
    "gmail_no_such_user.eml": (
        "dsn",
        "dave@nowhere.example",
        "failed",
        "5.1.1",
        "bounce",
        "gmail-0c9d8e7f6a5b",
    ),
    "exchange_online_not_found.eml": (
        "dsn",
        "erin@contoso.example",
        "failed",
        "5.1.10",
        "bounce",
        "exchange-5d4c",
    ),
    "exchange_mailbox_full.eml": (
        "dsn",
        "frank@fabrikam.example",
        "failed",
        "5.2.2",
        "soft_bounce",
        "exchange-full",
    ),
    "exim_plain.eml": ("text", "gina@hosting.example", "failed", "5.1.1", "bounce", "exim-6e5d4c3b2a19"),
    "qmail_plain.eml": ("text", "hank@oldhost.example", "failed", "5.1.1", "bounce", "qmail-a1b2c3d4e5f6"),
    "arf_complaint.eml": (
        "arf",
        "ivy@mailprovider.example",
        "complained",
        "",
        "complaint",
        "arf-9f8e7d6c5b4a",
    ),
}


def original_id(name: str) -> str:
    """The full Message-ID a fixture's original message had (CASES keeps its start)."""
    start = CASES[name][5]
    found = re.search(rb"Message-ID: (<" + start.encode() + rb"[^>]*>)", (DSN / name).read_bytes())
    return found.group(1).decode()


def report(name: str, with_raw: bool = True):
    raw = (DSN / name).read_bytes()
    return parse_report(parse_mime(raw), raw if with_raw else b"")


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_report_names_its_recipient_status_and_original_message(name):
    fmt, rcpt, action, status, kind, _ = CASES[name]
    original = original_id(name)
    r = report(name)
    assert r is not None and r.kind == fmt and r.original_message_id == original
    first = r.recipients[0]
    assert (first.recipient, first.action, first.status, first.kind) == (rcpt, action, status, kind)
    events = delivery_events(r, "inbound:7")
    assert [(e.kind, e.event_id, e.recipient, e.message_ids) for e in events] == [
        (kind, "dsn:inbound:7", rcpt, (original,))
    ]
    assert all(e.source == "dsn" for e in events)


def test_the_diagnostic_keeps_the_remote_servers_words_unfolded():
    first = report("gmail_no_such_user.eml").recipients[0]
    assert first.diagnostic.startswith("550-5.1.1 The email account that you tried to reach does not exist.")
    assert "gsmtp" in first.diagnostic and "\n" not in first.diagnostic
    assert first.remote_mta.startswith("gmail-smtp-in.l.google.com.")


@pytest.mark.parametrize(
    "name", ["postfix_user_unknown.eml", "exchange_online_not_found.eml", "gmail_no_such_user.eml"]
)
def test_without_raw_mime_the_parsed_email_still_gives_recipient_and_status(name):
    fmt, rcpt, _, _, kind, _ = CASES[name]
    original = original_id(name)
    r = report(name, with_raw=False)
    assert r.kind == fmt and (r.recipients[0].recipient, r.recipients[0].kind) == (rcpt, kind)
    # the parsed form drops enclosed headers; quoted headers or In-Reply-To still name the original
    assert r.original_message_id in (original, "")
    if name != "postfix_user_unknown.eml":
        assert r.original_message_id == original


def test_a_reply_that_talks_about_undeliverable_mail_is_not_a_report():
    raw = (
        b"From: Bob <bob@example.com>\r\nTo: reply+1-20261123-aaaa@reply.test\r\n"
        b"Subject: Re: Undeliverable: What did you get done today?\r\n"
        b"In-Reply-To: <abc@mail.test>\r\nMessage-ID: <r1@example.com>\r\n\r\n"
        b"Fixed the bug where mail could not be delivered; user unknown errors are gone.\r\n"
    )
    assert parse_report(parse_mime(raw), raw) is None


def test_a_daemon_message_that_is_no_bounce_is_not_a_report():
    raw = b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Postmaster notice\r\n\r\nYour quota is fine.\r\n"
    assert parse_report(parse_mime(raw), raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff" * 100,
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n",
        b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: message/delivery-status\r\n\r\ngarbage without fields\r\n--x--\r\n",
    ],
)
def test_broken_reports_never_raise(raw):
    r = parse_report(parse_mime(raw), raw)
    assert r is None or r.recipients == ()


def test_a_dsn_about_several_recipients_gives_one_event_each():
    raw = (
        (DSN / "postfix_user_unknown.eml")
        .read_bytes()
        .replace(
            b"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>",
            b"Diagnostic-Code: smtp; 550 5.1.1 gone\n\nFinal-Recipient: rfc822; zoe@example.com\n"
            b"Action: delayed\nStatus: 4.2.2\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.com>",
        )
    )
    r = parse_report(parse_mime(raw), raw)
    assert [(x.recipient, x.kind) for x in r.recipients] == [
        ("bob@example.com", "bounce"),
        ("zoe@example.com", "deferred"),
    ]
    assert [e.event_id for e in delivery_events(r, "inbound:3")] == ["dsn:inbound:3", "dsn:inbound:3/1"]


def test_field_blocks_unfold_continuations_and_split_on_blank_lines():
    text = "Reporting-MTA: dns; a\r\n\r\nFinal-Recipient: rfc822; x@y\r\nDiagnostic-Code: smtp; 550\r\n  more"
    assert field_blocks(text) == [
        {"reporting-mta": "dns; a"},
        {"final-recipient": "rfc822; x@y", "diagnostic-code": "smtp; 550 more"},
    ]


def test_a_not_spam_feedback_report_applies_nothing():
    raw = (
        (DSN / "arf_complaint.eml").read_bytes().replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    )
    r = parse_report(parse_mime(raw), raw)
    assert r.feedback_type == "not-spam" and delivery_events(r, "inbound:1") == []
