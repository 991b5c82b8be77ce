import html
import json
import subprocess
import sys
from email.parser import BytesParser
from email.policy import default
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from app.errors import RenderError, UnregisteredKind
from app.relay import render
from app.relay.render import ascii_address, build_message, render_message
from tests.conftest import FIXED_NOW

BREAKS = "".join(map(chr, [*range(0, 9), *range(10, 32), 0x7F, 0x85, 0x2028, 0x2029]))


def make(**kw):
    args = dict(
        from_addr="donebox@mail.test",
        from_name="donebox",
        to="ada@example.com",
        subject="Hello",
        text="text part",
        html="<p>html part</p>",
        message_id="<abc@mail.test>",
        date=FIXED_NOW,
    )
    args.update(kw)
    return build_message(**args)[0]


def parse(raw: bytes):
    return BytesParser(policy=default).parsebytes(raw)


def test_unicode_names_and_subjects_become_encoded_words_and_domains_idna():
    raw = make(
        from_name="Jörg «Müller», Team",
        from_addr="news@bücher.de",
        to="zoe@exämple.com",
        to_name="Zoë",
        subject="日本語 — Grüße " * 6,
    )
    assert raw.isascii()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"xn--bcher-kva.de" in head and b"xn--exmple-cua.com" in head
    msg = parse(raw)
    assert msg["From"].addresses[0].display_name == "Jörg «Müller», Team"
    assert msg["To"].addresses[0].display_name == "Zoë"
    assert str(msg["Subject"]) == "日本語 — Grüße " * 6
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_a_non_ascii_local_part_is_refused_not_mangled():
    with pytest.raises(RenderError, match="SMTPUTF8"):
        ascii_address("jörg@example.com")


@pytest.mark.parametrize(
    "subject",
    [
        "Hi\r\nBcc: victim@example.com",
        "Hi\nBcc: x",
        "Hi\rBcc: x",
        "=?UTF-8?Q?Hi=0ABcc:_victim@example.com?=",
        "=?utf-8?b?SGkNCkJjYzogeA==?=",
        "ok =?UTF-8?Q?=0D?= not ok",
    ],
)
def test_a_line_break_in_a_header_is_refused_even_when_encoded(subject):
    with pytest.raises(RenderError, match="line break"):
        make(subject=subject)


@pytest.mark.parametrize("field", ["from_name", "to_name", "message_id"])
def test_every_header_value_is_checked_for_encoded_line_breaks(field):
    with pytest.raises(RenderError):
        make(**{field: "=?UTF-8?Q?x=0Ay?="})


def test_extra_headers_are_checked_too():
    with pytest.raises(RenderError):
        make(headers={"Reply-To": "=?UTF-8?Q?a=0D=0ABcc:_b@c.d?= <a@b.c>"})


def test_the_message_is_multipart_alternative_with_text_and_html_and_crlf_only():
    raw = make(text="line\rone\nline two\r\n.\nend", html="<p>x</p>")
    assert raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert "line two" in msg.get_body(("plain",)).get_content()
    assert msg.get_body(("html",)).get_content().strip() == "<p>x</p>"
    assert msg["Message-ID"] == "<abc@mail.test>"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40))
def test_any_unicode_subject_and_name_either_round_trip_or_are_refused(subject, name):
    try:
        raw = make(subject=subject, from_name=name)
    except RenderError:
        assert any(c in subject + name for c in BREAKS) or "=?" in subject + name
        return
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert raw.isascii()
    for line in head.split(b"\r\n")[1:]:
        assert line[:1] in (b" ", b"\t") or b":" in line  # no injected header-less line
    msg = parse(raw)
    names = [h.lower() for h in msg.keys()]
    assert names.count("subject") == 1 and names.count("from") == 1 and "bcc" not in names


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=120)
)
def test_a_subject_round_trips_through_a_standard_parser(subject):
    subject = subject.strip() or "x"
    try:
        raw = make(subject=subject, to_name=subject)
    except RenderError:
        assert "=?" in subject
        return
    msg = parse(raw)
    assert str(msg["Subject"]) == subject


@given(
    st.sampled_from(["Subject", "X-Donebox-Kind", "List-Unsubscribe-Post", "Auto-Submitted"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90),
)
def test_a_short_ascii_header_is_written_as_the_email_package_would_fold_it(name, value):
    from email.header import Header

    from app.relay.render import _unstructured

    assert _unstructured(name, value) == f"{name}: " + Header(value, header_name=name).encode(linesep="\r\n")


# ---------------------------------------------------------------- the context registry


def stored_row(kind: str, context: dict, template: str = "api"):
    return SimpleNamespace(kind=kind, template=template, context=json.dumps(context))


def test_a_kind_nothing_registered_is_a_render_error_naming_it():
    with pytest.raises(UnregisteredKind, match="'newsletter'") as e:
        render_message(None, stored_row("newsletter", {"text": "hi", "html": ""}), None)
    assert isinstance(e.value, RenderError)


def test_a_registered_builder_makes_the_context_it_renders_with(monkeypatch):
    monkeypatch.setattr(render, "_CONTEXTS", dict(render._CONTEXTS))
    seen = []

    def build(s, message, stored, settings):
        seen.append((s, stored, settings))
        return {"text": f"built from {stored['n']}", "html": ""}

    render.register_context("newsletter", build)
    context, text, html = render_message("session", stored_row("newsletter", {"n": 7}), "settings")
    assert seen == [("session", {"n": 7}, "settings")] and text.strip() == "built from 7"
    assert context == {"text": "built from 7", "html": ""} and "built from 7" in html
    assert render.registered("newsletter").shared is False


def test_kinds_queued_with_their_whole_context_render_it_as_stored():
    for kind in ("api", "signin", "invite"):
        _, text, _ = render_message(None, stored_row(kind, {"text": "as stored", "html": ""}), None)
        assert text.strip() == "as stored"


def test_the_relay_alone_registers_no_check_in_kind_and_the_worker_registers_them_all():
    code = (
        "import app.relay.pipeline; from app.relay import render;"
        "print(sorted(render._CONTEXTS));"
        "import jobs.actors;"
        "print(sorted((k, v.shared) for k, v in render._CONTEXTS.items()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    relay_only, worker = out.splitlines()
    assert relay_only == "['api', 'invite', 'signin']"
    assert worker == str(
        [
            ("api", False),
            ("away", False),
            ("blocker", False),
            ("comment", False),
            ("digest", True),
            ("invite", False),
            ("mention", False),
            ("nudge", False),
            ("participation", True),
            ("reminder", False),
            ("signin", False),
            ("weekly", True),
        ]
    )


# ---------------------------------------------------------------- the HTML part's encoding


def html_part(raw: bytes):
    return parse(raw).get_body(("html",))


def test_an_html_part_goes_unencoded_its_non_ascii_as_character_references_a_browser_reads():
    page = '<html><head><style>p{color:#333}</style></head><body><p title="Ñandú">Ñandú wrote — 3 ✓</p>'
    raw = make(html=page, text="Ñandú wrote")
    part = html_part(raw)
    assert part["Content-Transfer-Encoding"] == "7bit"
    sent = part.get_content()
    assert sent.isascii() and "&#209;and&#250; wrote &#8212; 3 &#10003;" in sent
    tree = HTMLParser(sent)  # what a mail client's HTML engine makes of it
    assert tree.css_first("p").text() == "Ñandú wrote — 3 ✓"
    assert tree.css_first("p").attributes["title"] == "Ñandú"
    assert b"=3D" not in raw and b'<p title="' in raw  # as written, not quoted-printable
    assert parse(raw).get_body(("plain",))["Content-Transfer-Encoding"] == "quoted-printable"


@pytest.mark.parametrize(
    "page, why",
    [
        ("<style>p::after{content:'→'}</style><p>x</p>", "a reference in a style element is not read"),
        ("<p>x</p><SCRIPT>var a = 'é';</script>", "nor in a script element, whatever its case"),
        ("<p>é</p><NoScript>ü</noscript>", "nor in a noscript element, after non-ASCII text outside it"),
        ("<p>" + "x" * 1000 + "</p>", "a line longer than 998 octets"),
        ("<p>x</p> \n<p>y</p>", "a line ending in white space (a server may strip it, breaking DKIM)"),
        ("<p>x\x00</p>", "a NUL"),
        ("<p>x\x85y</p>", "a C1 control (a reference to it reads as a windows-1252 character)"),
    ],
)
def test_an_html_part_that_cannot_go_unencoded_goes_quoted_printable_unchanged(page, why):
    part = html_part(make(html=page))
    assert part["Content-Transfer-Encoding"] == "quoted-printable", why
    assert part.get_content().replace("\r\n", "\n") == page


def test_a_tag_whose_name_folds_to_style_only_outside_ascii_is_no_style_element():
    # HTML lower-cases a tag's name in ASCII only: "<ſtyle>" is an element of its own, whose text
    # reads character references, so its part goes unencoded
    page = "<ſtyle>é</ſtyle><p>x</p>"
    part = html_part(make(html=page))
    assert part["Content-Transfer-Encoding"] == "7bit"
    assert html.unescape(part.get_content().replace("\r\n", "\n")) == page


def test_an_html_part_holding_the_boundary_goes_quoted_printable(monkeypatch):
    class Fixed:
        hex = "0123456789abcdef0123456789abcdef"

    monkeypatch.setattr(render.uuid, "uuid4", lambda: Fixed)
    page = f"<p>--=_{Fixed.hex}</p>"
    msg = parse(make(html=page))
    assert msg.get_body(("html",))["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.get_body(("html",)).get_content() == page
    assert len(list(msg.iter_parts())) == 2


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_html_part_reads_back_as_the_same_characters(page):
    part = html_part(make(html=f"<p>{page}</p>"))
    sent = part.get_content()
    expected = f"<p>{page}</p>".replace("\r\n", "\n").replace("\r", "\n")
    if part["Content-Transfer-Encoding"] == "7bit":
        assert sent.isascii() and html.unescape(sent.replace("\r\n", "\n")) == html.unescape(expected)
    else:
        assert sent.replace("\r\n", "\n") == expected


def text_part(raw: bytes) -> str:
    return next(p for p in parse(raw).walk() if p.get_content_type() == "text/plain").get_content()


def test_a_text_part_kept_encoded_is_still_each_texts_own():
    # a team's recipients share one text part, encoded once: every other text gets its own
    texts = ["Ada: shipped the digest", "Grace: fixed the ümlaut", "Ada: shipped the digest", "x" * 200]
    for text in texts * 2:
        assert text_part(make(text=text)).replace("\r\n", "\n").rstrip("\n") == text
    long = "é" * (render.TEXT_PART_MAX_CHARS + 1)
    before = render._kept_qp.cache_info().currsize
    assert text_part(make(text=long)).rstrip("\n") == long
    assert render._kept_qp.cache_info().currsize == before  # too long to keep


# ---------------------------------------------------------------- long header fields

_ITEM = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",;"]),
    min_size=1,
    max_size=130,
)


@settings(max_examples=600, deadline=None)
@given(
    name=st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,89}", fullmatch=True),
    items=st.lists(_ITEM, min_size=1, max_size=5),
)
def test_a_long_list_field_is_folded_as_email_header_folds_it(name, items):
    # List-Unsubscribe, folded for each message without email.header, folds as it does
    from email.header import Header

    value = ", ".join(items)
    expected = Header(value, header_name=name).encode(linesep="\r\n")
    if len(name) + 2 + len(value) > 78:
        assert render._folded_list(name, value) == expected
    assert render._unstructured(name, value) == f"{name}: {expected}"


@pytest.mark.parametrize(
    "value",
    [
        "a b " * 30,
        "<a>; <b> " * 10,
        "x," * 60,
        "<mailto:a@b>,  <https://x/" + "y" * 80 + ">",
        "<a>,\t<b>" * 12,
        "",
    ],
)
def test_a_field_not_a_plain_list_is_left_to_email_header(value):
    assert render._folded_list("List-Unsubscribe", value) is None


def test_a_render_asks_the_file_system_nothing_once_its_templates_are_compiled(monkeypatch, reminder_context):
    import os.path

    first = render.render_parts("reminder", reminder_context)
    asked = []
    real = os.path.getmtime
    monkeypatch.setattr(os.path, "getmtime", lambda p: asked.append(p) or real(p))
    assert render.render_parts("reminder", reminder_context) == first
    assert asked == []
