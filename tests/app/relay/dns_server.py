"""A local authoritative DNS server on loopback (dnslib), UDP and TCP on one free port.

It answers from ``records``, a dict the test changes as it goes: ``{(name, type): [value, ...]}``
with names without the final dot, types TXT, CNAME or MX ("10 mx.example.net"). A name it does
not hold is NXDOMAIN, one in ``failing`` SERVFAIL; a CNAME is followed within the dict, as a
resolver's answer would be.
"""

from __future__ import annotations

import socket

from dnslib import CNAME, MX, QTYPE, RCODE, RR, TXT, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def _rdata(rtype: str, value: str):
    if rtype == "TXT":
        data = value.encode()
        return TXT([data[i : i + 255] for i in range(0, len(data), 255)] or [b""])
    if rtype == "CNAME":
        return CNAME(value)
    if rtype == "MX":
        pref, _, host = value.partition(" ")
        return MX(host, int(pref))
    raise ValueError(rtype)


class Records(BaseResolver):
    """dnslib's resolver over a dict of records."""

    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = {}
        self.failing: set[str] = set()  # names answered SERVFAIL
        self.questions: list[tuple[str, str]] = []

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        name = str(request.q.qname).rstrip(".").lower()
        rtype = QTYPE[request.q.qtype]
        self.questions.append((name, rtype))
        if name in self.failing:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        for _ in range(8):  # follow CNAMEs held here
            cname = self.records.get((name, "CNAME"))
            if not cname or rtype == "CNAME":
                break
            reply.add_answer(RR(DNSLabel(name), QTYPE.CNAME, rdata=_rdata("CNAME", cname[0]), ttl=60))
            name = cname[0].rstrip(".").lower()
        values = self.records.get((name, rtype), [])
        for v in values:
            reply.add_answer(RR(DNSLabel(name), getattr(QTYPE, rtype), rdata=_rdata(rtype, v), ttl=60))
        if not values and not reply.rr and not any(n == name for n, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class LocalDNS:
    """The running server: ``records`` to change, ``nameserver`` for DNS_NAMESERVERS."""

    def __init__(self):
        self.resolver = Records()
        self.records = self.resolver.records
        self.port = _free_port()
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self.servers = [
            DNSServer(self.resolver, port=self.port, address="127.0.0.1", tcp=tcp, logger=quiet)
            for tcp in (False, True)
        ]
        for server in self.servers:
            server.start_thread()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def txt(self, name: str) -> list[str]:
        """The TXT values held at ``name``."""
        return self.records.get((name.rstrip(".").lower(), "TXT"), [])

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            server.server.server_close()
