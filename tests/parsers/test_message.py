"""parsers.message helpers: address lists."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from parsers.message import _PLAIN_ADDRESS, addresses, parse_mime

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


NAME = st.text(alphabet="abcXYZ019 .-'", min_size=1, max_size=12).map(str.strip).filter(bool)


@given(st.lists(st.tuples(st.one_of(st.just(""), NAME), LOCAL, DOMAIN), min_size=1, max_size=4))
def test_a_well_formed_list_is_read_as_the_general_parser_reads_it(items):
    value = ", ".join(f'"{n}" <{lo}@{d}>' if n else f"{lo}@{d}" for n, lo, d in items)
    assert addresses(value) == general(value) == [(n, f"{lo}@{d}") for n, lo, d in items]


@given(st.text(alphabet=ATEXT + '@." <>,;:()[]\\\r\n=?', max_size=60))
@example("a..b@example.com")
@example(",@0")
@example("<<@>>")
@example('"unclosed <a@b.c>')
def test_anything_gives_addresses_with_a_local_part_and_a_domain(value):
    for _name, addr in addresses(value):
        local, _, domain = addr.rpartition("@")
        assert local and domain and not any(c.isspace() for c in domain), (value, addr)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ada <ada@example.com>", [("Ada", "ada@example.com")]),
        ('"Lovelace, Ada" <ada@example.com>', [("Lovelace, Ada", "ada@example.com")]),
        ("Ada <Ada.Lovelace@Example.COM>", [("Ada", "Ada.Lovelace@Example.COM")]),  # case as received
        ("eve@example.com <frank@example.com>", [("eve@example.com", "frank@example.com")]),
        ("Mikel@Lindsaar <raasdnil@gmail.com>", [("Mikel@Lindsaar", "raasdnil@gmail.com")]),
        ("Big Bug bb@bug.com", [("Big Bug", "bb@bug.com")]),
        ("tim@example.com concierge@example.com", [("", "tim@example.com"), ("", "concierge@example.com")]),
        ("<Undisclosed-Recipient:@mailman.example.com;>", []),
        ("undisclosed-recipients:;", []),
        ("team: a@example.com, b@example.com;", [("", "a@example.com"), ("", "b@example.com")]),
        ("a@example.com (Ada)", [("Ada", "a@example.com")]),
        ("Pete(his name) <pete(his account)@silly.test(his host)>", [("Pete", "pete@silly.test")]),
        ("<@relay.example,@hop.example:joe@example.com>", [("", "joe@example.com")]),
        ("=?UTF-8?Q?Ren=C3=A9e?= <renee@example.com>", [("Renée", "renee@example.com")]),
    ],
)
def test_what_real_mail_writes(value, expected):
    assert addresses(value) == expected


def test_an_encoded_display_name_is_no_list_syntax_once_decoded():
    """The header as written is read: '=2C' (a comma) and an address inside encoded words stay in the name."""
    raw = (
        b"From: =?iso-8859-1?Q?Last=DFname=2C_First?= <comma@example.com>\r\n"
        b"To: =?UTF-8?B?dG9ueS5zdGFya0BleGFtcGxlLmNvbQ==?= <tony@example.com>\r\n"
        b"Subject: hi\r\n\r\nbody\r\n"
    )
    email = parse_mime(raw)
    assert (email.from_name, email.from_addr) == ("Lastßname, First", "comma@example.com")
    assert email.to == ("tony@example.com",)


def test_a_long_list_is_read_up_to_its_budget():
    value = ", ".join(f"User {i} <u{i}@example.com>" for i in range(20_000))
    found = addresses(value)
    assert 5_000 < len(found) < 20_000 and found[0] == ("User 0", "u0@example.com")
