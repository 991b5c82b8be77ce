"""app.inbound.authentication: which verdicts may vouch for a From address, and why not."""

from __future__ import annotations

import pytest

from app.inbound.authentication import aligned, authenticate_sender
from parsers.message import InboundEmail

MX = ("mx.donebox.test",)


def mail(*headers: tuple[str, str], **fields) -> InboundEmail:
    return InboundEmail(from_addr="ada@example.com", headers=headers, **fields)


def ar(value: str) -> tuple[str, str]:
    return ("Authentication-Results", value)


@pytest.mark.parametrize(
    "header",
    [
        "mx.donebox.test; dkim=pass header.d=example.com",
        "mx.donebox.test; dkim=pass header.i=@mail.example.com",
        "MX.DONEBOX.TEST; spf=pass smtp.mailfrom=bounce@example.com",
        "mx.donebox.test; dmarc=pass header.from=example.com",
        "mx.donebox.test; dmarc=pass",
    ],
)
def test_an_aligned_pass_from_a_named_authserv_id_authenticates(header):
    verdict = authenticate_sender(mail(ar(header)), MX)
    assert verdict.authenticated and "mx.donebox.test" in verdict.why


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("mx.forged.example; dkim=pass header.d=example.com", "came with the message"),
        ("mx.donebox.test; dkim=pass header.d=attacker.example", "not about the From domain"),
        ("mx.donebox.test; spf=pass smtp.mailfrom=x@example.com.attacker.example", "not about the From"),
        ("mx.donebox.test; dkim=pass", "names no domain"),
        ("mx.donebox.test; dmarc=pass header.from=attacker.example", "not about the From"),
        ("mx.donebox.test; spf=softfail smtp.mailfrom=ada@example.com", "no SPF, DKIM or DMARC pass"),
        ("mx.donebox.test; dkim=fail header.d=example.com", "no SPF, DKIM or DMARC pass"),
    ],
)
def test_forged_unaligned_or_missing_passes_do_not(header, why):
    verdict = authenticate_sender(mail(ar(header)), MX)
    assert not verdict.authenticated and why in verdict.why


def test_nothing_is_believed_without_authserv_ids():
    verdict = authenticate_sender(mail(ar("mx.donebox.test; dkim=pass header.d=example.com")))
    assert not verdict.authenticated and "AUTHSERV_IDS" in verdict.why


@pytest.mark.parametrize(
    "veto",
    [
        ("Received-SPF", "Fail (not authorized) envelope-from=ada@example.com"),
        ("Received-SPF", "fail"),
        ar("anyone.example; spf=fail smtp.mailfrom=ada@example.com"),
        ar("mx.donebox.test; dmarc=fail header.from=example.com"),
    ],
)
def test_an_spf_or_dmarc_fail_from_any_source_vetoes_a_trusted_pass(veto):
    good = ar("mx.donebox.test; dkim=pass header.d=example.com; dmarc=pass")
    for headers in ((good, veto), (veto, good)):
        verdict = authenticate_sender(mail(*headers), MX)
        assert not verdict.authenticated and "vetoes" in verdict.why


def test_a_provider_spf_fail_vetoes_too():
    good = ar("mx.donebox.test; dkim=pass header.d=example.com")
    assert not authenticate_sender(mail(good, spf="fail", provider="ses"), MX).authenticated


def test_a_dkim_fail_beside_an_aligned_dkim_pass_is_no_veto():
    headers = ar("mx.donebox.test; dkim=fail header.d=list.example; dkim=pass header.d=example.com")
    assert authenticate_sender(mail(headers), MX).authenticated


def test_received_spf_is_believed_only_from_a_named_receiver():
    named = ("Received-SPF", "Pass (ok) receiver=mx.donebox.test; envelope-from=ada@example.com")
    other = ("Received-SPF", "Pass (ok) receiver=mx.forged.example; envelope-from=ada@example.com")
    assert authenticate_sender(mail(named), MX).authenticated
    assert not authenticate_sender(mail(other), MX).authenticated


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"spf": "pass", "envelope_from": "bounce@example.com"}, True),
        ({"spf": "pass", "envelope_from": "bounce@attacker.example"}, False),
        ({"spf": "pass"}, False),  # SPF about an unknown envelope sender
        ({"dkim": "pass", "dkim_domains": ("example.com",)}, True),
        ({"dkim": "pass", "dkim_domains": ("attacker.example",)}, False),
        ({"dkim": "pass"}, False),  # Mailgun, SES: a DKIM pass for some domain
        ({"dmarc": "pass"}, True),  # SES: DMARC is about the From domain
        ({"dmarc": "fail", "spf": "pass", "envelope_from": "a@example.com"}, False),
    ],
)
def test_provider_verdicts_count_when_they_are_about_the_from_domain(fields, ok):
    assert authenticate_sender(mail(provider="sendgrid", **fields)).authenticated is ok


def test_alignment_is_the_same_domain_or_a_subdomain_but_never_a_bare_suffix():
    assert aligned("example.com", "example.com") and aligned("mail.example.com", "example.com")
    assert aligned("example.com", "eu.example.com")
    assert not aligned("com", "example.com") and not aligned("badexample.com", "example.com")
    assert not aligned("", "example.com") and not aligned("a.example.com", "b.example.com")
