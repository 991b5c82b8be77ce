"""Properties of reply extraction over arbitrary text."""

import string
from unittest import mock

from hypothesis import assume, given, settings
from hypothesis import strategies as st

import parsers.reply as reply_module
from parsers.quotes import RULES
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
        "##- Please type your reply above this line -##",
        "| quoted with a pipe",
        ": quoted with a colon",
        "> a long quoted line that a client wrapped without repeating the marker at",
        "the end",
        "Ana Ruiz wrote:",
        "* Ana <ana@example.com> [2015-09-14 02:23]:",
        "‐‐‐‐‐‐‐ Original Message ‐‐‐‐‐‐‐",
        "Begin forwarded message:",
        "Von meinem iPhone gesendet",
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
    reply = extract_reply(text)
    again = extract_reply(reply.text)
    assert again.text == reply.text and again.cut_at is None


def _content(lines):
    return [line.strip() for line in lines if line.strip()]


def check_cut_point(reply):
    """The cut point is in range, names a rule of the table with that rule's confidence, and the
    lines above it are the start of the reply's text."""
    if reply.cut_at is None:
        assert reply.rule == "" and reply.confidence == "high"
        return
    assert 0 <= reply.cut_at < len(reply.lines)
    assert reply.rule in RULES
    assert reply.confidence in (RULES[reply.rule].confidence, RULES[reply.rule].quoted)
    above, text = _content(reply.lines[: reply.cut_at]), _content(reply.text.split("\n"))
    assert text[: len(above)] == above
    # something was cut: fewer lines are kept, or a line kept only its head (an attribution split off)
    assert len(text) < len(_content(reply.lines)) or any(
        not any(line == source for source in _content(reply.lines)) for line in text
    )


@given(MESSAGES, st.booleans())
@settings(max_examples=500, deadline=None)
def test_a_plain_text_cut_point_indexes_the_input_lines_and_agrees_with_the_text(text, strip):
    assume(not looks_like_html(text) and not looks_like_mime(text))
    reply = extract_reply(text, strip_signature=strip)
    assert reply.lines == tuple(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    check_cut_point(reply)
    if reply.cut_at is None:
        # nothing cut: every line is there
        assert _content(reply.text.split("\n")) == _content(reply.lines)
        assert not reply.quoted and not reply.signature and not reply.forwarded_text


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
        "<div class='gmail_signature'>",
        "<div id='Signature'>",
        "<div class='moz-signature'>",
        "<p>&nbsp;</p>",
        "-- <br>Ana",
        "Sent from my iPhone",
        "##- Please type your reply above this line -##",
        "<div class='yahoo_quoted'>",
        "Thanks,<br>Ana",
    ]
)


@given(st.lists(HTML_PIECES, max_size=40).map("".join))
@settings(max_examples=300, deadline=None)
def test_arbitrary_html_never_raises_and_gives_text(html):
    reply = extract_reply("<div>" + html)
    assert reply.from_html or not reply.text
    assert "<div" not in reply.text
    check_cut_point(reply)


# the pieces a member's reply above our quoted reminder is made of, for the repeated pass's skip
_OURS = ("Hi Ada,", "What did you get done today? Reply to this email: each line becomes an entry.")
_REPLY_PIECES = st.sampled_from(
    [
        "Shipped the export (ticket 12)",
        "Tomorrow: docs",
        "- fixed #4 with @bob",
        "",
        "  ",
        "Thanks,",
        "Ada",
        "Cheers!",
    ]
    + [f"> {line}" for line in _OURS]
    + [
        "On Mon, Nov 23, 2026 at 5:00 PM Donebox <r@x.example> wrote:",
        "Sent from my iPhone",
        "-- ",
        "From: a@x",
    ]
    + [
        "Sent: Monday",
        "Thanks! On Mon, Sep 14, 2015 at 2:23 AM Ana <ana@example.com> wrote:",
        "a=3Db",
        *_OURS,
    ]
)
REPLIES = st.lists(st.one_of(_REPLY_PIECES, LINE), max_size=20).map("\n".join)


@given(st.one_of(REPLIES, MESSAGES), st.booleans())
@settings(max_examples=1500, deadline=None)
def test_a_pass_skipped_as_stable_would_have_changed_nothing(text, strip):
    """extract_reply skips the repeated text pass where the first one kept a run of whole lines
    and cut all after it (parsers.reply._stable): the Reply is what running the pass gives."""
    skipping = extract_reply(text, strip_signature=strip, known_quotes=_OURS)
    with mock.patch.object(reply_module, "_stable", return_value=False):
        assert skipping == extract_reply(text, strip_signature=strip, known_quotes=_OURS)


def test_a_reply_above_our_quoted_reminder_needs_one_pass():
    text = "Shipped the export\nTomorrow: docs\n\nThanks,\nAda\n\n"
    text += "On Mon, Nov 23, 2026 at 5:00 PM Donebox <r@x> wrote:\n"
    text += "\n".join(f"> {line}" for line in _OURS)
    with mock.patch.object(reply_module, "_one_pass", wraps=reply_module._one_pass) as passes:
        assert extract_reply(text, known_quotes=_OURS).text == "Shipped the export\nTomorrow: docs"
    assert passes.call_count == 1
    # a quote between two kept parts: the pass is run again
    with mock.patch.object(reply_module, "_one_pass", wraps=reply_module._one_pass) as passes:
        assert extract_reply("Yes\n> x?\nNo").text == "Yes\nNo"
    assert passes.call_count == 2
