"""parsers.auth: Authentication-Results (RFC 8601) and Received-SPF, read leniently and boundedly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.auth import (
    MAX_HEADER_CHARS,
    MAX_HEADERS,
    MAX_RESULTS,
    MAX_TOKENS,
    MAX_TOTAL_CHARS,
    authentication_headers,
    domain_of,
    parse_authentication_results,
    parse_received_spf,
)


def test_methods_results_and_properties_are_read_in_order():
    ar = parse_authentication_results(
        "MX.Example.COM 1; spf=pass smtp.mailfrom=ada@example.com;\r\n"
        " dkim=pass (good signature) header.d=example.com header.i=@example.com header.b=Ab/+cd;\r\n"
        " dmarc=pass policy.published-domain-policy=none header.from=example.com"
    )
    assert ar.authserv_id == "mx.example.com" and ar.version == "1"
    assert [(r.method, r.result) for r in ar.results] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
    ]
    assert ar.results[0].prop("smtp.mailfrom") == "ada@example.com"
    assert ar.results[1].prop("header.d") == "example.com" and ar.results[1].prop("header.b") == "Ab/+cd"
    assert ar.results[2].prop("header.from") == "example.com" and ar.notes == ()


def test_comments_nest_and_quoted_strings_hide_semicolons():
    ar = parse_authentication_results(
        'mx.example (spf=pass; (nested) \\) still comment); dkim/1 = fail reason="bad; sig" header.d="x.org"'
    )
    assert ar.authserv_id == "mx.example"
    assert len(ar.results) == 1
    r = ar.results[0]
    assert (r.method, r.version, r.result, r.reason, r.prop("header.d")) == (
        "dkim",
        "1",
        "fail",
        "bad; sig",
        "x.org",
    )


def test_a_quoted_authserv_id_and_no_result():
    ar = parse_authentication_results('"mx.example.com"; none')
    assert ar.authserv_id == "mx.example.com" and ar.results == ()


def test_a_field_without_an_authserv_id_is_none():
    for value in ("", "   ", "; spf=pass", "spf=pass; dkim=pass", "(only a comment)"):
        assert parse_authentication_results(value) is None, value


def test_malformed_results_are_noted_not_raised():
    ar = parse_authentication_results("mx.example; dkim; spf=; =pass; dkim=pass header.b=abc==")
    assert ar.authserv_id == "mx.example"
    assert ("dkim", "pass") in [(r.method, r.result) for r in ar.results]
    assert ar.notes


def test_received_spf_result_and_key_value_pairs():
    r = parse_received_spf(
        "Pass (mybox.example.org: domain of ada@example.com designates 192.0.2.1 as permitted sender)\r\n"
        ' receiver=mybox.example.org; client-ip=192.0.2.1; envelope-from="ada@example.com"; helo=foo.example;'
    )
    assert (r.method, r.result) == ("spf", "pass")
    assert r.prop("receiver") == "mybox.example.org" and r.prop("envelope-from") == "ada@example.com"
    assert parse_received_spf("Fail").result == "fail" and parse_received_spf("  (x)  ") is None


def test_domain_of_addresses_and_bare_domains():
    assert domain_of("Ada@Example.COM") == "example.com"
    assert domain_of("@example.com.") == "example.com" and domain_of("<a@b.org>") == "b.org"
    assert domain_of("example.net") == "example.net" and domain_of("") == ""


def test_every_header_is_read_top_first_up_to_the_bound():
    headers = [("Authentication-Results", f"mx{i}.example; spf=pass") for i in range(MAX_HEADERS + 5)]
    headers += [("received-spf", "fail"), ("Subject", "x")]
    results, spf, notes = authentication_headers(headers)
    assert [r.authserv_id for r in results[:2]] == ["mx0.example", "mx1.example"]
    assert len(results) == MAX_HEADERS and [r.result for r in spf] == ["fail"]
    assert any(f"more than {MAX_HEADERS}" in n for n in notes)


def test_a_field_with_too_many_results_or_characters_is_cut():
    ar = parse_authentication_results("mx.example" + "; dkim=pass header.d=example.com" * (MAX_RESULTS + 10))
    assert len(ar.results) == MAX_RESULTS and any("more than" in n for n in ar.notes)
    long = parse_authentication_results("mx.example; dkim=pass reason=" + '"' + "x" * (2 * MAX_HEADER_CHARS))
    assert long is not None and any("longer than" in n for n in long.notes)


def test_tokens_per_field_and_characters_per_message_are_bounded():
    ar = parse_authentication_results("mx.example; " + "a=b " * MAX_TOKENS)
    assert any(f"more than {MAX_TOKENS} tokens" in n for n in ar.notes)
    field = "mx.example; dkim=pass reason=" + "x" * (MAX_HEADER_CHARS - 40)
    results, _, notes = authentication_headers([("Authentication-Results", field)] * MAX_HEADERS)
    assert len(results) == MAX_TOTAL_CHARS // len(field) + 1  # the last one read in part
    assert any(f"more than {MAX_TOTAL_CHARS} characters" in n for n in notes)


_PIECES = st.sampled_from(
    [";", "=", "(", ")", '"', "\\", " ", "\r\n ", ".", "@", "/", "spf", "dkim", "dmarc", "pass", "fail",
     "header.d", "smtp.mailfrom", "reason", "mx.example", "none", "1", "\x00", "é"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=80))
def test_any_value_parses_without_raising_and_within_bounds(pieces):
    value = "".join(pieces)
    ar = parse_authentication_results(value)
    if ar is not None:
        assert len(ar.results) <= MAX_RESULTS and len(ar.notes) <= 10
        assert all(len(r.method) <= len(value) for r in ar.results)
    spf = parse_received_spf(value)
    assert spf is None or len(spf.properties) <= MAX_RESULTS


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=3 * MAX_HEADERS), st.text(max_size=200))
def test_any_number_of_headers_gives_at_most_the_bound(count, value):
    results, spf, _ = authentication_headers(
        [("Authentication-Results", value), ("Received-SPF", value)] * count
    )
    assert len(results) <= MAX_HEADERS and len(spf) <= MAX_HEADERS


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["(", '"', "(((", "a=b;", "\\("]), st.integers(min_value=1, max_value=20_000))
def test_pathological_repetition_is_bounded_in_what_it_reads(unit, times):
    value = "mx.example; " + unit * times
    ar = parse_authentication_results(value)
    assert ar is not None and len(ar.results) <= MAX_RESULTS
