"""The one rule of text a database column can store (parsers/storable.py)."""

import pytest

from parsers.storable import storable, unstorable


@pytest.mark.parametrize(
    "value, why",
    [
        ("plain, ünïcode ✓", None),
        ("a\x00b", "contains a NUL character"),
        ("a\ud800b", "contains a lone surrogate (not valid Unicode)"),
        ("\udcff", "contains a lone surrogate (not valid Unicode)"),
        ("ü" * 5000 + "\ud800", "contains a lone surrogate (not valid Unicode)"),
        ("ü" * 5000 + "😀", None),
    ],
)
def test_unstorable_names_the_reason(value, why):
    assert unstorable(value) == why


def test_storable_keeps_what_was_sent_marked():
    assert storable("a\x00b") == "a\ufffdb"
    assert storable("a\x00b", nul="") == "ab"
    assert storable("x\ud83dy\udcffz") == "x?y?z"
    assert storable("emoji 😀 stays") == "emoji 😀 stays"
    assert storable("é" * 4000 + "\udfff") == "é" * 4000 + "?"
    for value in ("a\x00\ud800", "\x00" * 3 + "\udfff"):
        assert unstorable(storable(value)) is None
        storable(value).encode("utf-8")  # encodable: no lone surrogate left
