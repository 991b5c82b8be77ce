"""parsers.quotes: its quicker patterns find what the plain patterns they replace find."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers import quotes

# the pattern as it was written before the trie: every verb a branch, longest first
PLAIN = re.compile(
    rf"(?:{quotes._alt(w for w in quotes.WROTE_WORDS if quotes._CJK.search(w))}"
    rf"|(?:{quotes._alt(w for w in quotes.WROTE_WORDS if not quotes._CJK.search(w))}){quotes._WORD_END})",
    re.I,
)

# the verbs' own characters, in both cases, and the letters that IGNORECASE matches across
# alphabets (dotted and dotless i, long s, the Kelvin sign), so that near misses are generated
_CHARS = sorted(
    set("".join(quotes.WROTE_WORDS))
    | set("".join(quotes.WROTE_WORDS).upper())
    | set(" .:<>@-(ab1\u0130\u0131\u017f\u212a")
)
WINDOWS = st.lists(
    st.one_of(st.sampled_from(quotes.WROTE_WORDS), st.text(alphabet=_CHARS, max_size=6)), max_size=8
).map("".join)


def _found(pattern: re.Pattern, window: str):
    m = pattern.search(window)
    return m and m.span()


@settings(max_examples=3000, deadline=None)
@given(WINDOWS)
def test_the_trie_finds_the_same_verb_at_the_same_place_as_the_alternation(window):
    assert _found(quotes.WROTE, window) == _found(PLAIN, window)


def test_every_verb_is_found_in_any_case_with_its_own_span():
    for verb in quotes.WROTE_WORDS:
        for window in (verb, verb.upper(), verb.title(), f"Ana <a@x> {verb}:", f"xx{verb}"):
            assert _found(quotes.WROTE, window) == _found(PLAIN, window), window
    # the longer verb wins where one starts the other, as in the alternation
    assert quotes.WROTE.search("Bob napisał(a):").group() == "napisał(a)"
    assert quotes.WROTE.search("Bob escribió:").group() == "escribió"
    # a verb that runs on into a letter is no verb (the word end holds); CJK verbs run on
    assert quotes.WROTE.search("the wroteful") is None
    assert quotes.WROTE.search("Bob 님이 작성하였습니다:").group() == "작성"


# the patterns as they were written before their quick forms, with what each is tried on
PLAIN_DATE_SIGNAL = re.compile(r"\d{1,2}[:.]\d{2}|\b(?:19|20)\d{2}\b|\d{1,4}[-./]\d{1,2}[-./]\d{1,4}|\d+年")
PLAIN_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
PLAIN_START_INLINE = re.compile(rf"(?:^|(?<=\s)|(?<=-))(?:{quotes._alt(quotes.START_WORDS)})\s")

_TEXT = st.text(alphabet="0123456789:./-年 aZé@_+'<>(),\n\u0661", max_size=40)
_LINE = st.lists(
    st.one_of(
        st.sampled_from(quotes.START_WORDS),
        st.sampled_from(["ana@example.com", "a.b+c@x-y.org", "2015", "14:23", "2015-09-14", "@@", " "]),
        _TEXT,
    ),
    max_size=8,
).map("".join)


def _all(pattern: re.Pattern, text: str) -> list:
    return [m.span() for m in pattern.finditer(text)]


@settings(max_examples=3000, deadline=None)
@given(_LINE)
def test_the_quick_patterns_match_the_same_spans_as_the_plain_ones(line):
    assert _all(quotes.DATE_SIGNAL, line) == _all(PLAIN_DATE_SIGNAL, line)
    # the address is searched for, never iterated: its first match is the same
    assert _found(quotes.ADDRESS, line) == _found(PLAIN_ADDRESS, line)
    assert _all(quotes.START_INLINE, line) == _all(PLAIN_START_INLINE, line)


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(_LINE, WINDOWS, st.sampled_from(["Bob Smith wrote:", "Ana a écrit :\n", "Bob schrieb：\u3000"]))
)
def test_what_is_attribution_checks_first_holds_wherever_the_pattern_it_spares_would_match(window):
    # is_attribution skips NAME_WROTE unless the window ends on a colon, and the address patterns
    # unless it holds an "@"
    if quotes.NAME_WROTE.match(window):
        assert window.rstrip()[-1:] in (":", "：")
    if quotes.BRACKETED_ADDRESS.search(window) or PLAIN_ADDRESS.search(window):
        assert "@" in window and quotes.ADDRESS.search(window)


def test_a_long_word_is_read_once_by_the_address_pattern():
    # the plain pattern retries the word from each of its characters: quadratic
    assert quotes.ADDRESS.search("x" * 100_000) is None
    assert quotes.ADDRESS.search("x" * 50_000 + " ana@example.com").group() == "ana@example.com"


_ASCII_WINDOWS = st.lists(
    st.one_of(
        st.sampled_from([w for w in quotes.WROTE_WORDS if w.isascii()]),
        st.sampled_from(["On Mon, 2 Mar 2026, Ana <ana@x.org>", " ", ":", " :", "\t", "s", "ly"]),
        st.text(alphabet="abcdeilnoprstwyWROTE :()<>@.-", max_size=6),
    ),
    max_size=6,
).map("".join)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_ASCII_WINDOWS, WINDOWS))
def test_a_window_said_to_end_on_a_verb_is_one_the_pattern_finds_a_verb_in(window):
    if quotes.ends_on_a_verb(window):
        assert quotes.WROTE.search(window)


def test_the_quick_verb_test_holds_for_the_usual_attribution_endings():
    for verb in (w for w in quotes.WROTE_WORDS if w.isascii()):
        for window in (f"On Mon, Bob <b@x.org> {verb}:", f"Bob {verb.upper()} :", f"Bob {verb}"):
            assert quotes.ends_on_a_verb(window) and quotes.WROTE.search(window), window
    assert not quotes.ends_on_a_verb("Bob wrotes:")  # runs on into a letter: the pattern decides
    assert not quotes.ends_on_a_verb("Bob schrieb\u00e9:")  # not ASCII: the pattern decides
