"""app.relay.compose: the checks of a full send request's parts and the message they make."""

import email
import email.policy

import pytest

from app.errors import RequestError
from app.relay.compose import Attachment, Mailbox, Parts, attachments, build, headers, mailbox, mailboxes
from app.relay.sends import _composed, _within


def parts(**given) -> Parts:
    base = {
        "sender": Mailbox("shop@shop.example", "Shop"),
        "to": [Mailbox("ann@example.com")],
        "cc": [],
        "reply_to": [],
        "subject": "Hello",
        "text": "plain",
        "html": "<p>rich</p>",
        "headers": {},
        "attachments": [],
    }
    return Parts(**{**base, **given})


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def structure(msg) -> list:
    if msg.is_multipart():
        return [msg.get_content_type(), [structure(p) for p in msg.get_payload()]]
    return msg.get_content_type()


PNG, PDF = (
    Attachment("l.png", "image", "png", b"\x89PNG..", "logo"),
    Attachment("a.pdf", "application", "pdf", b"%PDF"),
)


@pytest.mark.parametrize(
    "files,shape",
    [
        ([], ["multipart/alternative", ["text/plain", "text/html"]]),
        ([PNG], ["multipart/related", [["multipart/alternative", ["text/plain", "text/html"]], "image/png"]]),
        (
            [PDF],
            ["multipart/mixed", [["multipart/alternative", ["text/plain", "text/html"]], "application/pdf"]],
        ),
        (
            [PDF, PNG],
            [
                "multipart/mixed",
                [
                    [
                        "multipart/related",
                        [["multipart/alternative", ["text/plain", "text/html"]], "image/png"],
                    ],
                    "application/pdf",
                ],
            ],
        ),
    ],
    ids=["alternative", "related", "mixed", "mixed-related"],
)
def test_the_structure_wraps_only_what_is_there(files, shape):
    msg = parse(build(parts(attachments=files)))
    assert structure(msg) == shape
    assert msg["MIME-Version"] == "1.0" and msg["From"] == "Shop <shop@shop.example>"
    if PNG in files:
        related = msg if not [f for f in files if not f.content_id] else msg.get_payload()[0]
        assert related.get_param("type") == "multipart/alternative"


def test_a_text_only_message_is_one_part_and_lines_end_in_crlf():
    raw = build(parts(html=""))
    assert structure(parse(raw)) == "text/plain"
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_non_ascii_names_and_subjects_are_encoded_and_a_non_ascii_local_part_asks_for_smtputf8():
    raw = build(parts(sender=Mailbox("shop@shop.example", "Bäckerei"), subject="Grüße"))
    assert (
        raw.isascii()
        and parse(raw)["Subject"] == "Grüße"
        and parse(raw)["From"] == "Bäckerei <shop@shop.example>"
    )
    utf8 = build(parts(to=[mailbox("to", "jörg@example.com")]))
    assert "jörg@example.com".encode() in utf8


def test_addresses_in_every_form_and_the_domain_in_idna_lower_case():
    assert mailbox("to", "Ann <Ann@Example.COM>") == Mailbox("Ann@example.com", "Ann")
    assert mailbox("to", '"Doe, Ann" <ann@example.com>') == Mailbox("ann@example.com", "Doe, Ann")
    assert mailbox("to", {"email": "ann@example.com"}) == Mailbox("ann@example.com")
    assert [m.address for m in mailboxes("cc", ["a@example.com", {"email": "b@example.com"}], most=5)] == [
        "a@example.com",
        "b@example.com",
    ]
    with pytest.raises(RequestError, match=r"cc has 3 addresses, more than 2"):
        mailboxes("cc", ["a@x.org", "b@x.org", "c@x.org"], most=2)
    with pytest.raises(RequestError, match=r"to: the name has a control character"):
        mailbox("to", "A\r\nBcc: x@y.org <a@example.com>")


def test_a_header_value_cannot_carry_another_header():
    with pytest.raises(RequestError, match="headers.X-A must be one line"):
        headers({"X-A": "v\nBcc: evil@example.com"})
    with pytest.raises(RequestError, match="headers.X-Donebox-Team-Id is set by donebox"):
        headers({"X-Donebox-Team-Id": "1"})
    assert headers({"X-A": "v", "Message-ID": " <a@b> "}) == {"X-A": "v", "Message-ID": "<a@b>"}


def test_attachments_decode_with_line_breaks_and_count_against_the_budget():
    (a,) = attachments(
        [{"filename": "a.bin", "content": "AAEC\r\nAw==", "content_type": "Application/Octet-Stream"}],
        budget=4,
    )
    assert (a.data, a.maintype, a.subtype) == (b"\x00\x01\x02\x03", "application", "octet-stream")
    with pytest.raises(RequestError, match=r"attachments\[0\].content takes the message past") as e:
        attachments([{"filename": "a.bin", "content": "AAECAw=="}], budget=3)
    assert e.value.status == 413
    with pytest.raises(RequestError, match=r"attachments\[1\].content_id 'x' is given twice"):
        attachments([{"filename": "a", "content": "", "content_id": "x"}] * 2, budget=10)


@pytest.mark.parametrize(
    "reason,named",
    [
        ("to is required", "messages[7].to is required"),
        ("cc[3] is not an email address: 'x'", "messages[7].cc[3] is not an email address: 'x'"),
        (
            "attachments[2].content is not valid base64",
            "messages[7].attachments[2].content is not valid base64",
        ),
        ("headers.X-A must be one line", "messages[7].headers.X-A must be one line"),
        ("from: a.org is not verified", "messages[7].from: a.org is not verified"),
        ("give text, html, or both", "messages[7]: give text, html, or both"),
        ("unknown field(s): x", "messages[7]: unknown field(s): x"),
    ],
)
def test_a_batch_names_the_field_inside_its_message(reason, named):
    assert _within("messages[7]", reason) == named


@pytest.mark.parametrize(
    "body,composed",
    [
        ({"to": "ann@example.com"}, False),
        ({"to": ["ann@example.com"]}, False),
        ({"to": ["Ann <ann@example.com>"]}, True),
        ({"to": {"email": "ann@example.com"}}, True),
        ({"to": ["a@example.com", "b@example.com"]}, True),
        ({"to": "ann@example.com", "headers": {"X-A": "b"}}, True),
        ({"to": "ann@example.com", "bcc": "b@example.com"}, True),
        ({"to": "ann@example.com", "tags": ["t"], "metadata": {"k": "v"}}, False),
    ],
)
def test_only_what_a_rendered_message_cannot_say_makes_a_composed_one(body, composed):
    assert _composed(body) is composed
