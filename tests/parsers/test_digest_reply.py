"""What a reply to a digest is about (parsers/digest_reply.py): the quoted entry, the named member."""

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.digest_reply import named_member, quoted_entry

ENTRIES = [(1, "Shipped the billing export"), (2, "Reviewed the hiring plan"), (3, "Fixed #42")]
MEMBERS = [
    (10, "Ada Lovelace", "ada@example.com"),
    (11, "Bob", "robert@example.com"),
    (12, "", "cy@example.com"),
]
DIGEST = """What Loop team got done on Monday, 23 November 2026

Ada Lovelace
  - Shipped the billing export
  - [goal] Reviewed the hiring plan

Bob
  - Fixed #42"""


def quote(text: str, mark: str = "> ") -> str:
    return "\n".join(mark + line for line in text.splitlines())


def test_an_answer_inside_the_quote_is_on_the_entry_above_it():
    lines = quote(DIGEST).splitlines()
    body = "\n".join([*lines[:5], "Which customers asked?", *lines[5:]])
    assert quoted_entry(body, "Which customers asked?", ENTRIES) == 2
    body = "\n".join([*lines[:4], "", "Nice!", "", *lines[4:]])
    assert quoted_entry(body, "Nice!", ENTRIES) == 1


def test_a_quote_cut_to_one_entry_is_on_it():
    body = "Well done\n\nOn Tue, Bob wrote:\n>   - Fixed #42\n"
    assert quoted_entry(body, "Well done", ENTRIES) == 3
    assert quoted_entry("Well done\n>> - Fixed #42", "Well done", ENTRIES) == 3  # nested quote marks


def test_a_whole_quoted_digest_or_no_quote_is_on_no_entry():
    assert quoted_entry("Good day\n\n" + quote(DIGEST), "Good day", ENTRIES) is None
    assert (
        quoted_entry("Shipped the billing export? great", "Shipped the billing export? great", ENTRIES)
        is None
    )


def test_the_longest_entry_a_line_shows_wins():
    entries = [(1, "Fixed"), (2, "Fixed the login page")]
    assert quoted_entry("ok\n> - Fixed the login page", "ok", entries) == 2


def test_named_members():
    assert named_member("Nice fix @bob!", MEMBERS) == 11
    assert named_member("thanks @robert", MEMBERS) == 11  # an address's local part
    assert named_member("@adalovelace great", MEMBERS) == 10
    assert named_member("@cy see you", MEMBERS) == 12
    assert named_member("Great work, Ada.", MEMBERS) == 10
    assert named_member("Ada Lovelace: great", MEMBERS) == 10
    assert named_member("Ada and Bob: great", MEMBERS) is None  # two: the day
    assert named_member("mail me at x@bob.example", MEMBERS) is None  # no mention inside an address
    assert named_member("Good day all", MEMBERS) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=80))
def test_they_never_raise(body, reply):
    found = quoted_entry(body, reply, ENTRIES)
    assert found is None or found in {1, 2, 3}
    assert named_member(reply, MEMBERS) in (None, 10, 11, 12)
