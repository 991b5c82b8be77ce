"""Whether this instance and the world it depends on work: `donebox doctor` and the operator's
health page (/mail/health).

``CHECKS`` is the list of named checks, in the order they print; each takes the settings and
returns ``Check`` rows (name, ok | warn | fail, what was found, what to fix). They ask the code
that does the work: the migrations' heads (app.migrate), routing's senders and each transport's
handshake, the sending domains' record lookups (app.relay.domains.look_up), the providers'
settings (Settings.secret_for). A check that raises becomes a ``fail`` naming the error; warnings
never fail the doctor.

The page adds what a running instance shows: the oldest inbound message not processed yet, how
long each inbound provider keeps retrying (``RETRY_HORIZONS``), the complaint rate per sending
domain against the lines Gmail and Yahoo hold senders to, this process's open circuits and the
broker's queue depths.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import redis
from sqlalchemy import and_, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app.db import session
from app.errors import PermanentSendError, RenderError, TransientSendError
from app.migrate import behind
from app.models import InboundMessage, MessageEvent, OutboundMessage, SendingDomain
from app.relay import dns_check, domains, routing
from app.relay.transports.smtp import SMTPTransport
from app.settings import Settings
from jobs.broker import queue_depths
from parsers.providers import PROVIDERS

OK, WARN, FAIL = "ok", "warn", "fail"
PROBE_TIMEOUT_S = 5.0  # each network step of a check: a connect, an SMTP command
SKEW_WARN_S, SKEW_FAIL_S = 2.0, 30.0  # signed webhook timestamps are refused past MAILGUN_MAX_AGE_S (300)
LOCAL_SUFFIXES = (".localhost", ".test", ".invalid", ".example", ".local")  # no mail reaches these


@dataclass(frozen=True)
class Check:
    """One check's verdict."""

    name: str  # "database", "sender smtp1", "domain example.com"...
    status: str  # ok | warn | fail
    detail: str  # what was found
    fix: str = ""  # what to do about it ('' when nothing)

    def line(self) -> str:
        """The doctor's line: ``ok   database: ...`` or ``FAIL sender a: ... -> fix: ...``."""
        mark = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}[self.status]
        return f"{mark} {self.name}: {self.detail}" + (f" -> fix: {self.fix}" if self.fix else "")


def _error(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


# ---------------------------------------------------------------- the checks


def database(settings: Settings) -> list[Check]:
    """Reachable, and at every head of the migrations."""
    try:
        at, lacking = behind(settings.database_url)
    except Exception as e:  # noqa: BLE001 - the driver's error, whatever it is, is the finding
        return [
            Check(
                "database",
                FAIL,
                f"cannot connect: {_error(e)}",
                "check DATABASE_URL and that the server runs",
            )
        ]
    if lacking:
        now_at = ", ".join(at) or "no migration"
        return [
            Check(
                "database",
                FAIL,
                f"reachable, at {now_at}; missing {', '.join(lacking)}",
                "run `donebox migrate` (the web and workers need the newest schema)",
            )
        ]
    newest = max(at, default="")
    more = f" (and {len(at) - 1} other heads)" if len(at) > 1 else ""
    return [Check("database", OK, f"reachable, migrated to {newest}{more}")]


def broker(settings: Settings) -> list[Check]:
    """Redis or RabbitMQ answers; the in-memory broker is fine for one process."""
    if settings.redis_url:
        u = urlsplit(settings.redis_url)
        where = f"Redis at {u.hostname}:{u.port or 6379}"
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S
        )
        try:
            client.ping()
        except redis.RedisError as e:
            return [
                Check(
                    "broker",
                    FAIL,
                    f"{where} does not answer: {_error(e)}",
                    "start Redis or correct REDIS_URL",
                )
            ]
        finally:
            client.close()
        return [Check("broker", OK, f"{where} answers PING")]
    if settings.rabbitmq_url:
        u = urlsplit(settings.rabbitmq_url)
        where = f"RabbitMQ at {u.hostname}:{u.port or 5672}"
        try:
            socket.create_connection((u.hostname, u.port or 5672), timeout=PROBE_TIMEOUT_S).close()
        except OSError as e:
            return [Check("broker", FAIL, f"{where}: {_error(e)}", "start RabbitMQ or correct RABBITMQ_URL")]
        return [Check("broker", OK, f"{where} accepts connections (TCP only: AMQP login not tried)")]
    return [
        Check(
            "broker",
            OK,
            "embedded (in memory): each process runs its own worker threads; "
            "set REDIS_URL to run `donebox worker` processes apart",
        )
    ]


def _probe(url: str) -> str:
    """What a sender's server said when asked without sending; raises when it did not answer."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "smtp":
        return SMTPTransport(url).probe(PROBE_TIMEOUT_S)
    if scheme in ("sendgrid", "sendgrid+http"):
        u = urlsplit(url)
        port = u.port or (80 if scheme == "sendgrid+http" else 443)
        if not u.username:
            raise PermanentSendError("no API key in the URL (sendgrid://KEY@api.sendgrid.com)")
        try:
            socket.create_connection(
                (u.hostname or "api.sendgrid.com", port), timeout=PROBE_TIMEOUT_S
            ).close()
        except OSError as e:
            raise TransientSendError(f"cannot connect to {u.hostname}:{port}: {e}", connection=True) from e
        return f"the API at {u.hostname}:{port} accepts connections (the key is checked only by a send)"
    if scheme in ("maildir", "memory"):
        return f"{scheme}: mail stays on this machine"
    raise ValueError(f"unknown transport {scheme!r}")


def _sender_fix(url: str, e: Exception) -> str:
    again = "`donebox sender add NAME URL` replaces it"
    if isinstance(e, ValueError):
        return f"its URL is unusable: {again}"
    if isinstance(e, PermanentSendError):
        if url.startswith("smtp:"):
            return f"correct the user and password in its URL ({again})"
        return f"put the API key in its URL ({again})"
    return "check the host, port (and tls=) of its URL, and that this machine may reach it"


def senders(settings: Settings) -> list[Check]:
    """Each enabled sender answers (SMTP: connect, EHLO, AUTH; SendGrid: a connection to its API)."""
    config = routing.load_config()
    enabled = [s for s in config.senders.values() if s.enabled]
    if not enabled:
        if settings.mail_transport == "none":
            return [Check("senders", FAIL, "no enabled sender and MAIL_TRANSPORT=none", routing.NO_SENDER)]
        where = settings.mail_dir if settings.mail_transport == "maildir" else "memory"
        status = WARN if settings.production else OK
        fix = (
            "add a sender: `donebox sender add NAME smtp://USER:PASSWORD@HOST:587`"
            if settings.production
            else ""
        )
        return [
            Check(
                "senders",
                status,
                f"none: MAIL_TRANSPORT={settings.mail_transport} keeps mail in {where}",
                fix,
            )
        ]
    out = []
    for s in enabled:
        try:
            out.append(Check(f"sender {s.name}", OK, _probe(s.url)))
        except (TransientSendError, PermanentSendError, ValueError) as e:
            out.append(Check(f"sender {s.name}", FAIL, str(e)[:300], _sender_fix(s.url, e)))
    if not any(c.status == OK for c in out):
        out.append(
            Check("senders", FAIL, "no enabled sender answers: no mail can leave", "fix a sender above")
        )
    return out


def sending_domains(settings: Settings) -> list[Check]:
    """Each sending domain's DKIM, SPF, DMARC and return-path records, looked up now (not stored)."""
    out = []
    with session() as s:
        for row in s.execute(select(SendingDomain).order_by(SendingDomain.domain)).scalars():
            verdicts = domains.look_up(s, row, settings)
            bad = {k: v for k, v in verdicts.items() if v["status"] != "ok"}
            name = f"domain {row.domain}"
            if not bad:
                out.append(Check(name, OK, f"{', '.join(verdicts)} published"))
                continue
            said = "; ".join(
                f"{k} {v['status']}" + (f" ({v['detail']})" if v["detail"] else "") for k, v in bad.items()
            )
            out.append(
                Check(
                    name,
                    FAIL,
                    said,
                    f"publish what `donebox domain records {row.domain}` prints, then verify",
                )
            )
    if not out:
        out.append(Check("sending domains", OK, "none: mail goes From MAIL_FROM's domain"))
    return out


def reply_mx(settings: Settings) -> list[Check]:
    """REPLY_DOMAIN and each of INBOUND_DOMAINS has an MX: replies can arrive."""
    ask = dns_check.Asker(settings)
    out = []
    for domain in settings.reply_domains:
        name = f"mx {domain}"
        if domain == "localhost" or domain.endswith(LOCAL_SUFFIXES):
            status = FAIL if settings.production else WARN
            out.append(
                Check(
                    name,
                    status,
                    "a local name: no mail from outside reaches it",
                    "set REPLY_DOMAIN to a domain you own",
                )
            )
            continue
        try:
            hosts = ask.values(domain, "MX")
        except dns_check.LookupFailed as e:
            out.append(
                Check(name, FAIL, f"the lookup failed: {e}", "check DNS_NAMESERVERS and the domain's DNS")
            )
            continue
        if hosts:
            out.append(Check(name, OK, "MX " + ", ".join(sorted(hosts))))
        else:
            fix = f"publish an MX for {domain} pointing at your inbound provider (or your own MX)"
            out.append(Check(name, FAIL, "no MX record: replies cannot arrive", fix))
    return out


def inbound_providers(settings: Settings) -> list[Check]:
    """Each inbound provider that has sent mail, or whose secret is set, has its secret: production
    answers its webhook 404 without one, development takes it unauthenticated."""
    with session() as s:
        used = set(s.execute(select(InboundMessage.provider).distinct()).scalars())
    out = []
    for p in PROVIDERS.values():
        if not (p.webhook and p.setting):
            continue
        name = f"inbound {p.name}"
        if settings.secret_for(p.name):
            out.append(Check(name, OK, f"{p.setting} is set"))
        elif p.name not in used:
            said = (
                f"not configured: /inbound/{p.name} answers 404 without {p.setting}"
                if settings.production or not p.open_in_development
                else f"no mail yet; {p.setting} is unset, so development takes its webhook unauthenticated"
            )
            out.append(Check(name, OK, said))
        elif settings.production:
            out.append(
                Check(
                    name,
                    FAIL,
                    f"mail came this way but {p.setting} is unset: its webhook is refused",
                    f"set {p.setting}",
                )
            )
        else:
            said = (
                f"{p.setting} is unset: its webhook takes unauthenticated requests (production refuses them)"
            )
            out.append(Check(name, WARN, said, f"set {p.setting}"))
    return out


def clock(settings: Settings, wall: Callable[[], float] = time.time) -> list[Check]:
    """This machine's clock against the database server's now() (PostgreSQL)."""
    with session() as s:
        if s.get_bind().dialect.name != "postgresql":
            return [Check("clock", OK, "cannot be checked on SQLite (the database is on this machine)")]
        before = wall()
        theirs = s.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
        ours = (before + wall()) / 2
    skew = float(theirs) - ours
    said = f"{abs(skew):.1f} s {'behind' if skew > 0 else 'ahead of'} the database server"
    if abs(skew) >= SKEW_FAIL_S:
        return [Check("clock", FAIL, said, "run NTP (chrony, systemd-timesyncd) on both machines")]
    if abs(skew) >= SKEW_WARN_S:
        return [Check("clock", WARN, said, "run NTP (chrony, systemd-timesyncd) on both machines")]
    return [Check("clock", OK, said)]


CHECKS: tuple[Callable[[Settings], list[Check]], ...] = (
    database,
    broker,
    senders,
    sending_domains,
    reply_mx,
    inbound_providers,
    clock,
)
NEEDS_DATABASE = frozenset({senders, sending_domains, inbound_providers, clock})


def run(settings: Settings) -> list[Check]:
    """Every check, in order; one that raises becomes a fail naming the error, and those that read
    the database are skipped (one line each) when it cannot be read."""
    out: list[Check] = []
    for check in CHECKS:
        name = check.__name__.replace("_", " ")
        if check in NEEDS_DATABASE and out and out[0].name == "database" and out[0].status == FAIL:
            out.append(
                Check(name, FAIL, "not checked: the database is not ready (above)", "fix the database first")
            )
            continue
        try:
            out.extend(check(settings))
        except (SQLAlchemyError, OSError, ValueError, redis.RedisError) as e:
            out.append(
                Check(
                    name,
                    FAIL,
                    f"the check failed: {_error(e)}",
                    "run `donebox migrate`, then look at the error",
                )
            )
    return out


def failed(checks: list[Check]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(c.status == FAIL for c in checks)


# ---------------------------------------------------------------- what the page adds

# How long each inbound provider retries a webhook we did not answer with a 2xx, from their docs:
# - SendGrid Inbound Parse: "Messages that cannot be delivered after 3 days will be dropped"
#   (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email)
# - Mailgun: retries "during 8 hours" (5, 10, 15 min, 1, 2, 4 h), except after a 406
#   (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-retries)
# - Postmark: "10 retries ... over roughly 10.5 hours", none after a 403
#   (https://postmarkapp.com/support/article/understanding-inbound-webhook-retries-in-postmark)
# - SES through SNS: the default HTTP/S policy is three retries 20 s apart; a subscription's own
#   delivery policy may stretch it to an hour at most; mail an S3 action stored stays in the bucket
#   (https://docs.aws.amazon.com/sns/latest/dg/sns-message-delivery-retries.html)
# - raw (your own MTA posting): as long as that MTA queues (Postfix: 5 days by default); IMAP: the
#   mail waits in the mailbox.
RETRY_HORIZONS: dict[str, tuple[timedelta, str]] = {
    "sendgrid": (timedelta(days=3), "3 days"),
    "mailgun": (timedelta(hours=8), "8 hours"),
    "postmark": (timedelta(hours=10, minutes=30), "about 10.5 hours"),
    "ses": (timedelta(minutes=1), "about a minute (SNS's default policy; at most an hour)"),
}
PROVIDER_NAMES = {"sendgrid": "SendGrid", "mailgun": "Mailgun", "postmark": "Postmark", "ses": "Amazon SES"}


def retry_horizons(now: datetime) -> list[tuple[str, str]]:
    """(provider, what is lost when) for each provider that retries: if donebox stops answering at
    ``now``, the provider's mail of that moment is dropped once its retries run out."""
    out = []
    for name, (span, said) in RETRY_HORIZONS.items():
        at = (now + span).strftime("%Y-%m-%d %H:%M UTC")
        label = PROVIDER_NAMES[name]
        out.append(
            (name, f"If donebox stops answering now, {label} retries for {said}: its mail is lost from {at}.")
        )
    return out


@dataclass(frozen=True)
class Waiting:
    """The oldest inbound message not processed yet."""

    id: int
    provider: str
    received_at: datetime
    age: timedelta


def oldest_inbound(s, now: datetime) -> Waiting | None:
    """The inbound message received longest ago that is still received or processing."""
    row = s.execute(
        select(InboundMessage.id, InboundMessage.provider, InboundMessage.received_at)
        .where(InboundMessage.state.in_(("received", "processing")))
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(1)
    ).first()
    return None if row is None else Waiting(row.id, row.provider, row.received_at, now - row.received_at)


COMPLAINT_DAYS = 7
COMPLAINT_WARN, COMPLAINT_FAIL = 0.001, 0.003  # Gmail's and Yahoo's bulk sender lines: 0.1% and 0.3%


@dataclass(frozen=True)
class Complaints:
    """A sending domain's complaints over its delivered (or, without delivery events, sent) mail."""

    domain: str
    complaints: int
    base: int  # messages delivered (or sent)
    base_kind: str  # delivered | sent
    rate: float
    status: str


def complaint_rates(s, settings: Settings, now: datetime) -> list[Complaints]:
    """Per From domain, complaints / delivered over the last COMPLAINT_DAYS days, from the messages'
    events (sent, when no delivery event came at all: a relay that reports none)."""
    since = now - timedelta(days=COMPLAINT_DAYS)
    E, M = MessageEvent, OutboundMessage
    rows = s.execute(
        select(M.from_addr, E.kind, func.count(func.distinct(E.message_id)))
        .join(M, M.id == E.message_id)
        .where(and_(E.created_at >= since, E.kind.in_(("sent", "delivered", "complained"))))
        .group_by(M.from_addr, E.kind)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    own = domains.domain_of(settings.mail_from)
    for from_addr, kind, n in rows:
        try:
            d = domains.domain_of(from_addr) if from_addr else own
        except RenderError:  # a From the relay accepted once: counted apart rather than lost
            d = "(unreadable From)"
        by = counts.setdefault(d, {})
        by[kind] = by.get(kind, 0) + n
    out = []
    for d, by in sorted(counts.items()):
        kind = "delivered" if by.get("delivered") else "sent"
        base, complaints = by.get(kind, 0), by.get("complained", 0)
        rate = complaints / base if base else (1.0 if complaints else 0.0)
        status = FAIL if rate > COMPLAINT_FAIL else WARN if rate > COMPLAINT_WARN else OK
        out.append(Complaints(d, complaints, base, kind, rate, status))
    return out


@dataclass(frozen=True)
class Report:
    """Everything the operator's health page shows."""

    checks: list[Check]
    oldest: Waiting | None
    horizons: list[tuple[str, str]]
    complaints: list[Complaints]
    circuits: list[tuple[str, str, float]]
    queues: dict[str, int]


def report(settings: Settings, now: datetime) -> Report:
    """The doctor's checks and the running instance's numbers."""
    checks = run(settings)
    with session() as s:
        oldest = oldest_inbound(s, now)
        complaints = complaint_rates(s, settings, now)
    return Report(
        checks,
        oldest,
        retry_horizons(now),
        complaints,
        routing.breaker(settings).open_circuits(),
        queue_depths(),
    )
