"""Signatures: cut at the end of a reply, never into its content."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import signature
from parsers.reply import extract_reply
from parsers.signature import split_signature

SIGNED = [
    ("rfc delimiter", "Fixed the build.\n\n-- \nAna Ruiz\nACME Inc", "Fixed the build."),
    ("bare dashes", "Hey man! How r u?\n---\nRoman", "Hey man! How r u?"),
    ("dash and name", "Merged the PR.\n-ana", "Merged the PR."),
    ("iphone", "Merged the PR.\n\nSent from my iPhone", "Merged the PR."),
    (
        "blackberry in two languages",
        "Done.\nSent wirelessly from my BlackBerry device on the Bell network.\n"
        "Envoyé sans fil par mon terminal mobile BlackBerry sur le réseau de Bell.",
        "Done.",
    ),
    ("outlook mobile", "Done.\n\nGet Outlook for Android<https://aka.ms/ghei36>", "Done."),
    ("outlook mobile in french", "Done.\n\nTélécharger Outlook pour iOS<https://aka.ms/o0ukef>", "Done."),
    ("german iphone", "Erledigt.\n\nVon meinem iPhone gesendet", "Erledigt."),
    ("spanish", "Hecho.\n\nEnviado desde mi iPhone", "Hecho."),
    ("japanese", "完了\n\niPhoneから送信", "完了"),
    ("chinese", "完成了\n\n从我的iPhone发送", "完成了"),
    ("dutch", "Hier is nog een e-mail\n\nVerstuurd vanaf mijn iPhone", "Hier is nog een e-mail"),
    ("swedish slash name", "Klart.\n\n/Anna", "Klart."),
    ("sign-off and name", "Shipped it.\n\nThanks!\nAna", "Shipped it."),
    ("sign-off with name on the line", "Shipped it.\n\nCheers, Ana", "Shipped it."),
    ("german sign-off", "Erledigt.\n\nViele Grüße\nAna", "Erledigt."),
    ("hungarian sign-off", "Feltoltottem.\n\nUdvozlettel,\nAnna", "Feltoltottem."),
    ("em dash rule", "以上，看到后告诉我。\n\n——————————\n\n小满\n活动协调人", "以上，看到后告诉我。"),
    ("two sign-offs", "Great idea!\n\n\nMed venlig hilsen / Kind regards\n\nTim Tommy\nCEO", "Great idea!"),
    (
        "contact block",
        "Fixed the login bug.\n\nJane Doe | Engineer\n+1 555 010 0199\nwww.example.com",
        "Fixed the login bug.",
    ),
    (
        "disclaimer",
        "Fixed it.\n\nThis email and any attachments are confidential and intended solely for the "
        "addressee.\nIf you are not the intended recipient, delete it.",
        "Fixed it.",
    ),
    ("stacked footers", "Blah.\n\n-Lev.\n\nSent from my HTC smartphone!", "Blah."),
]


@pytest.mark.parametrize("kind,text,expected", SIGNED, ids=[k for k, _, _ in SIGNED])
def test_a_signature_at_the_end_is_cut(kind, text, expected):
    reply = extract_reply(text)
    assert reply.text == expected
    assert reply.signature


UNSIGNED = [
    ("a colon in the body", "Status: deployed\nNote: rollback plan ready"),
    (
        "sent from in a sentence",
        "Here is another email\n\nSent from my desk, is much easier then my mobile phone.",
    ),
    ("thanks in a sentence", "Hey man!\nThanks for your attention."),
    ("the first line", "--\nRoman"),
    ("a bullet list", "Today:\n- deploy\n- docs"),
    ("a single bullet", "What did you get done today?\n- the report"),
    ("arrows", "Look at this:\n\n--> one\n--> two"),
    ("sent from a server", "Moved the job.\nSent from staging to prod"),
]


@pytest.mark.parametrize("kind,text", UNSIGNED, ids=[k for k, _ in UNSIGNED])
def test_content_that_looks_like_a_signature_is_kept(kind, text):
    assert extract_reply(text).text == text


def test_signatures_are_kept_when_not_asked_to_strip():
    text = "Hello\n\nSent from my iPhone"
    assert extract_reply(text, strip_signature=False).text == text


def test_split_signature_returns_body_and_signature():
    assert split_signature(["Hi", "", "-- ", "Ana"]) == (["Hi"], ["-- ", "Ana"])


def test_a_name_and_title_line_without_a_delimiter_is_a_signature():
    text = "Really it is.\n\nJim P. Smith | Enrollment Manager\nXYZ Corp"
    assert extract_reply(text).text == "Really it is."


def test_a_two_word_dash_line_is_kept():
    text = "What is the best way to clear a bucket?\n\n-Abhishek Kona"
    assert extract_reply(text).text == text


# the words the disclaimers open with, and text around them, so that near misses are generated
_OPENINGS = [
    "Confidentiality notice",
    "DISCLAIMER",
    "** legal notice",
    "privileged & confidential",
    "This e-mail is confidential",
    "this message and any attachment are intended",
    "The contents in this email",
    "If you are not the intended recipient",
    "If you have received this in error",
    "Este correo es confidencial",
    "diese Nachricht ist vertraulich",
    "Thanks,",
]
_DISCLAIMER_LINES = st.lists(
    st.one_of(st.sampled_from(_OPENINGS), st.text(alphabet="thisemalcnfdpv -&*:.éI", max_size=12)),
    max_size=5,
).map(" ".join)


@settings(max_examples=3000, deadline=None)
@given(_DISCLAIMER_LINES)
def test_the_one_disclaimer_pattern_opens_the_lines_that_one_of_the_five_opens(line):
    assert bool(signature.DISCLAIMER.match(line)) == any(p.match(line) for p in signature.DISCLAIMERS)


def test_each_disclaimer_opens_a_line_for_the_one_pattern():
    for line in _OPENINGS[:-1]:
        assert signature.DISCLAIMER.match(line), line
    assert not signature.DISCLAIMER.match("Thanks, this message is confidential")
