"""Every provider field path: addresses as received, names split from addresses in every shape,
and form or JSON fields that are missing or malformed read from the mail's own headers.

The payloads are written here from each provider's documented format (SendGrid Inbound Parse,
Mailgun routes, Postmark's inbound webhook, old and new document shapes)."""

from __future__ import annotations

import json
import re
from email.parser import HeaderParser
from email.policy import compat32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.message import InboundEmail, address_key, addresses, first_values
from parsers.providers import PROVIDERS, Payload, PayloadError
from parsers.providers.base import decode_words, header_block
from tests.fixtures.make_fixtures import multipart
from tests.parsers.test_mime_differential import CORPUS

TO = "reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test"
FORM = "multipart/form-data; boundary={b}"
HEADERS = "\r\n".join(
    [
        "Received: from mx.example.com by mx.sendgrid.net; Mon, 23 Nov 2026 16:53:05 +0000",
        'From: "Ada Lovelace" <Ada@Example.COM>',
        f"To: Team <{TO}>",
        "Cc: Grace Hopper <Grace.Hopper@Example.com>, bob@example.com",
        "Reply-To: Ada <Ada@Example.COM>",
        "Subject: Re: What did you get done today?",
        "Date: Mon, 23 Nov 2026 17:53:04 +0100",
        "Message-ID: <fields-1@mail.example.com>",
        "In-Reply-To: <reminder-1-20261123@mail.test>",
        "MIME-Version: 1.0",
    ]
)


def form(fields: list[tuple], boundary: str = "xYzZY") -> Payload:
    return Payload(multipart(fields, boundary), FORM.format(b=boundary))


def parse(provider: str, p: Payload):
    return PROVIDERS[provider].keys(p), PROVIDERS[provider].parse(p)


def postmark(doc: dict) -> Payload:
    return Payload(json.dumps(doc).encode(), "application/json")


# ------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Ada@Example.COM", [("", "Ada@Example.COM")]),
        ('"Lovelace, Ada" <Ada@Example.COM>', [("Lovelace, Ada", "Ada@Example.COM")]),
        ("Ada <ADA@example.com>, bob@EXAMPLE.com", [("Ada", "ADA@example.com"), ("", "bob@EXAMPLE.com")]),
    ],
)
def test_addresses_are_split_from_their_names_and_keep_their_case(value, expected):
    assert addresses(value) == expected


def test_the_identity_key_ignores_case_and_surrounding_space():
    assert address_key(" Ada@Example.COM ") == address_key("ada@example.com") == "ada@example.com"
    assert address_key("Ada@Example.COM") != address_key("ada2@example.com")


# ------------------------------------------------------------------ SendGrid (parsed mode)


def sendgrid_fields(**drop_or_set) -> list[tuple]:
    fields = {
        "headers": HEADERS,
        "dkim": "{@example.com : pass}",
        "to": f"Team <{TO}>",
        "from": '"Ada Lovelace" <Ada@Example.COM>',
        "text": "- Shipped the export\n",
        "sender_ip": "192.0.2.10",
        "envelope": json.dumps({"to": [TO], "from": "Ada@Example.COM"}),
        "subject": "Re: What did you get done today?",
        "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8", "text": "utf-8"}),
        "SPF": "pass",
    }
    for k, v in drop_or_set.items():
        if v is None:
            fields.pop(k, None)
        else:
            fields[k] = v
    return list(fields.items())


def test_sendgrid_without_a_cc_field_takes_the_cc_from_the_headers_field():
    _, email = parse("sendgrid", form(sendgrid_fields()))
    assert email.cc == ("Grace.Hopper@Example.com", "bob@example.com")
    assert (email.from_name, email.from_addr) == ("Ada Lovelace", "Ada@Example.COM")
    assert email.reply_to == ("Ada@Example.COM",) and email.to == (TO,)


def test_sendgrid_fields_missing_or_holding_no_address_fall_back_to_the_headers():
    fields = sendgrid_fields(to=None, subject=None, **{"from": "undisclosed"})
    _, email = parse("sendgrid", form(fields))
    assert (email.from_name, email.from_addr) == ("Ada Lovelace", "Ada@Example.COM")
    assert email.to == (TO,) and email.subject == "Re: What did you get done today?"
    assert email.message_id == "<fields-1@mail.example.com>"


def test_sendgrid_with_no_headers_field_is_still_mail_and_dedupes_on_its_fields():
    keys, email = parse("sendgrid", form(sendgrid_fields(headers=None)))
    assert email.from_addr == "Ada@Example.COM" and email.text.startswith("- Shipped")
    again = PROVIDERS["sendgrid"].keys(form(sendgrid_fields(headers=None), boundary="other-boundary"))
    other = PROVIDERS["sendgrid"].keys(form(sendgrid_fields(headers=None, text="- Another day\n")))
    assert keys.header_hash == again.header_hash != other.header_hash


# ------------------------------------------------------------------ Mailgun (parsed route posts)


def mailgun_fields(message_headers: str) -> list[tuple]:
    return [
        ("recipient", TO),
        ("sender", "Ada@Example.COM"),
        ("from", '"Ada Lovelace" <Ada@Example.COM>'),
        ("subject", "Re: What did you get done today?"),
        ("body-plain", "- Shipped the export\n"),
        ("stripped-text", "- Shipped the export"),
        ("timestamp", "1795452784"),
        ("token", "0f2b8c1d5e6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b"),
        ("signature", "ab" * 32),
        ("message-headers", message_headers),
        ("To", f"Team <{TO}>"),
        ("Cc", "Grace Hopper <Grace.Hopper@Example.com>"),
        ("Message-Id", "<fields-2@mail.example.com>"),
        ("In-Reply-To", "<reminder-1-20261123@mail.test>"),
        ("Date", "Mon, 23 Nov 2026 17:53:04 +0100"),
        ("X-Mailgun-Spf", "Pass"),
    ]


@pytest.mark.parametrize("broken", ['[["To", "x"]', "not json", '{"To": "x"}', '[["To"]]'])
def test_mailgun_with_malformed_message_headers_reads_the_posted_header_fields(broken):
    keys, email = parse("mailgun", form(mailgun_fields(broken)))
    assert keys.message_id == email.message_id == "<fields-2@mail.example.com>"
    assert keys.envelope_to == (TO,) and email.to == (TO,)
    assert email.cc == ("Grace.Hopper@Example.com",)
    assert email.in_reply_to == "<reminder-1-20261123@mail.test>"
    assert email.date.isoformat() == "2026-11-23T16:53:04+00:00"
    assert (email.from_name, email.from_addr) == ("Ada Lovelace", "Ada@Example.COM")
    # a verdict only message-headers could prove is not taken from a lone form field
    assert email.spf == "" and any("message-headers" in n for n in email.notes)


def test_mailgun_with_well_formed_message_headers_keeps_them_first():
    pairs = [["To", f"<{TO}>"], ["Message-Id", "<from-json@mail.example.com>"], ["X-Mailgun-Spf", "Pass"]]
    keys, email = parse("mailgun", form(mailgun_fields(json.dumps(pairs))))
    assert keys.message_id == "<from-json@mail.example.com>" and email.spf == "pass"
    assert email.cc == ("Grace.Hopper@Example.com",)  # not in message-headers: the posted field
    assert email.notes == ()


def test_mailgun_retries_without_message_headers_dedupe_though_the_signature_changes():
    fields = [f for f in mailgun_fields("") if f[0] != "message-headers"]
    first = PROVIDERS["mailgun"].keys(form(fields))
    resigned = [(k, "cd" * 32 if k == "signature" else v) for k, v in fields]
    assert PROVIDERS["mailgun"].keys(form(resigned)).header_hash == first.header_hash


def test_a_mailgun_post_with_only_html_is_mail():
    fields = [("recipient", TO), ("from", "Ada@Example.COM"), ("body-html", "<p>- Shipped it</p>")]
    _, email = parse("mailgun", form(fields))
    assert email.text == "- Shipped it" and email.from_addr == "Ada@Example.COM"


# ------------------------------------------------------------------ Postmark (old and new shapes)


def test_postmarks_older_shape_splits_the_name_from_the_from_field():
    doc = {
        "From": '"Ada Lovelace" <Ada@Example.COM>',
        "To": f'"Team" <{TO}>',
        "Cc": "Grace.Hopper@Example.com",
        "Subject": "Re: What did you get done today?",
        "MessageID": "a8c1040e-0a1b-4d1f-9f67-2b1d0d3e6e01",
        "Date": "Mon, 23 Nov 2026 17:53:04 +0100",
        "MailboxHash": "",
        "TextBody": "- Shipped the export",
        "HtmlBody": "",
        "Tag": "",
        "Headers": [{"Name": "Message-ID", "Value": "<fields-3@mail.example.com>"}],
        "Attachments": [],
    }
    keys, email = parse("postmark", postmark(doc))
    assert (email.from_name, email.from_addr) == ("Ada Lovelace", "Ada@Example.COM")
    assert email.to == (TO,) and email.cc == ("Grace.Hopper@Example.com",)
    assert keys.message_id == "<fields-3@mail.example.com>" and keys.provider_id == doc["MessageID"]


def test_postmarks_current_shape_keeps_fromfull_and_tofull_as_received():
    doc = {
        "From": "Ada@Example.COM",
        "FromName": "Ada Lovelace",
        "FromFull": {"Email": "Ada@Example.COM", "Name": "Ada Lovelace", "MailboxHash": ""},
        "ToFull": [{"Email": TO, "Name": "Team", "MailboxHash": "1-20261123-aaaaaaaaaaaaaaaa"}],
        "CcFull": [{"Email": "Grace.Hopper@Example.com", "Name": "Grace Hopper", "MailboxHash": ""}],
        "MessageID": "b2",
        "TextBody": "- Shipped",
    }
    _, email = parse("postmark", postmark(doc))
    assert (email.from_name, email.from_addr) == ("Ada Lovelace", "Ada@Example.COM")
    assert email.to == (TO,) and email.cc == ("Grace.Hopper@Example.com",)


@pytest.mark.parametrize(
    "doc",
    [
        {"From": "ada@example.com", "TextBody": "- Shipped it"},
        {"FromFull": {"Email": "ada@example.com"}, "HtmlBody": "<p>- Shipped it</p>"},
        {
            "MessageID": "c3",
            "From": "ada@example.com",
            "FromFull": None,
            "ToFull": None,
            "CcFull": "nope",
            "Headers": None,
            "Attachments": None,
            "Subject": None,
            "Date": 12,
            "TextBody": "- Shipped it",
        },
    ],
)
def test_a_postmark_document_missing_optional_fields_is_accepted_and_read(doc):
    keys, email = parse("postmark", postmark(doc))
    assert email.from_addr == "ada@example.com" and "Shipped it" in email.text
    assert keys.raw_mime is None


def test_postmark_fields_missing_from_the_document_are_read_from_its_headers():
    doc = {
        "MessageID": "d4",
        "TextBody": "- Shipped",
        "Headers": [{"Name": k, "Value": v} for k, v in (h.split(": ", 1) for h in HEADERS.split("\r\n"))],
    }
    _, email = parse("postmark", postmark(doc))
    assert (email.from_name, email.from_addr) == ("Ada Lovelace", "Ada@Example.COM")
    assert email.to == (TO,) and email.cc == ("Grace.Hopper@Example.com", "bob@example.com")
    assert email.subject == "Re: What did you get done today?" and email.date is not None
    assert email.reply_to == ("Ada@Example.COM",)


def test_postmark_documents_with_no_ids_dedupe_on_their_content_not_on_nothing():
    one = PROVIDERS["postmark"].keys(postmark({"From": "ada@example.com", "TextBody": "- one"}))
    two = PROVIDERS["postmark"].keys(postmark({"From": "ada@example.com", "TextBody": "- two"}))
    retry = PROVIDERS["postmark"].keys(postmark({"From": "ada@example.com", "TextBody": "- one"}))
    assert one.header_hash == retry.header_hash != two.header_hash


@pytest.mark.parametrize("doc", [{}, {"hello": 1}, {"Type": "Notification"}])
def test_json_with_none_of_postmarks_fields_is_still_refused(doc):
    with pytest.raises(PayloadError, match="not a Postmark"):
        PROVIDERS["postmark"].keys(postmark(doc))


# ---------------------------------------------------------------- a header block, read fast


def email_package_reading(text: str) -> tuple[tuple[str, str], ...]:
    """What header_block gave before it read plain blocks itself: the email package's parse."""
    msg = HeaderParser(policy=compat32).parsestr(text.replace("\r\n", "\n").rstrip("\n") + "\n\n")
    return tuple((k, decode_words(re.sub(r"\s*\n\s+", " ", str(v)))) for k, v in msg.items())


_NAMES = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
_LINES = st.one_of(
    st.tuples(_NAMES, st.text(max_size=40)).map(
        lambda f: f"{f[0]}: {f[1]}"
    ),  # a field, maybe no colon in name
    st.text(max_size=30).map(lambda v: " " + v),  # a continuation
    st.text(max_size=30).map(lambda v: "\t" + v),
    st.sampled_from(["From ada@example.com Mon Nov 23", "no colon here", ": empty name", "=?utf-8?q?x?="]),
    st.sampled_from(["Subject: =?UTF-8?B?w5FhbmTDug==?=", "To: =?iso-8859-1?q?Ad=E9?= <a@b.c>", "X: a\rb"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_LINES, max_size=12), st.sampled_from(["\n", "\r\n"]))
def test_a_header_block_reads_as_the_email_package_reads_it(lines, end):
    text = end.join(line.replace("\n", " ") for line in lines)
    assert header_block(text) == email_package_reading(text)


def test_every_header_block_of_the_mime_corpus_reads_as_the_email_package_reads_it():
    blocks = [
        raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for raw in (p.read_bytes() for p in CORPUS.rglob("*") if p.is_file())
    ]
    assert len(blocks) > 150
    assert [header_block(b) for b in blocks] == [email_package_reading(b) for b in blocks]


field_names = st.sampled_from(["From", "FROM", "from", "To", "Cc", "Date", "Message-ID", "message-id", "X-Ä"])


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(field_names, st.text(max_size=12)), max_size=8), asked=field_names)
def test_a_field_asked_for_is_the_first_of_its_name_in_any_case(pairs, asked):
    expected = next((v for k, v in pairs if k.lower() == asked.lower()), "")
    assert InboundEmail(headers=tuple(pairs)).header(asked) == expected
    assert first_values(pairs).get(asked.lower(), "") == expected


def test_sendgrid_reads_the_first_of_a_repeated_header_field():
    repeated = [
        "Date: Mon, 23 Nov 2026 16:53:05 +0000",
        "DATE: Tue, 24 Nov 2026 09:00:00 +0000",
        "Message-ID: <one@x.example>",
        "message-id: <two@x.example>",
        "Reply-To: a@x.example",
        "REPLY-TO: b@x.example",
    ]
    _, email = parse("sendgrid", form(sendgrid_fields(headers="\r\n".join(repeated))))
    assert email.date.day == 23 and email.message_id == "<one@x.example>"
    assert email.reply_to == ("a@x.example",) and email.header("MESSAGE-ID") == "<one@x.example>"
