"""parsers.filenames: attachment names safe to store and show, the raw name kept beside."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from parsers.filenames import MAX_BYTES, safe_filename
from parsers.message import Attachment, parse_mime


@pytest.mark.parametrize(
    "raw, ctype, safe",
    [
        ("report.pdf", "application/pdf", "report.pdf"),
        ("Übersicht März.xlsx", "", "Übersicht März.xlsx"),
        ("\\share\\mail\\x.msg", "", "x.msg"),
        ("C:\\Users\\ada\\Desktop\\notes.txt", "", "notes.txt"),
        ("/etc/passwd", "", "passwd"),
        ("../../../etc/cron.d/evil", "", "evil"),
        ("", "application/pdf", "attachment.pdf"),
        ("", "", "attachment"),
        (".", "image/png", "attachment.png"),
        ("..", "", "attachment"),
        ("../..", "", "attachment"),
        ("   ", "text/plain", "attachment.txt"),
        ("a\x00b\r\nc.txt", "", "a_b__c.txt"),
        ("\x1b[31mred.txt", "", "_[31mred.txt"),
        ("invoice\u202efdp.exe", "", "invoice_fdp.exe"),  # a right-to-left override hides ".exe"
        ("what?.txt", "", "what_.txt"),
        ('a<b>c:"d"|e*.txt', "", "a_b_c__d__e_.txt"),
        ("CON", "", "_CON"),
        ("nul.txt", "", "_nul.txt"),
        ("Com1.tar.gz", "", "_Com1.tar.gz"),
        ("console.txt", "", "console.txt"),
        (".htaccess", "", "htaccess"),
        ("trailing. . ", "", "trailing"),
        ("\x00\x01", "message/rfc822", "attachment.eml"),
    ],
)
def test_hostile_names_are_replaced_and_harmless_ones_kept(raw, ctype, safe):
    assert safe_filename(raw, ctype) == safe


def test_a_500_character_name_is_cut_to_255_bytes_and_keeps_its_extension():
    name = safe_filename("a" * 500 + ".pdf")
    assert len(name.encode()) == MAX_BYTES and name.endswith("a.pdf")
    multibyte = safe_filename("ü" * 300 + ".txt")  # never cut inside a character
    assert len(multibyte.encode()) <= MAX_BYTES and multibyte.endswith("ü.txt")


@given(st.text(max_size=400), st.sampled_from(["", "application/pdf", "text/plain"]))
@example("0\xa00", "")  # a no-break space
def test_every_safe_name_is_short_plain_and_its_own_safe_name(raw, ctype):
    safe = safe_filename(raw, ctype)
    assert safe and len(safe.encode("utf-8")) <= MAX_BYTES
    assert not any(c in safe for c in '/\\<>:"|?*') and safe.isprintable()
    assert safe not in (".", "..") and not safe.startswith(".")
    assert safe_filename(safe, ctype) == safe


def test_an_attachment_shows_the_safe_name_and_keeps_the_raw_one():
    a = Attachment("\\share\\mail\\x.msg", "application/vnd.ms-outlook", 3, b"abc")
    assert (a.filename, a.raw_filename) == ("x.msg", "\\share\\mail\\x.msg")
    plain = Attachment("report.pdf", "application/pdf", 3, b"abc")
    assert plain.filename == plain.raw_filename == "report.pdf"


def test_a_mime_attachment_with_a_path_in_its_name_is_listed_by_its_safe_name():
    raw = (
        b"From: ada@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="../../boot.ini"\r\n'
        b"\r\nxyz\r\n--b--\r\n"
    )
    email = parse_mime(raw)
    assert [(a.filename, a.raw_filename) for a in email.attachments] == [("boot.ini", "../../boot.ini")]
