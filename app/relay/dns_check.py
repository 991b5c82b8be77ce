"""Whether a sending domain's DNS records are published: lookups with dnspython, one verdict each.

The resolver is DNS_NAMESERVERS (``host:port`` items; unset: the system's), so tests and staging
ask their own DNS server. A verdict is ``ok``, ``missing`` (nothing there), ``wrong`` (something
else there, shown in ``found``) or ``error`` (the lookup itself failed: timeout, SERVFAIL).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.resolver

from app.settings import Settings

TIMEOUT_S = 5.0  # one record's lookup, every try and server included
MAX_FOUND = 5  # values kept in a verdict


@dataclass(frozen=True)
class Verdict:
    """What a lookup of one record found."""

    status: str  # ok | missing | wrong | error
    found: tuple[str, ...] = ()
    detail: str = ""

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "found": [f[:300] for f in self.found[:MAX_FOUND]],
            "detail": self.detail,
        }


class LookupFailed(Exception):
    """Raised when a lookup got no answer (timeout, SERVFAIL): not the same as no record."""


class Asker:
    """A dnspython resolver on DNS_NAMESERVERS (or the system's), no cache: each check asks afresh."""

    def __init__(self, settings: Settings):
        servers = settings.dns_nameservers
        self.resolver = dns.resolver.Resolver(configure=not servers)
        if servers:
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(socket.gethostbyname(host), port) for host, port in servers
            ]
        self.resolver.lifetime = TIMEOUT_S
        self.resolver.cache = None

    def values(self, name: str, rdtype: str) -> list[str]:
        """The ``rdtype`` values at ``name`` (TXT strings joined, names without the final dot); [] when
        there is none; LookupFailed when the DNS did not answer."""
        try:
            answer = self.resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            raise LookupFailed(f"{rdtype} {name}: {type(e).__name__}: {e}") from e
        if answer.rrset is None:
            return []
        if rdtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        if rdtype == "MX":
            return [r.exchange.to_text(omit_final_dot=True).lower() for r in answer]
        return [r.to_text().rstrip(".").lower() for r in answer]


def _tags(value: str) -> dict[str, str]:
    tags = {}
    for part in value.split(";"):
        k, eq, v = part.partition("=")
        if eq:
            tags[k.strip().lower()] = "".join(v.split())
    return tags


def _dkim(found: list[str], expected: str) -> Verdict:
    want = _tags(expected).get("p")
    keys = [v for v in found if "p" in _tags(v)]
    if any(_tags(v).get("p") == want for v in keys):
        return Verdict("ok", tuple(found))
    if keys:
        return Verdict("wrong", tuple(found), "a DKIM record with another public key")
    return Verdict("missing", tuple(found), "no DKIM record")


def _spf(found: list[str], include: str) -> Verdict:
    spf = [v for v in found if v.lower().startswith("v=spf1")]
    if not spf:
        return Verdict("missing", tuple(found), "no v=spf1 record")
    if len(spf) > 1:
        return Verdict("wrong", tuple(spf), "more than one v=spf1 record (receivers treat that as an error)")
    if f"include:{include}" not in spf[0].lower().split():
        return Verdict("wrong", tuple(spf), f"the SPF record does not include:{include}")
    return Verdict("ok", tuple(spf))


def _dmarc(found: list[str]) -> Verdict:
    dmarc = [v for v in found if v.replace(" ", "").upper().startswith("V=DMARC1")]
    if len(dmarc) == 1:
        return Verdict("ok", tuple(dmarc))
    if dmarc:
        return Verdict("wrong", tuple(dmarc), "more than one v=DMARC1 record")
    return Verdict("missing", tuple(found), "no v=DMARC1 record")


def _return_path(ask: Asker, name: str, target: str) -> Verdict:
    cname = ask.values(name, "CNAME")
    if cname:
        ok = cname[0] == target
        return Verdict(
            "ok" if ok else "wrong", tuple(cname), "" if ok else f"a CNAME to another host, not {target}"
        )
    mx = ask.values(name, "MX")  # an MX of its own is as good, when it is the inbound path's
    if mx and set(mx) & ({target} | set(ask.values(target, "MX"))):
        return Verdict("ok", tuple(mx))
    if mx:
        return Verdict("wrong", tuple(mx), f"MX hosts that are not {target}'s")
    return Verdict("missing", (), f"no CNAME to {target} (nor an MX of {target}'s)")


def check(ask: Asker, record, settings: Settings) -> Verdict:
    """The verdict on one ``app.relay.domains.Record``."""
    try:
        if record.key == "return_path":
            return _return_path(ask, record.name, record.value.lower())
        found = ask.values(record.name, record.type)
    except LookupFailed as e:
        return Verdict("error", (), str(e))
    if record.key.startswith("dkim:"):
        return _dkim(found, record.value)
    if record.key == "spf":
        return _spf(found, settings.spf_host)
    return _dmarc(found)
