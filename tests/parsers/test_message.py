"""parsers.message helpers: address lists."""

from __future__ import annotations

from email.utils import getaddresses

from hypothesis import example, given
from hypothesis import strategies as st

from parsers.message import _PLAIN_ADDRESS, addresses

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
LABEL = st.text(alphabet="abcXYZ019-", min_size=1, max_size=8)
LOCAL = st.lists(st.text(alphabet=ATEXT, min_size=1, max_size=8), min_size=1, max_size=3).map(".".join)
DOMAIN = st.lists(LABEL, min_size=1, max_size=3).map(".".join)


def general(value: str) -> list[tuple[str, str]]:
    """What addresses() gives by the general parser alone: addresses as received."""
    return [(n.strip(), a.strip()) for n, a in getaddresses([value]) if "@" in a]


@given(LOCAL, DOMAIN, st.sampled_from(["", " ", "\t", "  "]))
@example("reply+1-20261123-vaq3v4sk3phrgsfw", "reply.example.com", "")
def test_a_bare_address_is_read_as_the_general_parser_reads_it(local, domain, space):
    value = f"{space}{local}@{domain}{space}"
    assert _PLAIN_ADDRESS.fullmatch(value.strip())
    assert addresses(value) == general(value) == [("", f"{local}@{domain}")]


@given(st.text(alphabet=ATEXT + '@." <>,;:()[]\\', max_size=40))
@example("a..b@example.com")
@example(".a@example.com")
@example("a@example.com, b@example.com")
@example('"a b"@example.com')
@example("Ada <ada@example.com>")
@example("a@[127.0.0.1]")
def test_anything_else_gives_what_the_general_parser_gives(value):
    assert addresses(value) == general(value)
