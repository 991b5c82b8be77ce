"""Properties of reply extraction over arbitrary text."""

import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from parsers.reply import extract_reply, extract_reply_text, looks_like_html, looks_like_mime

# Lines built from pieces that real replies are made of, so quote and signature rules fire.
PIECES = st.sampled_from(
    [
        "On Mon, Sep 14, 2015 at 2:23 AM Ana <ana@example.com> wrote:",
        "> quoted",
        ">",
        "-- ",
        "--",
        "From: ana@example.com",
        "Sent: Monday",
        "Subject: x",
        "-----Original Message-----",
        "---------- Forwarded message ---------",
        "Sent from my iPhone",
        "Thanks,",
        "Ana",
        "- shipped #x",
        "",
        "reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:",
    ]
)
LINE = st.one_of(PIECES, st.text(alphabet=string.printable + "äö€>:-", max_size=60))
MESSAGES = st.lists(LINE, max_size=25).map("\n".join)


@given(st.one_of(st.text(), st.binary(), MESSAGES))
@settings(max_examples=500, deadline=None)
def test_arbitrary_input_never_raises(message):
    extract_reply(message)


def _lines(text):
    return [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


@given(MESSAGES)
@settings(max_examples=500, deadline=None)
def test_every_line_of_a_plain_text_reply_comes_from_the_input(text):
    assume(not looks_like_html(text) and not looks_like_mime(text))
    source = _lines(text)
    for line in _lines(extract_reply_text(text)):
        # a line is kept whole, or cut where an attribution starts on the same line
        assert line in source or any(s.startswith(line) for s in source)


@given(MESSAGES)
@settings(max_examples=500, deadline=None)
def test_extraction_is_idempotent(text):
    once = extract_reply_text(text)
    assert extract_reply_text(once) == once


HTML_PIECES = st.sampled_from(
    [
        "<div>",
        "</div>",
        "<blockquote>",
        "</blockquote>",
        "<blockquote type='cite'>",
        "<div class='gmail_quote'>",
        "<div class='gmail_attr'>",
        "<div id='divRplyFwdMsg'>",
        "<hr id='stopSpelling'>",
        "<div style='border-top:solid #E1E1E1 1.0pt'>",
        "<br>",
        "<pre>",
        "</pre>",
        "<p>",
        "&nbsp;",
        "text",
        "From: a@example.com<br>Sent: Monday",
        "On Mon, Sep 14, 2015 at 2:23 AM Ana &lt;ana@example.com&gt; wrote:",
        "---------- Forwarded message ----------",
    ]
)


@given(st.lists(HTML_PIECES, max_size=40).map("".join))
@settings(max_examples=300, deadline=None)
def test_arbitrary_html_never_raises_and_gives_text(html):
    reply = extract_reply("<div>" + html)
    assert reply.from_html or not reply.text
    assert "<div" not in reply.text
