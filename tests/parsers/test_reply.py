"""Reply extraction from plain text: one realistic message per quote-header family."""

import signal
from contextlib import contextmanager
from dataclasses import FrozenInstanceError

import pytest

from parsers.limits import MAX_TEXT_CHARS
from parsers.message import InboundEmail
from parsers.reply import Reply, extract_reply, extract_reply_text

NEW = "Shipped the CSV importer.\nReviewed the billing PR."


def body(tail: str) -> str:
    return NEW + "\n\n" + tail


# (family, the quoted tail a client writes under the new text)
QUOTE_HEADERS = [
    (
        "gmail english",
        "On Mon, Sep 14, 2015 at 2:23 AM Ana Ruiz <ana@example.com> wrote:\n\n> What did you do?",
    ),
    (
        "gmail wrapped",
        "On Mon, Sep 14, 2015 at 2:23 AM Ana Ruiz <\nana@example.com> wrote:\n\n> What did you do?",
    ),
    (
        "gmail wrote on its own line",
        "On Wed, May 18, 2016 at 11:10 PM Ana Ruiz <ana@example.com>\nwrote:\n\nHi",
    ),
    ("apple mail", "On 14 Sep 2015, at 02:23, Ana Ruiz <ana@example.com> wrote:\n\n> hi"),
    ("apple mail quoted header", "> On 14 Sep 2015, at 02:23, Ana Ruiz <ana@example.com> wrote:\n>\n> hi"),
    ("thunderbird", "On 14/09/2015 02:23, Ana Ruiz wrote:\n> hi"),
    ("outlook for mac", 'On 9/14/15, 2:23 AM, "Ana Ruiz" <ana@example.com> wrote:\n\nhi'),
    ("yahoo dashed", "--- On Mon, 9/14/15, Ana Ruiz <ana@example.com> wrote:\n\n> hi"),
    ("zoho banner", "---- On Mon, 14 Sep 2015 02:23:18 +0200 ana@example.com wrote ----\n\nhi"),
    ("android banner", "---- Ana Ruiz wrote ----\n\n> hi"),
    ("horde", "Quoting Ana Ruiz <ana@example.com>:\n\n> hi"),
    ("french", "Le lun. 14 sept. 2015 à 02:23, Ana Ruiz <ana@example.com> a écrit :\n\n> salut"),
    ("french wrapped", "Le lun. 15 nov. 2021 à 19:42, Ana - Acme <ana@example.com>\na écrit :\n\nBonjour"),
    ("german gmail", "Am Mo., 14. Sept. 2015 um 02:23 Uhr schrieb Ana Ruiz <ana@example.com>:\n\n> hallo"),
    ("german thunderbird", "Am 14.09.2015 um 02:23 schrieb Ana Ruiz:\n> hallo"),
    ("german name first", "Ana Ruiz <ana@example.com> schrieb am Mo., 14. Sep. 2015 um 02:23:\n\n> hallo"),
    ("spanish", "El lun., 14 sept. 2015 a las 2:23, Ana Ruiz (<ana@example.com>) escribió:\n\n> hola"),
    (
        "portuguese wrapped",
        "Em 10 de julho de 2017 às 16:32:35, Ana Ruiz (\nana@example.com) escreveu:\n\nOi",
    ),
    ("italian", "Il giorno lun 14 set 2015 alle ore 02:23 Ana Ruiz <ana@example.com> ha scritto:\n\n> ciao"),
    ("italian in data", 'In data 11 ottobre 2017 21:11:31 "Ana Ruiz" <ana@example.com> ha scritto:\n\nciao'),
    ("dutch", "Op ma 14 sep. 2015 om 02:23 schreef Ana Ruiz <ana@example.com>:\n\n> hoi"),
    (
        "dutch apple",
        "Op 17-feb.-2015, om 13:18 heeft Ana Ruiz <ana@example.com> het volgende geschreven:\n\nhoi",
    ),
    ("polish", "W dniu 28 stycznia 2015 01:53 użytkownik Ana Ruiz <ana@example.com>\nnapisał:\n\nczesc"),
    ("polish gmail", "pon., 14 wrz 2015 o 02:23 Ana Ruiz <ana@example.com> napisał(a):\n\n> czesc"),
    ("swedish", "Den 14 september, 2015 02:23:18, Ana Ruiz (ana@example.com) skrev:\n\nhej"),
    ("norwegian", "På 14 september 2015 på 02:23:18, Ana Ruiz (ana@example.com) skrev:\n\nhei"),
    ("danish gmail", "man. 14. sep. 2015 kl. 02:23 skrev Ana Ruiz <ana@example.com>:\n\n> hej"),
    ("finnish wrapped", "pe 20. lokakuuta 2017 klo 17.50 Ana Ruiz\n<ana@example.com> kirjoitti:\n\nKiitos"),
    ("czech", "po 14. 9. 2015 v 2:23 odesílatel Ana Ruiz <ana@example.com> napsal:\n\n> ahoj"),
    ("russian gmail", "ср, 30 апр. 2025 г. в 15:19, Ana Ruiz <ana@example.com>:\n\nпривет"),
    (
        "russian android",
        '02.04.2012 14:20 пользователь "ana@example.com" <\nana@example.com> написал:\n\n> Hi',
    ),
    ("turkish", "Ana Ruiz <ana@example.com>, 14 Eyl 2015 Pzt, 02:23 tarihinde şunu yazdı:\n\n> merhaba"),
    ("japanese", "2015年9月14日(月) 2:23 Ana Ruiz <ana@example.com>:\n\n> こんにちは"),
    ("chinese", "Ana Ruiz <ana@example.com> 于2015年9月14日周一 上午2:23写道：\n\n> 你好"),
    ("korean", "2015년 9월 14일 (월) 오전 2:23, Ana Ruiz <ana@example.com>님이 작성:\n\n> 안녕"),
    ("korean outlook", "2015년 9월 14일 월요일, Ana<ana@example.com>님이 작성하였습니다:\n\n> 안녕"),
    ("polish dnia", "Dnia 14.09.2015 o godz. 02:23 Ana <ana@example.com> napisał(a):\n\n> hej"),
    ("hungarian", "Ana Ruiz <ana@example.com> ezt írta (időpont: 2015. szept. 14., H, 2:23):\n\n> Szia"),
    (
        "hebrew",
        "\u202bבתאריך יום ב׳, 14 בספט׳ 2015 ב-2:23 מאת \u202aAna Ruiz\u202c\u200f "
        "<\u202aana@example.com\u202c\u200f>:\u202c\n\n> שלום",
    ),
    (
        "arabic",
        "في الاثنين، 14 سبتمبر 2015 في 2:23 ص تمت كتابة ما يلي بواسطة Ana <ana@example.com>:\n\n> مرحبا",
    ),
    ("vietnamese", "Vào 14:24 8 tháng 6, 2017, Ana Ruiz <ana@example.com> đã viết:\n\n> Xin chào"),
    ("date and address", "2014-10-17 11:28 GMT+03:00 Postmaster <\npostmaster@example.org>:\n\n> First"),
    ("yandex", '26.06.2014, 14:41, "Ana Ruiz" <ana@example.com>:\n\n> Hello'),
    (
        "polymail",
        "On Tue, Apr 11, 2017 at 10:07 PM Ana Ruiz\n\n<\nmailto:Ana Ruiz <ana@example.com>\n> wrote:\nhi",
    ),
]


@pytest.mark.parametrize("family,tail", QUOTE_HEADERS, ids=[f for f, _ in QUOTE_HEADERS])
def test_a_quote_header_and_everything_under_it_is_cut(family, tail):
    reply = extract_reply(body(tail))
    assert reply.text == NEW
    assert reply.quoted
    assert not reply.empty


OUTLOOK_BLOCKS = [
    (
        "english",
        "From: Ana Ruiz <ana@example.com>\nSent: Monday, September 14, 2015 2:23 AM\nTo: me\nSubject: Hi",
    ),
    (
        "english with rule",
        "________________________________\nFrom: Ana <ana@example.com>\nSent: Wed\nTo: me\nSubject: x",
    ),
    (
        "bold",
        "*From:* Ana [mailto:\nana@example.com]\n*Sent:* Wednesday, June 27, 2012 3:05 PM\n"
        "*To:* me\n*Subject:* x",
    ),
    ("date first", "Date: Wed, 16 May 2012 00:15:02 -0600\nTo: me@example.com"),
    (
        "german",
        "Von: Ana Ruiz <ana@example.com>\nGesendet: Montag, 14. September 2015 02:23\nAn: ich\nBetreff: x",
    ),
    ("french", "De : Ana Ruiz <ana@example.com>\nEnvoyé : lundi 14 septembre 2015 02:23\nÀ : moi\nObjet : x"),
    (
        "spanish",
        "De: Ana Ruiz <ana@example.com>\nEnviado: lunes, 14 de septiembre de 2015\nPara: yo\nAsunto: x",
    ),
    ("danish", "Fra: ana@example.com\nSendt: 19. march 2011 12:10\nTil: Somebody\nEmne: x"),
    (
        "swedish",
        "Från: Ana [mailto:ana@example.com]\nSkickat: den 26 augusti 2015 14:45\nTill: Leif\nÄmne: x",
    ),
    ("polish", "Od: Ana Ruiz <ana@example.com>\nWysłano: poniedziałek, 14 września 2015\nDo: ja\nTemat: x"),
    ("russian", "От: Ana Ruiz <ana@example.com>\nОтправлено: 14 сентября 2015 г. 2:23\nКому: я\nТема: x"),
    ("turkish", "Kimden: Ana Ruiz <ana@example.com>\nGönderildi: 14 Eylül 2015\nKime: ben\nKonu: x"),
    ("japanese", "差出人: Ana Ruiz <ana@example.com>\n送信日時: 2015年9月14日 2:23\n宛先: me\n件名: x"),
    ("chinese", "发件人: Ana Ruiz <ana@example.com>\n发送时间: 2015年9月14日 2:23\n收件人: me\n主题: x"),
    ("korean", "보낸사람: Ana <ana@example.com>\n받는사람: me\n제목: x"),
    (
        "yahoo french",
        "De : Ana <ana@example.fr>\n À : moi <moi@example.com>\n Envoyé le : Mercredi 30 novembre 2016",
    ),
    ("original message", "-----Original Message-----\nFrom: Ana\nSent: Mon\nTo: me\nSubject: x"),
    ("german original message", "-----Ursprüngliche Nachricht-----\nVon: Ana\nAn: Erika\nBetreff: x"),
    (
        "danish banner",
        "-------- Oprindelig besked --------\nFra: Ana <ana@example.com>\nDato: 04.07.2024\nTil: x",
    ),
    (
        "yahoo",
        "----- Original Message -----\nFrom: ana@example.com\nTo: me\nCc: \nSent: Monday, April 2, 2012",
    ),
    ("one line", "From: ana@example.com Date: Thu, 24 Mar 2016 08:07:12 -0700"),
]


@pytest.mark.parametrize("family,tail", OUTLOOK_BLOCKS, ids=[f for f, _ in OUTLOOK_BLOCKS])
def test_an_outlook_header_block_starts_the_quote(family, tail):
    assert extract_reply_text(body(tail + "\n\nThe quoted message.\n")) == NEW


def test_text_written_after_a_quote_is_kept():
    text = "Test reply\n\nOn 04/19/2011 07:10 AM, Ana wrote:\n\n> Test\n\nRegards, Ana"
    assert extract_reply_text(text, strip_signature=False) == "Test reply\n\nRegards, Ana"


def test_inline_answers_between_quoted_lines_are_kept():
    text = (
        "On Dec 15, 2024, at 2:00 PM, Jane <jane@example.com> wrote:\n> What did you do today?\n\n"
        "Fixed the login bug.\n\n> Anything blocking you?\n\nWaiting on the API keys.\n"
    )
    reply = extract_reply(text)
    assert reply.text == "Fixed the login bug.\n\nWaiting on the API keys."
    assert "What did you do today?" in reply.quoted


def test_a_reply_written_below_the_quote_is_kept():
    assert extract_reply_text("On 04/02/2012 06:26 PM, Megan wrote:\n> Hi\nHello") == "Hello"


def test_an_attribution_sharing_a_line_with_the_reply_is_split_off():
    assert (
        extract_reply_text("reply--- On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:\n> Hi") == "reply"
    )


def test_quoted_lines_without_a_header_are_cut():
    assert extract_reply_text("Hello\n\n> Subject: Test\n> From: bob@example.com\n>\n> Hi") == "Hello"


def test_arrows_used_as_decoration_are_not_quotes():
    text = "Visit us now...\n>>> >>>  http://www.example.com <<<\nVisit our site"
    assert extract_reply_text(text) == text


def test_a_link_that_breaks_a_run_of_quoted_lines_stays_in_the_quote():
    text = "Blah\n\nOn Monday, 24 September, 2012 at 3:46 PM, bob wrote:\n\n> View (http://example.com/a\n_n=3d)\n>\n"
    assert extract_reply_text(text) == "Blah"


@pytest.mark.parametrize(
    "text",
    [
        "On the other hand, we should be careful.\nOn average, this works well.",
        "Met Bob at 10:30, he wrote the docs.\nThe data comes From: our database.",
        "Invitation:\n\nDate: Wednesday 3, October 2011\nTime: 7 : 00am\nAddress: 130 Fox St",
        "Formats:\n2024-01-15 14:30:25\n15.01.2024 14:30\nJan 15, 2024 at 14:30",
        "Blah-blah-blah\nOn blah-blah-blah",
        "Note: the deploy is done.\nStatus: green",
    ],
)
def test_ordinary_text_that_resembles_a_header_is_left_alone(text):
    assert extract_reply_text(text) == text


def test_a_forwarded_message_is_kept_apart_and_the_text_above_it_is_the_reply():
    text = "FYI\n\n---------- Forwarded message ----------\nFrom: bob@example.com\nDate: Tue\nTo: me\n\nText"
    reply = extract_reply(text)
    assert reply.forwarded
    assert reply.text == "FYI"
    assert reply.forwarded_text == text.split("\n\n", 1)[1]
    assert not reply.quoted
    assert (reply.cut_at, reply.rule, reply.confidence) == (2, "forward", "high")


def test_apple_mail_forwarding_is_flagged_and_kept_apart():
    reply = extract_reply("See below.\n\nBegin forwarded message:\n\n> From: Bob <b@example.com>\n> hello")
    assert reply.forwarded and reply.text == "See below."
    assert "hello" in reply.forwarded_text


def test_a_reply_tells_where_it_was_cut_by_which_rule_and_how_surely():
    text = "Shipped it.\n\nOn Mon, Sep 14, 2015 at 2:23 AM Ana <ana@example.com> wrote:\n> What?\n"
    reply = extract_reply(text)
    assert reply.lines == tuple(text.split("\n"))
    assert (reply.cut_at, reply.rule, reply.confidence) == (2, "quote-header:on-wrote", "high")
    lone = extract_reply("Shipped it.\n\nOn Mon, Sep 14, 2015 at 2:23 AM Ana <ana@example.com> wrote:\nWhat?")
    assert (lone.cut_at, lone.rule, lone.confidence) == (2, "quote-header:on-wrote", "low")
    signed = extract_reply("Shipped it.\n\nSent from my iPhone", strip_signature=True)
    assert (signed.cut_at, signed.rule, signed.confidence) == (2, "signature:mobile-footer", "high")
    whole = extract_reply("Shipped it.\nAll of it.")
    assert (whole.cut_at, whole.rule, whole.confidence) == (None, "", "high")


def test_the_cut_point_indexes_the_original_lines_across_repeated_passes():
    # the first pass cuts the > lines; the second sees the header block they separated
    text = "Done\n\nFrom: ana@example.com\n> x\nSent: Monday\n\nold text"
    reply = extract_reply(text)
    assert reply.text == "Done"
    assert reply.cut_at == 2 and reply.lines[2] == "From: ana@example.com"


def test_html_cut_points_index_the_rendered_lines():
    html = '<div>Shipped</div><div>More</div><blockquote type="cite">old</blockquote>'
    reply = extract_reply(html)
    assert reply.lines == ("Shipped", "More", "old")
    assert (reply.cut_at, reply.rule, reply.confidence) == (2, "html-quote-markup", "high")


def test_a_forward_inside_the_quote_is_part_of_the_quote():
    text = (
        "Blah\n\n-----Original Message-----\n\nFYI\n\n---------- Forwarded message ----------\nFrom: b@x.com"
    )
    reply = extract_reply(text)
    assert reply.text == "Blah"
    assert not reply.forwarded


def test_our_own_reminder_text_makes_the_cut_certain_even_under_an_unknown_header():
    reminder = ("What did you get done today?", "Reply to this email with a line per thing you did.")
    text = "Wrote the report\n\nSomeone unknown said this:\nWhat did you get done today?\n" + reminder[1]
    reply = extract_reply(text, known_quotes=reminder)
    assert reply.text == "Wrote the report"
    assert "cut at our own reminder text" in reply.notes


def test_a_quote_holding_our_reminder_is_noted_as_certain():
    reminder = ("What did you get done today?",)
    text = (
        "Wrote the report\n\nOn Mon, Sep 14, 2015 at 2:23 AM Bot <bot@example.com> wrote:\n"
        "> What did you get done today?"
    )
    assert "the quote holds our own reminder text" in extract_reply(text, known_quotes=reminder).notes


def test_a_single_line_that_repeats_the_reminder_question_is_not_a_cut():
    reminder = ("What did you get done today?", "Reply to this email with a line per thing you did.")
    text = "What did you get done today?\n- the report"
    assert extract_reply(text, known_quotes=reminder).text == text


def test_an_empty_reply_is_flagged_empty():
    reply = extract_reply("On Mon, Sep 14, 2015 at 2:23 AM Ana <ana@example.com> wrote:\n> hi")
    assert reply.empty
    assert reply.text == ""


def test_an_inbound_email_prefers_its_plain_text_part():
    email = InboundEmail(text="Hello\n\n> old", html="<p>Other</p>")
    reply = extract_reply(email)
    assert reply.text == "Hello"
    assert not reply.from_html


def test_an_inbound_email_with_only_html_is_read_from_html():
    email = InboundEmail(text=None, html="<div>Hello</div><blockquote type='cite'>old</blockquote>")
    reply = extract_reply(email)
    assert reply.text == "Hello"
    assert reply.from_html


def test_raw_mime_bytes_are_parsed_first():
    raw = (
        b"From: Ana <ana@example.com>\r\nTo: team@example.com\r\nSubject: Re: check-in\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Done the thing\r\n\r\nOn Mon, Sep 14, 2015 at 2:23 AM Bot <bot@example.com> wrote:\r\n> What?\r\n"
    )
    assert extract_reply(raw).text == "Done the thing"
    assert extract_reply_text(raw.decode()) == "Done the thing"


def test_a_plain_text_body_starting_with_a_colon_line_is_not_taken_for_mime():
    text = "Update: all green\nDeploy: done"
    assert extract_reply_text(text) == text


@pytest.mark.parametrize("message", [None, b"", "", b"\xff\xfe\x00garbage", 42, "\r\r\n\n", "<<<>>>"])
def test_odd_input_gives_a_reply_and_never_raises(message):
    assert isinstance(extract_reply(message), Reply)


def test_a_reply_is_frozen():
    with pytest.raises(FrozenInstanceError):
        extract_reply("x").text = "y"


@contextmanager
def finishes():
    """Fails the test if the block runs past HANG_S: a guard against quadratic work (minutes on
    these inputs), not a speed goal; the speed is measured by bench/replies.py."""

    def hung(signum, frame):
        raise AssertionError(f"still running after {HANG_S} s: work is not linear in the input")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


HANG_S = 60


def test_a_five_megabyte_body_is_handled_quickly():
    text = (
        "Word " * 20 + "\n"
    ) * 50_000 + "\nOn Mon, Sep 14, 2015 at 2:23 AM Ana <ana@example.com> wrote:\n> x"
    assert len(text) > 5_000_000
    with finishes():
        extract_reply(text)


def test_five_megabytes_of_html_are_handled_quickly():
    html = "<p>word word <b>bold</b></p>\n" * 180_000
    with finishes():
        reply = extract_reply(html)
    assert reply.text.startswith("word word bold")


@pytest.mark.parametrize(
    "text",
    [">" * 100_000, "> " * 50_000 + "\n" + "a" * 100_000, "On " + "x, " * 100_000 + "\n", "-" * 200_000],
)
def test_pathological_lines_are_handled_quickly(text):
    with finishes():
        extract_reply(text)
        extract_reply("<div>" * 5_000 + text)


def test_many_unmarked_blockquotes_are_handled_quickly():
    # only the last one is asked whether the sender's text follows it
    with finishes():
        reply = extract_reply("<div>" + "<blockquote>x</blockquote><p>y</p>" * 20_000 + "</div>")
    assert reply.text.startswith("x\ny")


def test_a_quoted_header_wrapped_after_an_angle_bracket_stays_quoted():
    text = (
        "TAKE 3\n\nOn Fri, Apr 3, 2020 at 12:32 PM Someone <\nsomeone@example.com> wrote:\n\n> TAKE 2\n>\n"
        "> On Fri, Apr 3, 2020 at 12:31 PM Someone <\n> someone@example.com> wrote:\n>\n>> Lets see"
    )
    assert extract_reply_text(text) == "TAKE 3"


def test_an_undecoded_quoted_printable_header_is_still_recognized():
    text = (
        "Reply\n\nEl mi=C3=A9, 29 jun 2022 a las 11:08, Rick (<rick.sanchez@exampl=\ne.com>)\n"
        "escribi=C3=B3:\n\n> Hello"
    )
    assert extract_reply_text(text) == "Reply"


def test_html_only_mail_is_cut_on_its_html_structure_not_on_the_text_derived_from_it():
    from parsers.message import parse_mime

    raw = (
        b"From: ada@example.com\r\nTo: reply@x.test\r\nSubject: Re: hi\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b'<div dir="ltr">Shipped the importer</div><br><div class="gmail_quote">'
        b'<div class="gmail_attr">Le lun. 23 nov. 2026, Bob &lt;b@x.test&gt; a \xc3\xa9crit&nbsp;:<br></div>'
        b'<blockquote class="gmail_quote">What did you get done today?</blockquote></div>\r\n'
    )
    email = parse_mime(raw)
    assert email.text_from_html and "Shipped the importer" in email.text
    reply = extract_reply(email)
    assert reply.from_html and reply.text == "Shipped the importer"
    assert "What did you get done today?" in reply.quoted


def test_megabytes_of_one_line_or_of_quote_lines_are_cut_to_the_text_budget_and_noted():
    for text in ("a" * 7_000_000, "Shipped it\n\n" + "> quoted\n" * 2_000_000):
        reply = extract_reply(text)
        assert len(reply.text) <= MAX_TEXT_CHARS and any("text longer than" in n for n in reply.notes)
    assert extract_reply("Shipped it\n\n" + "> quoted\n" * 2_000).text == "Shipped it"
