"""Malformed MIME is read as far as is safe: the sender and the parts before the damage still count."""

import json
from pathlib import Path

import pytest

from parsers import limits
from parsers.message import parse_mime
from parsers.mime_fallback import split_mime
from parsers.reply import extract_reply

HEAD = (
    b"From: Ada <ada@example.com>\r\nTo: team@example.com\r\nSubject: Re: today\r\n"
    b"Message-ID: <m1@example.com>\r\nIn-Reply-To: <r1@example.com>\r\n"
    b"References: <r0@example.com> <r1@example.com>\r\n"
    b"Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
)


def assert_sender_identified(email):
    assert (email.from_addr, email.subject, email.message_id) == (
        "ada@example.com",
        "Re: today",
        "<m1@example.com>",
    )
    assert email.in_reply_to == "<r1@example.com>" and email.references == (
        "<r0@example.com>",
        "<r1@example.com>",
    )
    assert email.to == ("team@example.com",) and email.date is not None


def many_parts(n: int) -> bytes:
    parts = b"--b0\r\nContent-Type: text/plain\r\n\r\nShipped the importer\r\n" + b"".join(
        b"--b0\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=x%d.txt\r\n\r\nx\r\n"
        % i
        for i in range(n)
    )
    return HEAD + b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + parts + b"--b0--\r\n"


def nested(depth: int) -> bytes:
    body = b"--b0\r\nContent-Type: text/plain\r\n\r\nShipped the importer\r\n"
    for i in range(depth):
        body += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
    body += b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b%d--\r\n" % (depth, depth)
    return HEAD + b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + body


def test_thousands_of_parts_keep_the_sender_the_body_and_the_attachments_before_the_budget():
    email = parse_mime(many_parts(3000))
    assert_sender_identified(email)
    assert email.text.strip() == "Shipped the importer"
    assert limits.MAX_MIME_PARTS - 5 < len(email.attachments) < limits.MAX_MIME_PARTS
    assert any("read as far as is safe" in n for n in email.notes)
    assert any(f"more than {limits.MAX_MIME_PARTS} MIME parts" in n for n in email.notes)


def test_a_thousand_levels_of_nesting_keep_the_sender_and_the_first_body():
    email = parse_mime(nested(1000))
    assert_sender_identified(email)
    assert email.text.strip() == "Shipped the importer"
    assert any(f"deeper than {limits.MAX_MIME_DEPTH}" in n for n in email.notes)


@pytest.mark.parametrize("ctype", [b"multipart/mixed", b'multipart/mixed; boundary="other"'])
def test_a_missing_or_mismatched_boundary_is_guessed_from_the_body_and_noted(ctype):
    raw = HEAD + b"Content-Type: " + ctype + b"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nShipped it\r\n"
    raw += b"--zz\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    raw += b"JVBERg==\r\n--zz--\r\n"
    email = parse_mime(raw)
    assert_sender_identified(email)
    assert email.text.strip() == "Shipped it"
    assert [(a.filename, a.content) for a in email.attachments] == [("a.pdf", b"%PDF")]
    assert any("boundary" in n for n in email.notes)
    assert extract_reply(email).text == "Shipped it"


def test_a_multipart_with_no_delimiter_at_all_is_read_as_text():
    email = parse_mime(HEAD + b"Content-Type: multipart/mixed\r\n\r\nJust text\r\n")
    assert_sender_identified(email)
    assert email.text.strip() == "Just text" and any("without a boundary line" in n for n in email.notes)


def test_the_splitter_never_raises_on_hostile_bytes():
    for raw in (
        b"",
        b"\x00\xff" * 100,
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--",
        b"--\r\n" * 10_000,
    ):
        split_mime(raw)


CORPUS = Path("/work/shared/corpus/mime")
ROWS = [json.loads(line) for line in (CORPUS / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
EXPECT = {
    e["file"]: e["expect"]
    for e in map(json.loads, (CORPUS / "expectations.jsonl").read_text(encoding="utf-8").splitlines())
}


def test_the_corpus_is_there():
    assert len(ROWS) == 177


@pytest.mark.parametrize("row", [r for r in ROWS if r["kind"] != "mbox"], ids=lambda r: r["file"])
def test_every_corpus_message_parses_and_keeps_its_expected_sender_subject_and_id(row):
    email = parse_mime((CORPUS / row["file"]).read_bytes())
    expect = EXPECT.get(row["file"], {})
    if expect.get("from_addrs"):
        assert email.from_addr == expect["from_addrs"][0]
    if "subject" in expect:
        assert email.subject == expect["subject"]
    if "message_id" in expect:
        assert email.message_id.strip("<>") == expect["message_id"]
    if any("read as far as is safe" in n for n in email.notes) and not row["file"].endswith(".dat"):
        assert email.from_addr  # flanker gave up, the sender is still known (the .dat has no headers)
