"""Keys.fingerprint: equal across a provider's retries (new boundary, signature, JSON layout, trace
fields), different when the mail's content differs, whatever the provider."""

from __future__ import annotations

import json
import re

import pytest

from app.inbound.accept import dedupe_key, message_key
from parsers.message import mime_fingerprint
from parsers.providers import PROVIDERS, Payload
from tests.parsers.test_providers import FIXTURES, payload


def reboundary(p: Payload, new: str = "RetryBoundary7f3a") -> Payload:
    """The same form posted again under another multipart boundary."""
    old = p.content_type.split("boundary=", 1)[1]
    return Payload(p.body.replace(old.encode(), new.encode()), p.content_type.replace(old, new))


def with_fields(p: Payload, fields: dict[str, str]) -> Payload:
    """``p`` with the values of these form fields replaced (urlencoded or multipart)."""
    body = p.body
    for name, value in fields.items():
        if p.content_type.startswith("application/x-www-form-urlencoded"):
            body = re.sub(rf"(^|&){name}=[^&]*".encode(), rf"\g<1>{name}={value}".encode(), body)
        else:
            body = re.sub(
                rf'(name="{name}"\r\n\r\n)[^\r]*'.encode(), lambda m, v=value: m.group(1) + v.encode(), body
            )
    return Payload(body, p.content_type)


def resign(p: Payload, ts: str = "1799999999", token: str = "f" * 50, sig: str = "a" * 64) -> Payload:
    """A Mailgun retry: new timestamp, token and signature fields (and, for a form, a new boundary)."""
    again = with_fields(p, {"timestamp": ts, "token": token, "signature": sig})
    return reboundary(again) if "boundary=" in p.content_type else again


def edited(p: Payload, old: bytes, new: bytes) -> Payload:
    assert old in p.body
    return Payload(p.body.replace(old, new), p.content_type)


def json_payload(doc: dict, **dumps) -> Payload:
    return Payload(json.dumps(doc, **dumps).encode(), "application/json")


def postmark(name: str, **changes) -> dict:
    doc = json.loads((FIXTURES / "postmark" / name).read_text())
    return {**doc, **changes}


def ses(name: str, *, content=None, **envelope) -> dict:
    doc = json.loads((FIXTURES / "ses" / name).read_text())
    message = json.loads(doc["Message"])
    if content is not None:
        message["content"] = content(message["content"])
    return {**doc, "Message": json.dumps(message), **envelope}


# provider, first post, its retry (not byte-identical), the same Message-ID with another body
CASES = {
    "sendgrid parsed": (
        "sendgrid",
        payload("sendgrid/parsed_utf8.multipart"),
        reboundary(payload("sendgrid/parsed_utf8.multipart")),
        edited(payload("sendgrid/parsed_utf8.multipart"), b"billing export", b"billing import"),
    ),
    "sendgrid parsed with attachments": (
        "sendgrid",
        payload("sendgrid/parsed_attachments.multipart"),
        reboundary(payload("sendgrid/parsed_attachments.multipart")),
        edited(payload("sendgrid/parsed_attachments.multipart"), b"plain notes", b"other notes"),
    ),
    "sendgrid raw": (
        "sendgrid",
        payload("sendgrid/raw_mode.multipart"),
        reboundary(payload("sendgrid/raw_mode.multipart")),
        edited(payload("sendgrid/raw_mode.multipart"), b"Finished the", b"Started the"),
    ),
    "mailgun parsed form": (
        "mailgun",
        payload("mailgun/parsed_attachment.multipart"),
        resign(payload("mailgun/parsed_attachment.multipart")),
        edited(
            payload("mailgun/parsed_attachment.multipart"), b"merged the importer", b"reverted the importer"
        ),
    ),
    "mailgun parsed urlencoded": (
        "mailgun",
        payload("mailgun/parsed.urlencoded"),
        resign(payload("mailgun/parsed.urlencoded")),
        edited(payload("mailgun/parsed.urlencoded"), b"merged+the+importer", b"reverted+the+importer"),
    ),
    "mailgun mime": (
        "mailgun",
        payload("mailgun/mime_koi8r.multipart"),
        resign(payload("mailgun/mime_koi8r.multipart")),
        edited(payload("mailgun/mime_koi8r.multipart"), b"sales.csv", b"sales-2.csv"),
    ),
    "postmark parsed": (
        "postmark",
        json_payload(postmark("inbound.json")),
        json_payload(postmark("inbound.json"), indent=2, sort_keys=True),
        json_payload(postmark("inbound.json", TextBody="Wrote the Mailgun adapter.")),
    ),
    "postmark raw": (
        "postmark",
        json_payload(postmark("raw_email.json")),
        json_payload(postmark("raw_email.json"), indent=1),
        json_payload(
            postmark("raw_email.json", RawEmail=postmark("raw_email.json")["RawEmail"] + "\r\nP.S. and more")
        ),
    ),
    "ses": (
        "ses",
        json_payload(ses("notification_utf8.json")),
        json_payload(
            ses("notification_utf8.json", Timestamp="2026-11-23T17:00:09.000Z", Signature="b3RoZXI=")
        ),
        json_payload(ses("notification_utf8.json", content=lambda c: c + "\r\nP.S. and more")),
    ),
    "raw": (
        "raw",
        payload("raw/windows-1252.eml"),
        # the same mail handed over again: another relay's trace fields on top, LF line endings
        Payload(
            b"From MAILER-DAEMON Mon Nov 23 17:00:00 2026\n"
            b"Received: from relay2.example.net by mx.reply.test; Mon, 23 Nov 2026 17:00:09 +0000\n"
            b"X-Spam-Score: 0.1\n" + payload("raw/windows-1252.eml").body.replace(b"\r\n", b"\n"),
            "message/rfc822",
        ),
        edited(payload("raw/windows-1252.eml"), b"Finished the", b"Started the"),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_retry_that_is_not_byte_identical_has_the_same_fingerprint_and_key(case):
    provider, first, retry, _ = CASES[case]
    assert first.body != retry.body
    a, b = PROVIDERS[provider].keys(first), PROVIDERS[provider].keys(retry)
    assert len(a.fingerprint) == 64 and a.fingerprint == b.fingerprint
    assert dedupe_key(provider, a) == dedupe_key(provider, b)


@pytest.mark.parametrize("case", CASES)
def test_the_same_message_id_with_another_body_has_another_fingerprint(case):
    provider, first, _, other = CASES[case]
    a, c = PROVIDERS[provider].keys(first), PROVIDERS[provider].keys(other)
    assert a.message_id and a.message_id == c.message_id
    assert message_key(a) == message_key(c)
    assert a.fingerprint != c.fingerprint


def test_the_mime_fingerprint_covers_every_header_but_trace_fields():
    mail = b"From: a@example.com\r\nSubject: hi\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n"
    traced = b"Received: from x\r\n\tby y; now\r\nAuthentication-Results: mx; spf=pass\r\n" + mail
    assert mime_fingerprint(traced) == mime_fingerprint(mail) == mime_fingerprint(mail + b"\r\n")
    assert mime_fingerprint(mail.replace(b"Subject: hi", b"Subject: hello")) != mime_fingerprint(mail)
    assert mime_fingerprint(mail.replace(b"body", b"bodY")) != mime_fingerprint(mail)
    assert all(len(mime_fingerprint(junk)) == 64 for junk in (b"", b"\r\n", b"\x00\xff:\n\n", b" x"))
