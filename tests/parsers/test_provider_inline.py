"""Inline parts in providers' parsed payloads: one rule (parsers.inline) for them and for raw MIME.

A part is inline when it has a Content-ID that the HTML shows by ``cid:``; any other part,
with or without a Content-ID, is an attachment.
"""

import json

import pytest

from parsers.inline import cid_references, inline_cid
from parsers.message import parse_mime
from parsers.providers import PROVIDERS, Payload
from tests.parsers.test_providers import parse, payload

PNG_SIZE = 70  # the fixtures' 1x1 PNG


def kinds(email) -> tuple[list, list]:
    """(inline parts, attachments) as (filename, content_type, content_id, size)."""
    rows = [(a.filename, a.content_type, a.content_id, a.size) for a in email.attachments]
    return (
        [r for r, a in zip(rows, email.attachments, strict=True) if a.inline],
        [r for r, a in zip(rows, email.attachments, strict=True) if not a.inline],
    )


def test_sendgrid_content_ids_mark_the_image_the_html_shows_as_inline():
    _, email = parse("sendgrid", "sendgrid/parsed_inline.multipart")
    inline, attached = kinds(email)
    assert inline == [("image.png", "image/png", "ii_139db99fdb6b5e5a", PNG_SIZE)]
    # its Content-ID (from attachment-info) is not shown by the HTML: an attachment
    assert attached == [("report.pdf", "application/pdf", "", attached[0][3])]
    assert email.inline_parts[0].content.startswith(b"\x89PNG") and email.attached[0].content.startswith(
        b"%PDF"
    )
    assert email.notes == ()


def test_sendgrid_attachment_info_content_id_alone_marks_an_inline_part():
    body = payload("sendgrid/parsed_inline.multipart").body
    # no content-ids field at all: the Content-ID attachment-info carries is enough
    body = body.replace(b'name="content-ids"', b'name="x-unused"')
    info = json.dumps(
        {"attachment1": {"filename": "image.png", "type": "image/png", "content-id": "ii_139db99fdb6b5e5a"}}
    )
    old = body.split(b'name="attachment-info"\r\n\r\n', 1)[1].split(b"\r\n", 1)[0]
    body = body.replace(old, info.encode())
    p = payload("sendgrid/parsed_inline.multipart")
    email = PROVIDERS["sendgrid"].parse(Payload(body, p.content_type))
    assert [a.content_id for a in email.inline_parts] == ["ii_139db99fdb6b5e5a"]
    assert [a.filename for a in email.attached] == ["report.pdf"]


def test_sendgrid_malformed_content_ids_is_noted_and_every_part_is_an_attachment():
    _, email = parse("sendgrid", "sendgrid/parsed_inline_bad_content_ids.multipart")
    inline, attached = kinds(email)
    assert inline == [] and [a[0] for a in attached] == ["image.png", "report.pdf"]
    assert email.notes == ("content-ids is not a JSON object: ignored",)


def test_sendgrid_a_content_id_without_html_is_no_inline_part():
    _, email = parse("sendgrid", "sendgrid/parsed_attachments.multipart")  # notes.txt has content-id ii_1
    assert email.inline_parts == () and [a.filename for a in email.attached] == ["report.pdf", "notes.txt"]


def test_mailgun_content_id_map_marks_the_image_the_html_shows_as_inline():
    _, email = parse("mailgun", "mailgun/parsed_inline.multipart")
    inline, attached = kinds(email)
    assert inline == [("chart.png", "image/png", "ii_mg4f2c1d0", PNG_SIZE)]
    assert [(a[0], a[2]) for a in attached] == [("report.pdf", "")]  # mapped, but not shown
    assert email.notes == ()


def test_mailgun_malformed_content_id_map_is_noted_and_every_part_is_an_attachment():
    _, email = parse("mailgun", "mailgun/parsed_inline_bad_content_id_map.multipart")
    inline, attached = kinds(email)
    assert inline == [] and [a[0] for a in attached] == ["chart.png", "report.pdf"]
    assert email.notes == ("content-id-map is not a JSON object: ignored",)


def test_postmark_content_id_the_html_shows_is_inline_the_other_an_attachment():
    _, email = parse("postmark", "postmark/inline.json")
    inline, attached = kinds(email)
    assert inline == [("image001.png", "image/png", "image001.png@01DB3C4A.5E6F7080", PNG_SIZE)]
    assert [(a[0], a[2]) for a in attached] == [("report.pdf", "")]


def test_postmark_a_content_id_the_html_does_not_show_stays_an_attachment():
    _, email = parse("postmark", "postmark/inbound.json")  # ContentID myimage.png@..., HTML shows none
    assert email.inline_parts == () and [a.filename for a in email.attached] == ["myimage.png"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content-id-map", b'["attachment-1"]'),
        ("content-id-map", b'{"<ii_mg4f2c1d0>": 1}'),
        ("content-id-map", b""),
    ],
)
def test_mailgun_content_id_maps_of_the_wrong_shape_never_raise(field, value):
    p = payload("mailgun/parsed_inline.multipart")
    old = p.body.split(f'name="{field}"\r\n\r\n'.encode(), 1)[1].split(b"\r\n", 1)[0]
    email = PROVIDERS["mailgun"].parse(Payload(p.body.replace(old, value), p.content_type))
    assert email.inline_parts == () and len(email.attached) == 2


def test_a_hostile_filename_of_an_inline_part_is_made_safe_and_kept_raw():
    p = payload("postmark/inline.json")
    doc = json.loads(p.body)
    doc["Attachments"][0]["Name"] = "../../etc/\u202epng.exe"
    email = PROVIDERS["postmark"].parse(Payload(json.dumps(doc).encode(), p.content_type))
    part = email.inline_parts[0]
    assert part.raw_filename == "../../etc/\u202epng.exe"
    assert "/" not in part.filename and "\u202e" not in part.filename


@pytest.mark.parametrize(
    ("html", "cid", "inline"),
    [
        ('<img src="cid:a@b">', "a@b", True),
        ('<img src="CID:A@B">', "<a@b>", True),  # scheme and id compared case-insensitively, brackets dropped
        ('<img src="cid:a%40b">', "a@b", True),  # a %-escaped cid: URL (RFC 2392)
        ('<td style="background:url(cid:bg.png@x)">', "bg.png@x", True),
        ('<img src="cid:a@b.c">', "a@b", False),
        ('<img src="cid:a@b">', "", False),
        ("", "a@b", False),
        ("<p>cid:</p>", "x", False),
    ],
)
def test_the_one_rule_an_inline_part_is_a_content_id_the_html_shows(html, cid, inline):
    assert bool(inline_cid(cid, cid_references(html))) is inline


def test_a_part_its_sender_marked_attachment_is_never_inline():
    assert inline_cid("a@b", cid_references('<img src="cid:a@b">'), "attachment") == ""


def test_raw_mime_uses_the_same_rule_an_image_the_html_does_not_show_is_an_attachment():
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="r"\r\n\r\n'
        b'--r\r\nContent-Type: text/html\r\n\r\n<p><img src="cid:shown@x"></p>\r\n'
        b"--r\r\nContent-Type: image/png\r\nContent-ID: <shown@x>\r\n\r\nPNG\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-ID: <unshown@x>\r\n"
        b"Content-Disposition: inline\r\n\r\nPNG\r\n"
        b"--r--\r\n"
    )
    email = parse_mime(raw)
    assert [a.content_id for a in email.inline_parts] == ["shown@x"]
    assert [(a.content_type, a.content_id) for a in email.attached] == [("image/png", "")]
