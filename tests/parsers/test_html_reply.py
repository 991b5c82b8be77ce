"""Reply extraction from HTML: the client's quote structure is cut before the text pass."""

import pytest

from parsers.reply import extract_reply

NEW = "Shipped the importer"

CLIENTS = [
    (
        "gmail",
        '<div dir="ltr">Shipped the importer</div><br><div class="gmail_quote">'
        '<div dir="ltr" class="gmail_attr">'
        "On Mon, Sep 14, 2015 at 2:23 AM Ana &lt;ana@example.com&gt; wrote:<br></div>"
        '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex">What did you do?</blockquote></div>',
    ),
    (
        "gmail in an unknown language",
        '<div dir="ltr">Shipped the importer</div><div class="gmail_quote"><div class="gmail_attr">'
        'Xyzzy 14.9.2015 plugh Ana:</div><blockquote class="gmail_quote">'
        "What did you do?</blockquote></div>",
    ),
    (
        "old gmail without blockquote",
        'Shipped the importer<div class="gmail_quote">'
        "On 11-Apr-2011, at 6:54 PM, Bob wrote:<div>Test</div></div>",
    ),
    (
        "apple mail",
        '<div>Shipped the importer</div><div><br><blockquote type="cite"><div>'
        "On 14 Sep 2015, at 02:23, Ana "
        "&lt;ana@example.com&gt; wrote:</div><div>What did you do?</div></blockquote></div>",
    ),
    (
        "thunderbird",
        'Shipped the importer<br><div class="moz-cite-prefix">'
        "Le 14/09/2015 à 02:23, Ana a écrit&nbsp;:<br></div>"
        '<blockquote type="cite" cite="mid:x@example.com">What did you do?</blockquote>',
    ),
    (
        "outlook web",
        '<div>Shipped the importer</div><div id="appendonsend"></div>'
        '<hr style="display:inline-block;width:98%" '
        'tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><b>Von:</b> Ana<br><b>Gesendet:</b> Montag<br>'
        "<b>An:</b> ich<br><b>Betreff:</b> x</div><div>What did you do?</div>",
    ),
    (
        "outlook desktop",
        '<div class="WordSection1"><p class="MsoNormal">Shipped the importer</p><div style="border:none;'
        'border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in"><p class="MsoNormal"><b>From:</b> Ana'
        "<br><b>Sent:</b> Monday<br><b>Subject:</b> x</p></div><p>What did you do?</p></div>",
    ),
    (
        "windows mail",
        '<div>Shipped the importer</div><div style="padding-top: 5px; border-top-color: rgb(229, 229, 229); '
        'border-top-width: 1px; border-top-style: solid;"><b>От:</b>&nbsp;Ana<br><b>Отправлено:</b> 14</div>'
        "<div>What did you do?</div>",
    ),
    (
        "yahoo",
        '<div>Shipped the importer</div><div id="ydp1yahoo_quoted_123" class="ydp1yahoo_quoted">'
        "<div>On Monday, September 14, 2015, 2:23 AM, Ana wrote:</div><div>What did you do?</div></div>",
    ),
    (
        "hotmail",
        '<div>Shipped the importer<div><hr id="stopSpelling">Date: Thu, 26 Jun 2014<br>From: ana@example.com'
        "<br><br>What did you do?</div></div>",
    ),
    (
        "outlook for mac",
        '<div>Shipped the importer</div><span id="OLK_SRC_BODY_SECTION"><div><span>From: </span>Ana<br>'
        "<span>Date: </span>Tue</div><div>What did you do?</div></span>",
    ),
    (
        "zimbra",
        '<div>Shipped the importer<br><hr id="zwchr"><b>From: </b>ana@example.com<br>What did you do?</div>',
    ),
    (
        "mail.ru",
        "<p>Shipped the importer</p>Thu, 26 Jun 2014 14:00:51 +0400 от Ana &lt;ana@example.com&gt;:<br>"
        '<blockquote style="border-left:1px solid #0857A6">What did you do?</blockquote>',
    ),
    (
        "plain blockquote after a header",
        "Shipped the importer<div>On 11-Apr-2011, at 6:54 PM, Bob &lt;bob@example.com&gt; wrote:</div>"
        "<blockquote>What did you do?</blockquote>",
    ),
]


@pytest.mark.parametrize("client,html", CLIENTS, ids=[c for c, _ in CLIENTS])
def test_each_clients_html_quote_is_cut(client, html):
    reply = extract_reply(html)
    assert reply.text == NEW
    assert reply.from_html
    assert "What did you do?" not in reply.text


def test_a_blockquote_the_sender_wrote_above_the_quote_is_kept():
    html = (
        "Reply<blockquote>Regular</blockquote><div>On 11-Apr-2011, at 6:54 PM, Bob wrote:</div>"
        "<blockquote><div><blockquote>Nested</blockquote></div></blockquote>"
    )
    assert extract_reply(html).text == "Reply\nRegular"


def test_gmail_quote_button_content_is_not_a_quote():
    html = 'Message<blockquote class="gmail_quote"><div>My name is William Shakespeare.</div></blockquote>'
    assert extract_reply(html).text == "Message\nMy name is William Shakespeare."


def test_gmail_indent_is_not_a_quote():
    html = 'Plan:<blockquote style="margin:0 0 0 40px;border:none;padding:0px">step one</blockquote>'
    assert extract_reply(html).text == "Plan:\nstep one"


def test_text_after_an_unmarked_blockquote_is_kept():
    html = "<div><div>message</div><blockquote>Quote</blockquote></div><div>more news</div>"
    assert extract_reply(html).text == "message\nmore news"


def test_gmail_inline_answers_inside_the_quote_are_kept():
    html = (
        '<div class="gmail_quote"><div class="gmail_attr">On Mon, Ana &lt;ana@example.com&gt; wrote:</div>'
        '<blockquote class="gmail_quote">What did you do?</blockquote><div>Fixed the bug</div>'
        '<blockquote class="gmail_quote">Blocked?</blockquote><div>No</div></div>'
    )
    assert extract_reply(html).text == "Fixed the bug\nNo"


def test_a_gmail_forward_is_kept_apart_from_the_new_text_above_it():
    html = (
        '<div dir="ltr">FYI<div class="gmail_quote">---------- Forwarded message ----------<br>'
        "From: Bob &lt;bob@example.com&gt;<br>Subject: x<br><br><div>eom</div></div></div>"
    )
    reply = extract_reply(html)
    assert reply.forwarded and reply.text == "FYI"
    assert reply.forwarded_text.startswith("---------- Forwarded") and reply.forwarded_text.endswith("eom")
    assert reply.rule == "forward" and reply.lines[reply.cut_at].startswith("---------- Forwarded")


def test_list_items_become_lines_for_the_entry_splitter():
    html = "<ul><li>shipped #billing</li><li>reviewed @bob</li></ul><div class='gmail_quote'>old</div>"
    assert extract_reply(html).text == "shipped #billing\nreviewed @bob"


def test_styles_scripts_and_comments_are_not_text():
    html = "<html><head><style>p{}</style><script>x()</script></head><body><!-- c -->Hi</body></html>"
    assert extract_reply(html).text == "Hi"


def test_preformatted_text_keeps_its_lines():
    assert extract_reply("<pre>one\ntwo</pre>").text == "one\ntwo"


@pytest.mark.parametrize("html", ["<div", "<<<div>>>", "<html></html>", "<div>" * 3000, "<table><tr><td>x"])
def test_broken_html_never_raises(html):
    extract_reply(html)


def test_outlook_ids_rewrapped_with_an_x_prefix_still_cut():
    html = '<div>Shipped the importer</div><div id="x_divRplyFwdMsg"><b>From:</b> Ana</div><div>old</div>'
    assert extract_reply(html).text == NEW


@pytest.mark.parametrize("cls", ["tutanota_quote", "protonmail_quote"])
def test_webmail_quote_classes_mark_a_quote(cls):
    html = f'<div>Shipped the importer</div><blockquote class="{cls}">old</blockquote><div>p.s. more</div>'
    assert extract_reply(html).text == NEW + "\np.s. more"
