"""Sending domains: the domains applications may send From, and whether a From may be used.

``check_from`` is the one rule every way in asks (the full send API, SMTP submission): the
domain of MAIL_FROM is the instance's own and always allowed; any other domain must be a
SendingDomain of the team (or of every team, ``team_id`` None) whose DNS records were verified.
In development an unverified domain may send, with a warning in the log.

``add`` makes a domain's keys (RSA-2048 and Ed25519, stored in DkimKey so every worker of a fleet
signs with them) and ``records`` says what to publish: a DKIM TXT per key, an SPF include, a DMARC
record and the return-path host (a CNAME to RETURN_PATH_DOMAIN, where the inbound path receives the
bounces sent to ``bounces+<token>@``). ``verify`` looks them up (app.relay.dns_check) and keeps the
verdict per record. ``signing`` is what the pipeline asks per message: the From domain's keys and
return-path host, cached per process for dkim.CACHE_S seconds.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from email.utils import parseaddr

from cryptography.hazmat.primitives import serialization
from sqlmodel import Session, delete, or_, select

from app.db import session
from app.errors import RenderError, RequestError
from app.models import DkimKey, SendingDomain
from app.relay import dkim, dns_check, verp
from app.relay.render import ascii_address
from app.settings import Settings

log = logging.getLogger("donebox.domains")
_LABELS = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")


@functools.lru_cache(maxsize=1024)  # a process sends From few addresses; parseaddr takes 50 us
def domain_of(address: str) -> str:
    """The IDNA, lower-case domain of ``address`` (or of ``Name <address>``); RenderError when it is
    not an address."""
    return ascii_address(parseaddr(address)[1] or address).rpartition("@")[2]


def find(s: Session, domain: str, team_id: int | None) -> SendingDomain | None:
    """The team's (or every team's) SendingDomain row for ``domain``."""
    cond = SendingDomain.team_id.is_(None)
    if team_id is not None:
        cond = or_(cond, SendingDomain.team_id == team_id)
    return s.exec(select(SendingDomain).where(SendingDomain.domain == domain, cond)).first()


def named(s: Session, domain: str) -> SendingDomain | None:
    """The SendingDomain row of ``domain`` (lower-case IDNA), whoever's it is."""
    return s.exec(select(SendingDomain).where(SendingDomain.domain == domain)).first()


def check_from(s: Session, team_id: int | None, address: str, settings: Settings) -> str | None:
    """Why ``address`` may not be the From of a team's message, or None when it may."""
    try:
        domain = domain_of(address)
    except RenderError as e:
        return str(e)
    if domain == domain_of(settings.mail_from):
        return None
    row = find(s, domain, team_id)
    if row is None:
        return f"{domain} is not a sending domain of this team (add it: donebox domain add {domain})"
    if row.verified_at is None:
        if settings.production:
            return f"{domain} is not verified yet (publish its records, then: donebox domain verify {domain})"
        log.warning("sending from unverified domain %s (allowed in development only)", domain)
    return None


# ---------------------------------------------------------------- keys, in the database

SELECTORS = {"rsa": "donebox-rsa", "ed25519": "donebox-ed25519"}  # the kinds a new domain gets


def _pem(private) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _key(row: DkimKey) -> dkim.Key:
    return dkim.Key(
        domain=row.domain, selector=row.selector, private=dkim.private_key(row.private_pem.encode())
    )


@dataclass(frozen=True)
class Signing:
    """How mail From one domain leaves: the keys that sign it and its envelope sender's host."""

    keys: list[dkim.Key]
    return_path_host: str


class DomainCache:
    """Every worker's view of a From domain: its keys in the database (DkimKey) and, for MAIL_FROM's
    domain, the files of DKIM_DIR (``donebox dkim``), and its return-path host; kept dkim.CACHE_S
    seconds per process."""

    def __init__(self):
        self._cache: dict[tuple[str, str], tuple[float, Signing]] = {}
        self._lock = threading.Lock()

    def get(self, domain: str, settings: Settings) -> Signing:
        """How mail From ``domain`` (lower-case IDNA) is signed and returned; a file key wins over a
        stored key of the same selector."""
        now, where = time.monotonic(), (settings.database_url, domain)
        with self._lock:
            hit = self._cache.get(where)
            if hit and now - hit[0] < dkim.CACHE_S:
                return hit[1]
        found = list(dkim.key_store(settings.dkim_dir).keys(domain))
        with session() as s:
            rows = s.exec(select(DkimKey).where(DkimKey.domain == domain).order_by(DkimKey.selector)).all()
            row = named(s, domain)
        found += [_key(r) for r in rows if r.selector not in {k.selector for k in found}]
        own = domain == domain_of(settings.mail_from) or row is None or not row.return_path_host
        signing = Signing(found, settings.return_path if own else row.return_path_host)
        with self._lock:
            self._cache[where] = (now, signing)
        return signing

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


signing = DomainCache()


def reset() -> None:
    """Forget cached keys (tests: another test's database)."""
    signing.forget()


# ---------------------------------------------------------------- records to publish


@dataclass(frozen=True)
class Record:
    """One DNS record a sending domain needs: ``key`` names it in SendingDomain.checks."""

    key: str  # dkim:<selector> | spf | dmarc | return_path
    type: str  # TXT | CNAME
    name: str  # without the final dot
    value: str

    def zone_line(self) -> str:
        """The record as a zone file line (TXT split in 255-character strings)."""
        if self.type == "TXT":
            value = " ".join(f'"{self.value[i : i + 255]}"' for i in range(0, len(self.value), 255))
        else:
            value = self.value + "."
        return f"{self.name}. IN {self.type} {value}"


def records(s: Session, row: SendingDomain, settings: Settings) -> list[Record]:
    """What ``row``'s domain must publish: a DKIM TXT per key, SPF, DMARC and the return-path host."""
    d = row.domain
    keys = s.exec(select(DkimKey).where(DkimKey.domain == d).order_by(DkimKey.selector)).all()
    out = [
        Record(f"dkim:{k.selector}", "TXT", f"{k.selector}._domainkey.{d}", dkim.txt_record(_key(k).private))
        for k in keys
    ]
    out.append(Record("spf", "TXT", d, f"v=spf1 include:{settings.spf_host} ~all"))
    out.append(
        Record("dmarc", "TXT", f"_dmarc.{d}", f"v=DMARC1; p=none; rua=mailto:dmarc@{settings.return_path}")
    )
    out.append(Record("return_path", "CNAME", row.return_path_host, settings.return_path))
    return out


# ---------------------------------------------------------------- add, verify, remove


def normalized(domain: str) -> str:
    """``domain`` lower-case IDNA; RequestError naming the field when it is not a domain."""
    try:
        d = ascii_address(f"x@{domain.strip().rstrip('.')}").rpartition("@")[2]
    except RenderError as e:
        raise RequestError(f"domain: {e}") from None
    if "." not in d or len(d) > 253 or not _LABELS.match(d):
        raise RequestError(f"domain: {domain[:253]!r} is not a domain name")
    return d


def add(s: Session, domain: str, team_id: int | None, settings: Settings, *, now: datetime) -> SendingDomain:
    """Create the sending domain and its RSA-2048 and Ed25519 keys (the caller commits); RequestError
    409 when it exists, 400 when it is MAIL_FROM's own domain or not a domain."""
    d = normalized(domain)
    if d == domain_of(settings.mail_from):
        raise RequestError(f"domain: {d} is MAIL_FROM's domain, always allowed (its keys: donebox dkim)")
    if named(s, d) is not None:
        raise RequestError(f"domain: {d} is a sending domain already", status=409)
    row = SendingDomain(domain=d, team_id=team_id, return_path_host=f"bounces.{d}", created_at=now)
    s.add(row)
    s.exec(delete(DkimKey).where(DkimKey.domain == d))  # keys left by a domain removed before
    for kind, selector in SELECTORS.items():
        private = dkim.new_private_key(kind)
        s.add(DkimKey(domain=d, selector=selector, private_pem=_pem(private), created_at=now))
    s.flush()
    signing.forget()
    return row


def remove(s: Session, row: SendingDomain) -> None:
    """Delete the domain and its keys (the caller commits)."""
    s.exec(delete(DkimKey).where(DkimKey.domain == row.domain))
    s.delete(row)
    s.flush()
    signing.forget()


def listed(s: Session, team_id: int | None = None) -> list[SendingDomain]:
    """The sending domains team ``team_id`` may use (its own and every team's); None: all of them."""
    q = select(SendingDomain).order_by(SendingDomain.domain)
    if team_id is not None:
        q = q.where(or_(SendingDomain.team_id.is_(None), SendingDomain.team_id == team_id))
    return list(s.exec(q).all())


def checks_of(row: SendingDomain) -> dict:
    """The verdicts of the last verification, {record key: {status, found, detail}}."""
    try:
        value = json.loads(row.checks or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def missing(row: SendingDomain) -> list[str]:
    """The record keys the last verification did not find as they should be (all of them when never
    verified)."""
    return [k for k, v in checks_of(row).items() if v.get("status") != "ok"]


def described(s: Session, row: SendingDomain, settings: Settings) -> dict:
    """A domain as the API and the domains page show it: its records, each with its last verdict
    (``unchecked`` before the first verification), and the keys of those not found as they should be."""
    checks = checks_of(row)
    rows = []
    for r in records(s, row, settings):
        verdict = checks.get(r.key, {})
        status, found = verdict.get("status", "unchecked"), verdict.get("found", [])
        rows.append({**asdict(r), "status": status, "detail": verdict.get("detail", ""), "found": found})
    return {
        "id": row.id,
        "domain": row.domain,
        "team_id": row.team_id,
        "return_path_host": row.return_path_host,
        "verified": row.verified_at is not None,
        "verified_at": row.verified_at,
        "checked_at": row.checked_at,
        "missing": [r["key"] for r in rows if r["status"] != "ok"],
        "records": rows,
    }


def look_up(s: Session, row: SendingDomain, settings: Settings) -> dict:
    """The verdict on every record of ``row`` (dnspython, DNS_NAMESERVERS), {record key: {status,
    found, detail}}, stored nowhere: `verify` records them, `donebox doctor` only reports them."""
    ask = dns_check.Asker(settings)
    return {r.key: dns_check.check(ask, r, settings).as_dict() for r in records(s, row, settings)}


def verify(s: Session, row: SendingDomain, settings: Settings, *, now: datetime) -> dict:
    """Look up every record of ``row`` (dnspython, DNS_NAMESERVERS) and record the verdicts in
    ``checks``; ``verified_at`` when every one is found as it should be (else None). The caller commits."""
    result = look_up(s, row, settings)
    row.checks = json.dumps(result)
    row.checked_at = now
    ok = all(v["status"] == "ok" for v in result.values())
    if ok and row.verified_at is None:
        row.verified_at = now
    elif not ok:
        row.verified_at = None
    s.add(row)
    s.flush()
    return result


# ---------------------------------------------------------------- VERP


def envelope_sender(from_addr: str, message_id: int, settings: Settings) -> str:
    """The VERP envelope sender of outbound ``message_id`` sent From ``from_addr`` ('' = MAIL_FROM):
    ``bounces+<token>@`` the sending domain's return-path host, or RETURN_PATH_DOMAIN."""
    host = signing.get(domain_of(from_addr or settings.mail_from), settings).return_path_host
    return verp.address(message_id, host, settings.secret_key)
