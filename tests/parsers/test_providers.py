"""Provider adapters on payloads in their documented formats (tests/fixtures/<provider>/)."""

import json
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from parsers.providers import PROVIDERS, Payload, PayloadError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TO = "reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test"
CTYPES = {
    "multipart": "multipart/form-data; boundary={b}",
    "urlencoded": "application/x-www-form-urlencoded",
    "json": "application/json",
    "eml": "message/rfc822",
}


def payload(path: str) -> Payload:
    """A fixture as the provider would POST it."""
    body = (FIXTURES / path).read_bytes()
    kind = path.rsplit(".", 1)[1]
    boundary = body.split(b"\r\n", 1)[0][2:].decode() if kind == "multipart" else ""
    return Payload(body, CTYPES[kind].format(b=boundary))


def parse(provider: str, path: str):
    p = payload(path)
    return PROVIDERS[provider].keys(p), PROVIDERS[provider].parse(p)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("iso-8859-1", "Café crème: déployé à 17 h."),
        ("windows-1252", "Finished the “quote” fix – 5 € saved…"),
        ("shift_jis", "今日はリリース作業を完了しました。"),
        ("koi8-r", "Сделал отчёт по продажам."),
    ],
)
def test_sendgrid_parsed_fields_are_decoded_with_their_declared_charsets(name, expected):
    keys, email = parse("sendgrid", f"sendgrid/parsed_{name}.multipart")
    assert email.text.strip() == expected
    assert email.subject == "Re: Übersicht"
    assert keys.message_id == f"<{name}@mail.example.com>" and keys.envelope_to == (TO,)
    assert email.notes == ()


def test_sendgrid_parsed_mode_normalizes_every_field():
    keys, email = parse("sendgrid", "sendgrid/parsed_utf8.multipart")
    assert keys.raw_mime is None and keys.provider_id == ""
    assert (email.from_addr, email.from_name) == ("ada@example.com", "Ada Lovelace")
    assert email.to == (TO,) and email.envelope_to == (TO,)
    assert email.subject == "Re: What did you get done today? ✅"
    assert email.text.startswith("Shipped the billing export.") and "<br>" in email.html
    assert email.in_reply_to == "<reminder-1-20261123@mail.test>"
    assert email.message_id == "<CAF=utf8@mail.example.com>"
    assert (email.spf, email.dkim, email.dkim_domains) == ("pass", "pass", ("example.com",))
    assert email.date.isoformat() == "2026-11-23T16:53:04+00:00"
    assert email.provider == "sendgrid"


def test_sendgrid_html_only_mail_gets_text_derived_from_the_html():
    _, email = parse("sendgrid", "sendgrid/parsed_html_only.multipart")
    assert email.text == "Fixed the login bug\nWrote docs for “inbound”"
    assert "color:red" not in email.text and any("HTML-only" in n for n in email.notes)


def test_sendgrid_attachments_keep_their_names_types_and_bytes():
    _, email = parse("sendgrid", "sendgrid/parsed_attachments.multipart")
    got = [(a.filename, a.content_type, a.size) for a in email.attachments]
    assert got == [("report.pdf", "application/pdf", 45), ("notes.txt", "text/plain", 12)]
    assert email.attachments[0].content.startswith(b"%PDF")


def test_sendgrid_raw_mode_prefers_the_mime_and_keeps_the_envelope():
    keys, email = parse("sendgrid", "sendgrid/raw_mode.multipart")
    assert keys.raw_mime.startswith(b"Received:") and keys.message_id == "<raw-1252@mail.example.com>"
    assert email.subject == "Re: Résumé" and email.from_name == "Ada Lövelace"
    assert email.text.strip() == "Finished the “quote” fix – 5 € saved."
    assert email.envelope_to == (TO,) and email.spf == "pass"


def test_mailgun_parsed_urlencoded_post():
    keys, email = parse("mailgun", "mailgun/parsed.urlencoded")
    assert keys.message_id == "<CAMailgun01@mail.gmail.com>" and keys.envelope_to == (TO,)
    assert email.subject == "Re: Was hast du heute geschafft? ✔"
    assert email.text.startswith("Grüße: merged the importer.")
    assert (email.from_addr, email.from_name) == ("bob@example.com", "Bob Builder")
    assert (email.spf, email.dkim) == ("pass", "pass")
    assert email.in_reply_to == "<reminder-2-20261123@mail.test>"


def test_mailgun_multipart_with_an_attachment():
    _, email = parse("mailgun", "mailgun/parsed_attachment.multipart")
    assert [(a.filename, a.content_type) for a in email.attachments] == [("screen shot.png", "image/png")]
    assert email.attachments[0].content.startswith(b"\x89PNG")


def test_mailgun_mime_variant_is_parsed_from_body_mime_with_its_koi8r_charset():
    keys, email = parse("mailgun", "mailgun/mime_koi8r.multipart")
    assert keys.raw_mime is not None and keys.message_id == "<koi8r@mail.example.ru>"
    assert email.text.strip() == "Сделал отчёт по продажам."
    assert email.subject == "Напоминание" and email.from_name == "Анна"
    assert [a.filename for a in email.attachments] == ["sales.csv"]
    assert email.spf == "pass" and email.envelope_to == (TO,)


def test_postmark_json_is_normalized_with_its_mailbox_hash_and_no_verdict_of_its_own():
    keys, email = parse("postmark", "postmark/inbound.json")
    assert keys.provider_id == "22c74902-a0c1-4511-804f-341342852c90"
    assert keys.message_id == "<CAPostmark01@mail.example.com>"
    assert email.mailbox_hash == "1-20261123-aaaaaaaaaaaaaaaa"
    assert email.cc == ("sample.cc@emailDomain.com",) and email.to == (TO,)
    # Postmark's JSON has no verdict fields: its headers are the mail's, forgeable by the sender
    assert (email.spf, email.dkim, email.dmarc) == ("", "", "")
    assert [(a.filename, a.size) for a in email.attachments] == [("myimage.png", 13)]


def test_postmark_html_only_and_raw_email_variants():
    _, html = parse("postmark", "postmark/html_only.json")
    assert html.text == "Fixed the deploy script\nPaired with Bob"
    keys, raw = parse("postmark", "postmark/raw_email.json")
    assert keys.raw_mime is not None and raw.subject == "Re: Résumé"
    assert raw.mailbox_hash == "1-20261123-aaaaaaaaaaaaaaaa" and raw.provider_id == "9d1e-raw-email"


@pytest.mark.parametrize("path", ["ses/notification_base64.json", "ses/notification_utf8.json"])
def test_ses_notification_content_is_decoded_per_the_action_encoding(path):
    keys, email = parse("ses", path)
    assert keys.provider_id and keys.message_id == "<ses-utf8@mail.example.com>"
    assert email.subject == "Re: Übersicht ✅" and email.from_name == "Ada Lövelace"
    assert email.text.strip() == "Grüße: finished the SES adapter."
    assert (email.spf, email.dkim, email.dmarc) == ("pass", "pass", "pass")


def test_an_ses_subscription_confirmation_carries_no_mail():
    with pytest.raises(PayloadError, match="SubscriptionConfirmation"):
        PROVIDERS["ses"].keys(payload("ses/subscription_confirmation.json"))


@pytest.mark.parametrize(
    "provider, body, ctype, reason",
    [
        ("sendgrid", b"a=b", "application/json", "Content-Type"),
        ("sendgrid", b"--x\r\n", "multipart/form-data", "boundary"),
        ("sendgrid", b"hello=1", "application/x-www-form-urlencoded", "parsed mode"),
        ("mailgun", b"x=1", "application/x-www-form-urlencoded", "body-mime"),
        ("postmark", b"[1]", "application/json", "not an object"),
        ("postmark", b"{nope", "application/json", "not JSON"),
        ("postmark", b"{}", "application/json", "not a Postmark"),
        ("ses", b'{"Type": "Notification", "Message": "x"}', "text/plain", "SES"),
        ("raw", b" \r\n", "message/rfc822", "empty body"),
    ],
)
def test_payloads_in_the_wrong_format_are_refused_with_the_reason(provider, body, ctype, reason):
    with pytest.raises(PayloadError, match=reason):
        PROVIDERS[provider].keys(Payload(body, ctype))


def test_the_registry_is_keyed_by_name():
    assert set(PROVIDERS) == {"sendgrid", "mailgun", "postmark", "ses", "raw", "imap"}
    assert all(name == p.name for name, p in PROVIDERS.items())


_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=20)


@given(_VALUE, st.none() | _VALUE, st.sampled_from(["form-data", "Form-Data", "form-data ", "attachment"]))
@example("email", None, "form-data")
@example("attachment1", "report.pdf", "form-data")
@example('a"b', 'c\\"d', "form-data")
@example("x", "C:\\\\tmp\\\\a.txt", "form-data")
def test_a_content_disposition_is_read_as_the_general_parser_reads_it(name, filename, kind):
    from python_multipart.multipart import parse_options_header

    from parsers.providers.form import disposition

    value = f'{kind}; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    raw = value.encode("latin-1")
    params = parse_options_header(raw)[1]
    assert disposition(raw) == (params.get(b"name"), params.get(b"filename"))


def _form(fields: dict[str, str], boundary: str = "xYzZY") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


DEEP_HTML = "<div>" * 2000 + "Shipped it" + "</div>" * 2000


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "postmark"])
def test_an_html_only_body_past_the_budgets_is_cut_and_the_cut_is_noted(provider):
    sender, subject = "Ada <ada@example.com>", "Re: today"
    if provider == "sendgrid":
        fields = {"from": sender, "to": TO, "subject": subject, "html": DEEP_HTML, "headers": ""}
        p = Payload(_form(fields), CTYPES["multipart"].format(b="xYzZY"))
    elif provider == "mailgun":
        fields = {"sender": "ada@example.com", "from": sender, "recipient": TO, "subject": subject}
        p = Payload(_form({**fields, "body-html": DEEP_HTML}), CTYPES["multipart"].format(b="xYzZY"))
    else:
        doc = {
            "MessageID": "m-1",
            "From": "ada@example.com",
            "To": TO,
            "Subject": subject,
            "HtmlBody": DEEP_HTML,
        }
        p = Payload(json.dumps(doc).encode(), CTYPES["json"])
    email = PROVIDERS[provider].parse(p)
    assert email.text.strip() == "Shipped it"
    assert any("nested deeper" in n for n in email.notes), email.notes


def test_raw_mail_without_a_from_or_headers_is_read_and_noted_not_refused():
    raw = PROVIDERS["raw"]
    for body, note in (
        (b"Subject: hi\r\n\r\nno sender", "no From header"),
        (b"hello there\r\n", "header field"),
    ):
        p = Payload(body, "message/rfc822")
        raw.keys(p)  # does not raise: it is stored
        email = raw.parse(p)
        assert email.from_addr == "" and any(note in n for n in email.notes), email.notes


def _reference_form(body: bytes, boundary: bytes) -> list[tuple]:
    """The parts of a multipart form as python-multipart's streaming parser reads them: (name,
    filename, content type, content)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    parts, cur = [], {}

    def begin():
        cur.update(headers={}, field=b"", value=b"", data=[])

    def header_end():
        cur["headers"][cur["field"].lower()] = cur["value"]
        cur["field"] = cur["value"] = b""

    def end():
        _, params = parse_options_header(cur["headers"].get(b"content-disposition", b""))
        if params.get(b"name") is not None:
            content_type = cur["headers"].get(b"content-type", b"")
            parts.append((params[b"name"], params.get(b"filename"), content_type, b"".join(cur["data"])))

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": lambda d, s, e: cur.update(field=cur["field"] + d[s:e]),
        "on_header_value": lambda d, s, e: cur.update(value=cur["value"] + d[s:e]),
        "on_header_end": header_end,
        "on_part_data": lambda d, s, e: cur["data"].append(d[s:e]),
        "on_part_end": end,
    }
    parser = MultipartParser(boundary, callbacks)
    parser.write(body)
    parser.finalize()
    return parts


_FIELD_NAME = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters='"'), max_size=12
)
_FORM_PART = st.tuples(
    _FIELD_NAME,
    st.none() | _FIELD_NAME,  # a filename
    st.sampled_from([None, "text/plain", "application/pdf"]),  # a Content-Type line
    st.sampled_from(["Content-Disposition", "content-disposition"]),
    st.binary(max_size=40) | st.sampled_from([b"", b"a\r\nb", b"\r\n\r\n--x", b"line\r\n"]),
)


@given(st.lists(_FORM_PART, max_size=6))
@example([("headers", None, None, "Content-Disposition", b"From: a@b\r\n\r\nX")])
@example([("attachment1", "a.pdf", "application/pdf", "Content-Disposition", b"%PDF\r\n")])
@example(
    [("a;b", None, None, "Content-Disposition", b"x"), ("c\\d", None, None, "Content-Disposition", b"y")]
)
def test_a_form_is_read_as_the_streaming_parser_reads_it(fields):
    """parse_form, with its quick reading of plain fields, against python-multipart's parser."""
    from parsers.providers.form import parse_form

    boundary = "bNd7Qz"
    body = b""
    for name, filename, content_type, header, content in fields:
        if boundary.encode() in content:
            return
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        lines = [f"{header}: {disposition}"] + ([f"Content-Type: {content_type}"] if content_type else [])
        body += (
            f"--{boundary}\r\n".encode()
            + "\r\n".join(lines).encode("utf-8")
            + b"\r\n\r\n"
            + content
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    ours = [
        (
            p.name.encode(),
            p.filename.encode() if p.filename is not None else None,
            p.content_type.encode("latin-1"),
            p.content,
        )
        for p in parse_form(body, f"multipart/form-data; boundary={boundary}").parts
    ]
    assert ours == _reference_form(body, boundary.encode())
