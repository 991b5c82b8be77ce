"""Splitting a reply's text into entry drafts."""

import re
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.entries import _MENTION, _TAG, EntryDraft, split_entries, tags_and_mentions


def texts(text):
    return [e.text for e in split_entries(text)]


@pytest.mark.parametrize("marker", ["-", "*", "•", "1.", "1)", "[x]", "- [x]", "+"])
def test_each_bullet_style_starts_an_entry(marker):
    assert texts(f"{marker} shipped the importer\n{marker} fixed the flaky test") == [
        "shipped the importer",
        "fixed the flaky test",
    ]


def test_plain_lines_are_one_entry_each():
    assert texts("Shipped the importer.\nFixed the flaky test.") == [
        "Shipped the importer.",
        "Fixed the flaky test.",
    ]


def test_a_wrapped_bullet_is_joined_to_the_line_above():
    text = "- Shipped the importer for the billing team and\n  wrote the migration notes\n- Fixed a test"
    assert texts(text) == [
        "Shipped the importer for the billing team and wrote the migration notes",
        "Fixed a test",
    ]


def test_a_plain_line_wrapped_mid_sentence_is_joined():
    text = "Spent the morning on the importer and the long tail of\nedge cases in the CSV dialects."
    assert texts(text) == [
        "Spent the morning on the importer and the long tail of edge cases in the CSV dialects."
    ]


@pytest.mark.parametrize("greeting", ["Hi team,", "Hello all", "Hey folks!", "Good morning,", "Dear Ana,"])
def test_greetings_are_dropped(greeting):
    assert texts(f"{greeting}\n- shipped it") == ["shipped it"]


@pytest.mark.parametrize("sign_off", ["Thanks, Bob", "Cheers", "Best,\nBob", "Regards,\nAna Ruiz", "Thanks!"])
def test_sign_offs_and_what_follows_are_dropped(sign_off):
    assert texts(f"- shipped it\n\n{sign_off}") == ["shipped it"]


def test_a_line_starting_with_hi_that_is_content_is_kept():
    assert texts("Hi-res exports now work in the PDF renderer.") == [
        "Hi-res exports now work in the PDF renderer."
    ]


def test_tags_and_mentions_are_extracted():
    (entry,) = split_entries("Paired with @alice.smith on #Infra and #billing, see #42")
    assert entry.tags == ("infra", "billing")
    assert entry.mentions == ("alice.smith",)


def test_an_email_address_is_not_a_mention():
    (entry,) = split_entries("Mailed bob@example.com about the invoice")
    assert entry.mentions == ()


def test_a_url_fragment_is_not_a_tag():
    (entry,) = split_entries("Read https://example.com/page#section and @ana's notes")
    assert entry.tags == ()
    assert entry.mentions == ("ana",)


@pytest.mark.parametrize(
    "line,kind,text",
    [
        ("Goal: ship v2", "goal", "ship v2"),
        ("Tomorrow: write the docs", "goal", "write the docs"),
        ("Blocked: waiting on keys", "blocker", "waiting on keys"),
        ("Blocker: CI is red", "blocker", "CI is red"),
        ("- Blocked: waiting on @carol", "blocker", "waiting on @carol"),
        ("fixed the bug", "done", "fixed the bug"),
        ("[ ] migrate the db", "goal", "migrate the db"),
    ],
)
def test_a_prefix_sets_the_kind_and_is_removed(line, kind, text):
    (entry,) = split_entries(line)
    assert (entry.kind, entry.text) == (kind, text)


def test_a_heading_line_sets_the_kind_of_the_bullets_under_it():
    text = "Done:\n- importer\n\nTomorrow:\n- docs\n- release\n\nAlso met the new hire."
    assert [(e.text, e.kind) for e in split_entries(text)] == [
        ("importer", "done"),
        ("docs", "goal"),
        ("release", "goal"),
        ("Also met the new hire.", "done"),
    ]


def test_separators_and_empty_bullets_make_no_entry():
    assert texts("----\n- \n\n***\n- real one") == ["real one"]


def test_an_entry_draft_is_frozen():
    with pytest.raises(FrozenInstanceError):
        EntryDraft("x").text = "y"


@given(st.text())
def test_arbitrary_text_never_raises_and_gives_clean_drafts(text):
    for entry in split_entries(text):
        assert entry.text and entry.text == entry.text.strip()
        assert entry.kind in ("done", "goal", "blocker")


# the patterns as they were written first (look-behind first): the rules the faster ones keep
_TAG_RULE = re.compile(r"(?<![\w&#/])#([^\W\d_][\w-]*\w|[^\W\d_])")
_MENTION_RULE = re.compile(r"(?<![\w.@/])@([A-Za-z0-9_](?:[\w.-]*[\w])?)")


@given(st.text(alphabet=st.sampled_from("#@&/._-aZé9 \n"), max_size=60))
def test_tags_and_mentions_keep_the_look_behind_rules(text):
    tags, mentions = tags_and_mentions(text)
    assert tags == tuple(dict.fromkeys(t.lower() for t in _TAG_RULE.findall(text)))
    assert mentions == tuple(dict.fromkeys(_MENTION_RULE.findall(text)))


def test_tags_and_mentions_are_searched_for_by_their_sign():
    # a 4,000-character reply line: look-behind-first patterns took about 0.9 ms of CPU a call
    # (tried at every position), the sign-first ones about 0.08 ms. What makes them cheap is that
    # each starts with its sign, a literal the regex engine searches for
    assert _TAG.pattern.startswith("#") and _MENTION.pattern.startswith("@")
    line = ("Shipped the export; reviewed #42 with @bob; paired on the importer. " * 60)[:4000]
    assert tags_and_mentions(line) == ((), ("bob",))
