"""MIME normalization on the shapes real mail takes: enclosed messages, charsets, RFC 2231 names,
line endings, inline parts, digests and padded delimiters (issue 13, deliverable 1)."""

from __future__ import annotations

import pytest

from parsers.message import Attachment, decode_text, parse_mime

FORWARDED = b"""From: ada@example.com\r
To: team@example.com\r
Subject: Fwd: numbers\r
Content-Type: multipart/mixed; boundary=outer\r
\r
--outer\r
Content-Type: text/plain; charset=utf-8\r
\r
See below.\r
--outer\r
Content-Type: message/rfc822\r
\r
From: bob@example.com\r
Subject: =?utf-8?q?Q3_n=C3=BAmeros?=\r
Content-Type: multipart/mixed; boundary=inner\r
\r
--inner\r
Content-Type: text/plain\r
\r
inner text\r
--inner\r
Content-Type: text/html\r
\r
<p>inner html</p>\r
--inner\r
Content-Type: image/png; name=chart.png\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgo=\r
--inner--\r
\r
--outer--\r
"""


def test_an_enclosed_message_is_one_attachment_named_after_its_subject_and_adds_no_body_or_files():
    email = parse_mime(FORWARDED)
    assert email.text.strip() == "See below." and email.html is None
    (att,) = email.attachments
    assert (att.filename, att.content_type) == ("Q3 números.eml", "message/rfc822")
    assert att.content.startswith(b"From: bob@example.com") and b"iVBORw0KGgo=" in att.content
    assert att.size == len(att.content) and not att.inline


def test_an_enclosed_message_keeps_its_own_filename_and_an_html_only_outer_mail_keeps_its_html():
    raw = FORWARDED.replace(
        b"Content-Type: message/rfc822\r\n", b'Content-Type: message/rfc822; name="fw.eml"\r\n'
    )
    raw = raw.replace(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee below.",
        b"Content-Type: text/html\r\n\r\n<b>x</b>",
    )
    email = parse_mime(raw)
    assert [a.filename for a in email.attachments] == ["fw.eml"]
    assert email.html.strip() == "<b>x</b>" and email.text_from_html


def test_an_enclosed_message_with_no_subject_is_named_message_eml():
    raw = FORWARDED.replace(b"Subject: =?utf-8?q?Q3_n=C3=BAmeros?=\r\n", b"")
    assert [a.filename for a in parse_mime(raw).attachments] == ["message.eml"]


def multipart(*parts: bytes) -> bytes:
    body = b"".join(b"--b\r\n" + p + b"\r\n" for p in parts)
    return (
        b"From: a@example.com\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + body
        + b"--b--\r\n"
    )


def test_each_part_is_decoded_with_the_charset_it_declares_even_when_they_differ():
    raw = multipart(
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Grüße aus Köln".encode("latin-1"),
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "<p>Привет</p>".encode(),
    )
    email = parse_mime(raw)
    assert email.text.strip() == "Grüße aus Köln" and email.html.strip() == "<p>Привет</p>"
    assert not any("charset" in n or "read as" in n for n in email.notes)


@pytest.mark.parametrize(
    ("declared", "data", "expected", "note"),
    [
        ("us-ascii", "Envoyé".encode(), "Envoyé", "not valid us-ascii: read as utf-8"),
        ("gb2312", "什么屄".encode("gb18030"), "什么屄", "not valid gb2312: read as gb18030"),
        ("", "Grüße".encode("windows-1252"), "Grüße", "declares no known charset: read as windows-1252"),
        ("x-martian", b"hello", "hello", "unknown charset 'x-martian'"),
        ("utf-8", "Привет, ".encode() * 20 + b"\xff", "Привет, " * 20 + "\ufffd", "1 undecodable byte"),
    ],
)
def test_a_wrong_or_missing_charset_falls_back_and_the_note_says_what_was_done(
    declared, data, expected, note
):
    notes: list[str] = []
    assert decode_text(data, declared, notes) == expected
    assert any(note in n for n in notes), notes


def test_a_long_undeclared_text_in_another_script_is_detected():
    text = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 10
    notes: list[str] = []
    assert decode_text(text.encode("koi8-r"), "", notes) == text
    assert any("(detected)" in n for n in notes), notes


def test_undeclared_html_is_read_with_its_meta_charset():
    html = '<html><head><meta charset="windows-1251"></head><body>Привет</body></html>'
    notes: list[str] = []
    assert decode_text(html.encode("cp1251"), "", notes, "html") == html
    assert any("meta charset" in n for n in notes)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Content-Disposition: attachment; filename*=utf-8''Gr%C3%BC%C3%9Fe.txt", "Grüße.txt"),
        (  # RFC 2231 continuations with a charset and a language
            b"Content-Disposition: attachment;\r\n filename*0*=iso-8859-1'de'Gr%FC;\r\n filename*1*=%DFe;"
            b'\r\n filename*2=" und mehr.txt"',
            "Grüße und mehr.txt",
        ),
        (b'Content-Disposition: attachment; filename="=?utf-8?B?0J7RgtGH0ZHRgi5wZGY=?="', "Отчёт.pdf"),
        ('Content-Disposition: attachment; filename="ciële.txt"'.encode(), "ciële.txt"),
    ],
)
def test_filenames_are_decoded_from_rfc2231_rfc2047_and_raw_utf8(header, expected):
    raw = multipart(
        b"Content-Type: text/plain\r\n\r\nbody", b"Content-Type: application/pdf\r\n" + header + b"\r\n\r\nx"
    )
    email = parse_mime(raw)
    assert [a.filename for a in email.attachments] == [expected]
    assert email.text.strip() == "body"


def test_cr_lf_and_crlf_line_endings_all_parse_to_the_same_mail():
    crlf = multipart(
        b"Content-Type: text/plain\r\n\r\nline one\r\nline two", b"Content-Type: image/png\r\n\r\nPNG"
    )
    lf, cr = crlf.replace(b"\r\n", b"\n"), crlf.replace(b"\r\n", b"\r")
    got = [parse_mime(raw) for raw in (crlf, lf, cr)]
    for email in got:
        assert (email.from_addr, email.subject) == ("a@example.com", "s")
        assert email.text.replace("\r\n", "\n").strip() == "line one\nline two"
        assert [(a.content_type, a.size) for a in email.attachments] == [("image/png", 3)]
    assert any("bare-CR" in n for n in got[2].notes)


RELATED = multipart(
    b"Content-Type: multipart/related; boundary=r\r\n\r\n"
    b'--r\r\nContent-Type: text/html\r\n\r\n<img src="cid:logo@x">\r\n'
    b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
    b"Content-Disposition: inline\r\n\r\nPNG\r\n--r--",
    b"Content-Type: application/pdf; name=a.pdf\r\nContent-ID: <pdf@x>\r\n"
    b"Content-Disposition: attachment\r\n\r\nPDF",
)


def test_an_inline_part_is_marked_with_its_content_id_and_is_no_attachment():
    email = parse_mime(RELATED)
    assert '<img src="cid:logo@x">' in email.html
    inline = [a for a in email.attachments if a.inline]
    files = [a for a in email.attachments if not a.inline]
    assert [(a.content_type, a.content_id, a.content) for a in inline] == [("image/png", "logo@x", b"PNG")]
    assert [(a.filename, a.content_id) for a in files] == [("a.pdf", "")]


def test_existing_callers_build_attachments_as_before():
    att = Attachment("a.txt", "text/plain", 1, b"x")
    assert (att.inline, att.content_id) == (False, "")


def test_the_parts_of_a_digest_are_enclosed_messages():
    raw = (
        b"From: a@example.com\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
        b"From: b@example.com\r\nSubject: one\r\n\r\nfirst\r\n--d\r\n\r\n"
        b"From: c@example.com\r\nSubject: two\r\n\r\nsecond\r\n--d--\r\n"
    )
    email = parse_mime(raw)
    assert email.text is None
    assert [(a.filename, a.content_type) for a in email.attachments] == [
        ("one.eml", "message/rfc822"),
        ("two.eml", "message/rfc822"),
    ]


def test_a_delimiter_line_with_transport_padding_still_ends_a_part():
    raw = multipart(b"Content-Type: text/plain\r\n\r\nbody").replace(b"--b\r\n", b"--b \t\r\n")
    raw = raw.replace(b"--b--\r\n", b"--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--  \r\n")
    email = parse_mime(raw)
    assert email.text.strip() == "body" and [a.size for a in email.attachments] == [3]


def test_a_part_the_stdlib_would_read_as_the_whole_rest_of_the_message_is_read_as_empty():
    raw = multipart(b"Content-Type: text/x-one\r\n\r\nBlah").replace(b"--b--", b"--b\r\n--b\r\n--b--")
    email = parse_mime(raw)
    assert email.text is None and "--b" not in repr(email.attachments)


def test_a_byte_order_mark_before_the_headers_is_dropped_and_noted():
    email = parse_mime(b"\xef\xbb\xbfFrom: a@example.com\r\nSubject: s\r\n\r\nhello\r\n")
    assert (email.from_addr, email.subject, email.text.strip()) == ("a@example.com", "s", "hello")
    assert any("byte-order mark" in n for n in email.notes)


def test_a_part_whose_body_follows_its_headers_without_a_blank_line_keeps_its_bytes():
    raw = multipart(
        b"Content-Type: text/plain\r\n\r\nbody", b"Content-Type: image/jpeg; name=a.jpg\r\nBINARY\xff\xd8"
    )
    (att,) = parse_mime(raw).attachments
    assert (att.filename, att.content) == ("a.jpg", b"BINARY\xff\xd8")
