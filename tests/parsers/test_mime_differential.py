"""donebox's parse_mime against the stdlib ``email`` package (policy.default) on real mail.

Every message of /work/shared/corpus/mime (its README says what they are) and of CPython's
own email test data goes through both: subject, from, to, cc, text, html, attachment names
and sizes, and inline Content-IDs agree, or ``BETTER`` names why donebox's answer is the
better one. A message that agrees must not be in ``BETTER``, so it keeps no stale entries.

Plus, on every message: parse_mime raises nothing; no U+FFFD where every text part's declared
charset decodes its bytes cleanly; inline parts are never counted as attachments.
"""

from __future__ import annotations

import json
import os
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

import pytest

from parsers.message import parse_mime
from tests.parsers.mime_reference import FIELDS, donebox, read

CORPUS = Path("/work/shared/corpus/mime")


def _cpython_data() -> Path | None:
    try:
        import test  # the stdlib's own test package: only its data directory is used

        data = Path(os.path.dirname(test.__file__)) / "test_email" / "data"
    except ImportError:
        return None
    return data if data.is_dir() else None


def _messages() -> list[tuple[str, Path]]:
    rows = [json.loads(line) for line in (CORPUS / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    out = [(r["file"], CORPUS / r["file"]) for r in rows if r["kind"] != "mbox"]
    data = _cpython_data()
    if data is not None:
        out += [(f"cpython/{p.name}", p) for p in sorted(data.glob("msg_*.txt"))]
    return out


MESSAGES = _messages()

_EMPTY_MULTIPART = (
    "a multipart with no part in it: the stdlib lists the empty multipart itself as one opaque part"
)
_UNSPLIT = "the stdlib leaves it as one opaque part and finds no body; donebox splits on the delimiter lines"
_UNDECLARED_8BIT = "8-bit text with no charset: the stdlib reads it as ASCII with U+FFFD for every byte"
_STDLIB_RAISES_GROUP = (
    "the stdlib raises AttributeError reading 'To: unlisted-recipients:; (...)' (a group with a comment);"
    " donebox reads it as no address"
)

# message -> why donebox's answer is the better one
BETTER: dict[str, str] = {
    "SpamScope__mail-parser/tests/mails/mail_malformed_3": f"boundary does not match the body: {_UNSPLIT}",
    "SpamScope__mail-parser/tests/mails/mail_test_12": (
        "raw UTF-8 in To (RFC 6532), which the stdlib keeps as surrogate escapes; and GB2312-labelled"
        " GBK text, which the stdlib decodes to mojibake and donebox reads as gb18030 (noted)"
    ),
    "SpamScope__mail-parser/tests/mails/mail_test_2": (
        "HTML with no charset and Latin-1 bytes ('martedì'): the stdlib replaces them with U+FFFD,"
        " donebox reads windows-1252 (noted)"
    ),
    "SpamScope__mail-parser/tests/mails/mail_test_9": (
        "GB2312 label on GBK/GB18030 bytes (subject and HTML): the stdlib puts U+FFFD where a character"
        " is outside GB2312, donebox reads the superset gb18030 (noted)"
    ),
    "jstedfast__MimeKit/UnitTests/TestData/messages/delivery-status-no-blank-line.txt": _STDLIB_RAISES_GROUP,
    "jstedfast__MimeKit/UnitTests/TestData/messages/delivery-status.anonymized.eml": _STDLIB_RAISES_GROUP,
    "jstedfast__MimeKit/UnitTests/TestData/messages/delivery-status.txt": _STDLIB_RAISES_GROUP,
    "jstedfast__MimeKit/UnitTests/TestData/messages/empty-multipart.txt": (
        "an empty multipart/alternative next to a text part: the stdlib lists the empty multipart as an"
        " opaque part; donebox lists nothing for it"
    ),
    "jstedfast__MimeKit/UnitTests/TestData/messages/feedback-report.txt": (
        "the message starts with a UTF-8 byte-order mark: the stdlib loses every header and reads the"
        " whole message as the body; donebox reads the report's text and its two parts"
    ),
    "jstedfast__MimeKit/UnitTests/TestData/messages/issue358.txt": (
        "a badly folded Exchange header ends the stdlib's header block early, so the rest of the headers"
        " become its body text; donebox reads the text and HTML parts"
    ),
    "jstedfast__MimeKit/UnitTests/TestData/messages/multipart-related-mhtml.txt": (
        "multipart/related; type=text/html whose HTML root is not the first part: the stdlib's get_body"
        " takes the first part (an image) as the root and finds no HTML; donebox finds the HTML"
    ),
    "jstedfast__MimeKit/UnitTests/TestData/yenc/00000020.ntx": _UNDECLARED_8BIT,
    "jstedfast__MimeKit/UnitTests/TestData/yenc/00000021.ntx": _UNDECLARED_8BIT,
    "jstedfast__MimeKit/UnitTests/TestData/yenc/simple.msg": _UNDECLARED_8BIT,
    "mikel__mail/spec/fixtures/emails/attachment_emails/attachment_with_base64_encoded_name.eml": (
        "an RFC 2047 encoded word as the name= value: the stdlib gives no filename, donebox decodes it"
    ),
    "mikel__mail/spec/fixtures/emails/attachment_emails/attachment_with_unquoted_name.eml": (
        "an unquoted filename with spaces: the stdlib keeps the first word ('This'), donebox the whole name"
    ),
    "mikel__mail/spec/fixtures/emails/error_emails/bad_date_header2.eml": _EMPTY_MULTIPART,
    "mikel__mail/spec/fixtures/emails/error_emails/content_transfer_encoding_empty.eml": (
        "labelled big5, but the bytes are UTF-8 (a big5 text once re-encoded through Latin-1): the stdlib"
        " decodes them as big5 into U+FFFD and CJK noise, donebox keeps the UTF-8 reading (noted)"
    ),
    "mikel__mail/spec/fixtures/emails/error_emails/content_transfer_encoding_plain.eml": (
        "us-ascii label on 8-bit text: the stdlib replaces the 8-bit bytes with U+FFFD,"
        " donebox reads them (noted)"
    ),
    "mikel__mail/spec/fixtures/emails/error_emails/empty_in_reply_to.eml": _EMPTY_MULTIPART,
    "mikel__mail/spec/fixtures/emails/error_emails/invalid_subject_characters.eml": (
        "raw Latin-1 bytes in the Subject: the stdlib gives U+FFFD, donebox reads windows-1252 ('Formação')"
    ),
    "mikel__mail/spec/fixtures/emails/error_emails/must_supply_encoding.eml": _EMPTY_MULTIPART,
    "mikel__mail/spec/fixtures/emails/mime_emails/raw_email_with_binary_encoded.eml": (
        "the multipart's first delimiter follows its headers with no blank line: the stdlib reads the"
        " whole body as one opaque part (262 bytes), donebox finds the 24-byte binary JPEG part and its name"
    ),
    "mikel__mail/spec/fixtures/emails/mime_emails/raw_email_with_illegal_boundary.eml": (
        f"an unquoted boundary with '=' in it (RFC 2045 requires quotes): {_UNSPLIT}"
    ),
    "mikel__mail/spec/fixtures/emails/plain_emails/raw_email10.eml": (
        "charset=X-UNKNOWN: the stdlib raises LookupError on the body, donebox reads it (noted)"
    ),
    "mikel__mail/spec/fixtures/emails/plain_emails/raw_email5.eml": (
        "us-ascii label on UTF-8 text ('Envoyé'): the stdlib gives U+FFFD, donebox reads UTF-8 (noted)"
    ),
    "mikel__mail/spec/fixtures/emails/plain_emails/raw_email6.eml": (
        "us-ascii label on UTF-8 text ('Envoyé'): the stdlib gives U+FFFD, donebox reads UTF-8 (noted)"
    ),
    "mikel__mail/spec/fixtures/emails/plain_emails/raw_email_bad_time.eml": (
        f"an unquoted boundary with '=' in it (RFC 2045 requires quotes): {_UNSPLIT}"
    ),
    "mikel__mail/spec/fixtures/emails/rfc6532/utf8_headers.eml": (
        "raw UTF-8 addresses (RFC 6532): the stdlib keeps surrogate escapes, donebox reads UTF-8"
    ),
    "cpython/msg_15.txt": (
        "a nested multipart reuses its parent's boundary: the stdlib loses the image/gif part (it lists a"
        " 1-byte text part instead), donebox lists xx.gif (its body is not base64: kept as sent)"
    ),
    "cpython/msg_17.txt": f"a multipart with boundary=BOUNDARY whose body has no delimiter line: {_UNSPLIT}",
    "cpython/msg_25.txt": (
        f"a multipart/report whose boundary parameter is missing: {_UNSPLIT} (the bounce text and its"
        " delivery-status part)"
    ),
    "cpython/msg_31.txt": f"boundary=BOUNDARY_ but the delimiter lines say --BOUNDARY: {_UNSPLIT}",
    "cpython/msg_38.txt": (
        "a text part holds its ancestors' delimiter lines (illegal, RFC 2046): the stdlib ends the outer"
        " multiparts there and drops the parts that follow into an epilogue; donebox still lists them"
    ),
    "cpython/msg_39.txt": (
        "nested multiparts that share one boundary: the stdlib ends the outer multipart at the inner close"
        " delimiter and drops the parts after it; donebox still lists them"
    ),
    "cpython/msg_41.txt": f"multipart/alternative with no boundary parameter: {_UNSPLIT}",
}

_NAME_IS_AN_ADDRESS = (
    "an unquoted display name that is itself an address ('{}'): the stdlib reads the name as the"
    " address; donebox reads the bracketed address, the one mail would reach"
)
BETTER.update(
    {
        "SpamScope__mail-parser/tests/mails/mail_test_19": _NAME_IS_AN_ADDRESS.format(
            "alice@example.com <bob@example.com>, eve@example.com <frank@example.com>"
        ),
        "mikel__mail/spec/fixtures/emails/plain_emails/raw_email_with_at_display_name.eml": (
            _NAME_IS_AN_ADDRESS.format("Mikel@Lindsaar <raasdnil@gmail.com>")
        ),
        "mikel__mail/spec/fixtures/emails/error_emails/missing_body.eml": _EMPTY_MULTIPART,
        "mikel__mail/spec/fixtures/emails/plain_emails/mix_caps_content_type.eml": (
            "'From: Big Bug bb@bug.com' (no angle brackets): the stdlib makes '\"big bug bb\"@bug.com' of"
            " it, an address nobody has; donebox reads the name 'Big Bug' and bb@bug.com"
        ),
        "mikel__mail/spec/fixtures/emails/plain_emails/raw_email_multiple_from.eml": (
            "'To: tim@powerupdev.com concierge@powerupdev.com' (no comma): the stdlib keeps the first"
            " address and drops the second; donebox reads both"
        ),
    }
)


def _compare(raw: bytes) -> tuple[dict, dict | None, str]:
    """(donebox's fields, the stdlib's or None, what the stdlib raised)."""
    ours = donebox(parse_mime(raw))
    try:
        return ours, read(raw), ""
    except Exception as e:  # noqa: BLE001 - the stdlib's own failures are a finding, not a test error
        return ours, None, f"{type(e).__name__}: {e}"


def _differences(ours: dict, theirs: dict | None) -> dict:
    if theirs is None:
        return {"stdlib": "raised"}
    return {f: (ours[f], theirs[f]) for f in (*FIELDS, "inline") if ours[f] != theirs[f]}


def test_the_messages_are_there():
    assert len([m for m in MESSAGES if not m[0].startswith("cpython/")]) == 173
    if os.environ.get("CI"):
        assert _cpython_data() is not None, (
            "CPython's email test data (test/test_email/data) is not installed"
        )


@pytest.mark.parametrize(("name", "path"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_donebox_and_the_stdlib_agree_or_donebox_is_better_for_a_named_reason(name, path):
    ours, theirs, raised = _compare(path.read_bytes())
    diff = _differences(ours, theirs)
    if not diff:
        assert name not in BETTER, "agrees now: drop its reason"
        return
    assert name in BETTER, (raised, {k: repr(v)[:300] for k, v in diff.items()})


def _text_parts_decode_cleanly(raw: bytes) -> bool:
    """Every text part declares a charset and its bytes decode strictly with it (to no U+FFFD)."""
    found = False
    for part in message_from_bytes(raw, policy=compat32).walk():
        if part.get_content_maintype() != "text" or part.is_multipart():
            continue
        charset = part.get_content_charset()
        payload = part.get_payload(decode=True)
        if not charset or not isinstance(payload, bytes):
            return False
        try:
            if "\ufffd" in payload.decode(charset):
                return False
        except (LookupError, UnicodeDecodeError):
            return False
        found = True
    return found


@pytest.mark.parametrize(("name", "path"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_no_exception_no_replacement_character_and_inline_parts_are_no_attachments(name, path):
    raw = path.read_bytes()
    email = parse_mime(raw)  # raises nothing
    if _text_parts_decode_cleanly(raw):
        assert "\ufffd" not in (email.text or "") + (email.html or ""), email.notes
    for att in email.attachments:
        assert not att.inline or (att.content_id and not att.content_type.startswith("message/"))
    cids = {a.content_id for a in email.attachments if a.inline}
    assert not any(a.content_id in cids for a in email.attachments if not a.inline)


def test_the_agreement_rate():
    """Messages agreeing on every field, and those deliberately different, by reason (see the report)."""
    agree = better = 0
    for _name, path in MESSAGES:
        ours, theirs, _ = _compare(path.read_bytes())
        if not _differences(ours, theirs):
            agree += 1
        else:
            better += 1
    print(f"\n{agree}/{len(MESSAGES)} agree; {better} deliberately different, each for a named reason")
    assert agree + better == len(MESSAGES) and agree >= 180
