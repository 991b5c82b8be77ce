"""Is a message's From address authenticated, and why (not)? The policy, in one place.

Evidence comes from two trusted sources only:

- the provider's own verdict fields (``InboundEmail.spf``/``dkim``/``dmarc``, with the
  envelope sender and DKIM domains they were about), which the message cannot write;
- ``Authentication-Results`` fields whose authserv-id the operator named in AUTHSERV_IDS
  (RFC 8601: the receiving host writes them and removes copies that came with the mail),
  and ``Received-SPF`` fields whose ``receiver=`` is such a host.

Every other such header came with the message and is ignored as evidence for a sender. A
pass counts only when it is about the From domain (aligned: the same domain or one a
subdomain of the other); a DMARC pass is about the From domain by definition. Whatever its
source, an SPF ``fail`` or a DMARC ``fail`` vetoes: it never identifies a member.
"""

from __future__ import annotations

from dataclasses import dataclass

from parsers.auth import authentication_headers, domain_of
from parsers.message import InboundEmail

VETO = {"spf": "fail", "dmarc": "fail"}  # method -> the result that no other verdict outweighs
METHODS = ("dmarc", "dkim", "spf")  # what may authenticate a From, in the order reasons name them


@dataclass(frozen=True)
class Evidence:
    """One method result: what it said, about which domain ('' unknown), from whom, believed or not."""

    method: str
    result: str
    domain: str
    source: str  # "sendgrid's verdict", "Authentication-Results by mx.example.com", ...
    trusted: bool

    def describe(self) -> str:
        about = f" for {self.domain}" if self.domain else ""
        return f"{self.method}={self.result}{about} ({self.source})"


@dataclass(frozen=True)
class SenderVerdict:
    """Whether the From address is authenticated, and a sentence saying why or why not."""

    authenticated: bool
    why: str


def aligned(domain: str, from_domain: str) -> bool:
    """The same domain, or one a subdomain of the other (two labels at least for the parent)."""
    if not domain or not from_domain:
        return False
    if domain == from_domain:
        return True
    short, long_ = sorted((domain, from_domain), key=len)
    return short.count(".") >= 1 and long_.endswith("." + short)


def _provider(email: InboundEmail, from_domain: str) -> list[Evidence]:
    source = f"{email.provider or 'the provider'}'s verdict"
    found = []
    if email.spf:
        found.append(Evidence("spf", email.spf, domain_of(email.envelope_from), source, True))
    if email.dkim == "pass" and email.dkim_domains:
        found += [Evidence("dkim", "pass", d, source, True) for d in email.dkim_domains]
    elif email.dkim:
        found.append(Evidence("dkim", email.dkim, "", source, True))
    if email.dmarc:
        found.append(Evidence("dmarc", email.dmarc, from_domain, source, True))
    return found


def _domain(method: str, props, from_domain: str) -> str:
    if method == "spf":
        return domain_of(props("smtp.mailfrom") or props("envelope-from"))
    if method == "dkim":
        return domain_of(props("header.d") or props("header.i"))
    return domain_of(props("header.from")) if props("header.from") else from_domain


def evidence(email: InboundEmail, authserv_ids: tuple[str, ...]) -> tuple[list[Evidence], list[str]]:
    """Every SPF, DKIM and DMARC result about ``email``, trusted or not, and parsing notes."""
    from_domain = domain_of(email.from_addr)
    found = _provider(email, from_domain)
    results, received, notes = authentication_headers(email.headers)
    for ar in results:
        trusted = ar.authserv_id in authserv_ids
        for r in ar.results:
            if r.method in METHODS:
                domain = _domain(r.method, r.prop, from_domain)
                found.append(
                    Evidence(
                        r.method, r.result, domain, f"Authentication-Results by {ar.authserv_id}", trusted
                    )
                )
    for r in received:
        receiver = r.prop("receiver").lower()
        trusted = bool(receiver) and (receiver in authserv_ids or domain_of(receiver) in authserv_ids)
        source = f"Received-SPF by {receiver}" if receiver else "Received-SPF"
        found.append(Evidence("spf", r.result, _domain("spf", r.prop, from_domain), source, trusted))
    return found, notes


def authenticate_sender(email: InboundEmail, authserv_ids: tuple[str, ...] = ()) -> SenderVerdict:
    """Whether ``email``'s From address is authenticated by a trusted, aligned pass and no fail."""
    from_domain = domain_of(email.from_addr)
    if not from_domain:
        return SenderVerdict(False, "no From address")
    found, _ = evidence(email, authserv_ids)
    vetoes = [e for e in found if VETO.get(e.method) == e.result]
    if vetoes:
        where = "" if vetoes[0].trusted else ", even from a source not believed for a pass"
        return SenderVerdict(False, f"{vetoes[0].describe()} vetoes the sender{where}")
    passes = sorted(
        (e for e in found if e.trusted and e.result == "pass" and e.method in METHODS),
        key=lambda e: METHODS.index(e.method),
    )
    good = next((e for e in passes if aligned(e.domain, from_domain)), None)
    if good is not None:
        return SenderVerdict(True, good.describe())
    if passes:
        p = passes[0]
        what = "names no domain" if not p.domain else f"is not about the From domain {from_domain}"
        return SenderVerdict(False, f"{p.describe()} {what}")
    untrusted = next((e for e in found if not e.trusted and e.result == "pass"), None)
    if untrusted is not None:
        return SenderVerdict(
            False,
            f"{untrusted.describe()} came with the message, not from a host named in AUTHSERV_IDS "
            "or the provider's verdict",
        )
    return SenderVerdict(
        False, "no SPF, DKIM or DMARC pass from the provider or a host named in AUTHSERV_IDS"
    )
