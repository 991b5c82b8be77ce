"""parse_mime's bounds and leniency: deep trees, many parts, unknown charsets, verdict headers."""

from parsers.message import MAX_DEPTH, MAX_PARTS, decode_text, html_to_text, parse_mime


def nested(depth: int) -> bytes:
    body = b""
    for i in range(depth):
        body += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
    body += b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b%d--\r\n" % (depth, depth)
    for i in reversed(range(depth)):
        body += b"--b%d--\r\n" % i
    return b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + body


def test_a_tree_deeper_than_the_limit_is_parsed_as_far_as_safe_and_noted():
    email = parse_mime(nested(MAX_DEPTH + 30))
    assert email.from_addr == "a@example.com"
    assert any(f"deeper than {MAX_DEPTH}" in n for n in email.notes)


def test_a_tree_within_the_limit_is_read_to_the_bottom():
    email = parse_mime(nested(10))
    assert email.text.strip() == "deep" and email.notes == ()


def test_more_parts_than_the_limit_are_not_read_and_noted():
    parts = b"".join(
        b"--b0\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=x%d.txt\r\n\r\nx\r\n"
        % i
        for i in range(MAX_PARTS + 200)
    )
    raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + parts + b"--b0--\r\n"
    email = parse_mime(raw)
    assert len(email.attachments) < MAX_PARTS and any(f"more than {MAX_PARTS}" in n for n in email.notes)


def test_an_unknown_charset_is_decoded_leniently_and_noted():
    email = parse_mime(b"From: a@example.com\r\nContent-Type: text/plain; charset=x-martian\r\n\r\nhello\r\n")
    assert email.text.strip() == "hello" and any("unknown charset" in n for n in email.notes)


def test_decode_text_falls_back_and_says_why():
    notes: list[str] = []
    assert decode_text("Grüße".encode("windows-1252"), "utf-8", notes) == "Grüße"
    assert decode_text(b"abc", "no-such-charset", notes) == "abc"
    assert any("windows-1252" in n for n in notes) and any("unknown charset" in n for n in notes)


def test_utf8_encoded_words_in_headers_are_decoded():
    raw = (
        b"From: =?UTF-8?B?QWRhIEzDtnZlbGFjZQ==?= <ada@example.com>\r\n"
        b"Subject: =?UTF-8?Q?Re:_=C3=9Cbersicht?= =?UTF-8?Q?_=E2=9C=85?=\r\n\r\nx"
    )
    email = parse_mime(raw)
    assert email.from_name == "Ada Lövelace" and email.subject == "Re: Übersicht ✅"


def test_authentication_headers_inside_the_message_are_no_verdict_of_ours():
    raw = (
        b"Authentication-Results: forged; spf=pass; dkim=pass; dmarc=pass\r\n"
        b"Received-SPF: Pass (sender SPF authorized)\r\nFrom: ada@example.com\r\n\r\nx"
    )
    email = parse_mime(raw)
    assert (email.spf, email.dkim, email.dmarc) == ("", "", "")
    assert ("Authentication-Results", "forged; spf=pass; dkim=pass; dmarc=pass") in email.headers


def test_html_to_text_keeps_blocks_as_lines_and_drops_styles_and_scripts():
    html = "<style>p{}</style><script>alert(1)</script><p>One&nbsp;two</p><ul><li>a</li><li>b</li></ul>"
    assert html_to_text(html) == "One two\na\nb"


def test_hostile_bytes_never_raise():
    for raw in (b"", b"\x00\xff" * 100, b"Content-Type: multipart/mixed\r\n\r\n--", b":\r\n\r\n"):
        parse_mime(raw)
