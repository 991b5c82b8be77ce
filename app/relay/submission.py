"""SMTP submission into the outbox (``donebox smtp``): applications that speak SMTP send through the relay.

A client authenticates with ``AUTH PLAIN`` or ``AUTH LOGIN``, any user name and an
API token with the ``send`` scope as the password (``donebox api-token create NAME``; a token
without it is refused at AUTH with 535 naming the scope), then submits any message as to any
SMTP server. The message is kept as the application composed it: its MIME structure,
attachments, inline images, From, Reply-To, Cc and every other header. It is stored once
(app.relay.composed, an OutboundBody) without any Bcc header and without the ``X-Donebox-*``
headers, and each envelope recipient becomes one outbox row naming it (kind ``api``,
``from_addr`` the From's address, the message's own Message-ID or a new one, ``_track`` the
team's tracking setting). The relay adds only what it owns when it sends a copy
(app.relay.pipeline COMPOSED_STEPS): tracking in the HTML parts and List-Unsubscribe when the
team tracks its mail, our Message-ID only when the message has none, the DKIM signature.

The From's domain must be one the authenticated token's team may send from
(app.relay.domains.check_from: MAIL_FROM's domain, or a verified sending domain of the team);
otherwise ``550 5.7.1`` with the reason. All rows of a message are committed in one transaction
before the ``250`` reply, so a ``250`` means stored; a refusal is a 5xx with the reason and stores
nothing (the same message would be refused again: a field out of range, text that cannot be
stored, a message that cannot be parsed); only a fault of ours (the database) is a ``451`` the
client retries. A message that would take the team past its hourly or daily quota
(app.relay.quotas) is a ``452 4.5.3`` with the reason and stores nothing, for any of its
recipients; one with more recipients than the quota at all is a ``552 5.5.3``.

Optional ``X-Donebox-*`` headers carry what the JSON API takes as fields
(``X-Donebox-Send-At``, ``X-Donebox-Idempotency-Key``, ``X-Donebox-Batch-Id``,
``X-Donebox-Team-Id``). EHLO advertises ``SIZE`` (SUBMISSION_MAX_BYTES; larger messages get 552),
``8BITMIME`` (8-bit bodies are kept as they are) and ``SMTPUTF8`` (a recipient with a UTF-8 local
part is accepted when MAIL FROM declared SMTPUTF8, and delivered with it).

TLS: with ``SUBMISSION_TLS_CERT`` and ``SUBMISSION_TLS_KEY`` the listener offers
STARTTLS and requires it before AUTH and MAIL, and with ``SUBMISSION_TLS_PORT`` it also listens
with implicit TLS (465 style) on that port. Without them it is for loopback in development only;
in production it refuses to start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from app.db import session
from app.errors import QuotaExceeded, RequestError
from app.models import ApiToken, OutboundBody, TeamSettings, bad_text, utcnow
from app.relay import composed, domains, outbox, sends
from app.relay.api_tokens import check_token, has_scope, missing_scope
from app.settings import Settings, SettingsError
from parsers.message import parse_mime

log = logging.getLogger("donebox.submission")

MAX_RECIPIENTS = 100
TOKEN_TTL_S = 30.0  # a revoked token stops working for new sessions within this
HEADER_FIELDS = {
    "x-donebox-send-at": "send_at",
    "x-donebox-idempotency-key": "idempotency_key",
    "x-donebox-batch-id": "batch_id",
    "x-donebox-team-id": "team_id",
}


@dataclass(frozen=True)
class Submitted:
    """What one message became: the new (or, for a known idempotency key, existing) outbox ids."""

    ids: tuple[int, ...]
    to_enqueue: tuple[int, ...]


class SubmissionRefused(Exception):
    """Raised for a submission donebox will not store; the text is the SMTP reply."""


class Authenticator:
    """aiosmtpd's authenticator: the password is an API token with the ``send`` scope; answers from
    a short cache."""

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[float, int | None, bool]] = {}

    def token_id(self, password: bytes) -> tuple[int | None, bool]:
        """(the live token's id or None, whether it may send)."""
        hit = self._cache.get(password)
        if hit and time.monotonic() - hit[0] < TOKEN_TTL_S:
            return hit[1], hit[2]
        try:
            token = password.decode("utf-8")
        except UnicodeDecodeError:
            return None, False
        with session() as s:
            row = check_token(s, token)
            found = (row.id, has_scope(row, "send")) if row is not None else (None, False)
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[password] = (time.monotonic(), *found)
        return found

    def __call__(self, server, sess: Session, envelope: Envelope, mechanism: str, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            token_id, may_send = self.token_id(auth_data.password)
        except Exception:  # noqa: BLE001 - the database is down: say so, keep the session
            log.exception("checking an API token failed")
            return AuthResult(
                success=False, handled=False, message="454 4.7.0 Temporary authentication failure"
            )
        if token_id is None:
            return AuthResult(success=False, handled=False)
        if not may_send:
            return AuthResult(success=False, handled=False, message=f"535 5.7.8 {missing_scope('send')}")
        return AuthResult(success=True, auth_data=token_id)


def message_fields(raw: bytes) -> dict:
    """What the stored rows take from a submitted message (From address, Subject, Message-ID) and
    the options of its ``X-Donebox-*`` headers; raises SubmissionRefused."""
    try:
        email = parse_mime(raw)
    except Exception as e:  # noqa: BLE001 - the same bytes fail the same way: permanent, not 451
        raise SubmissionRefused(f"554 5.6.0 The message cannot be parsed ({type(e).__name__})") from None
    if not email.from_addr:
        raise SubmissionRefused("554 5.6.0 The message has no From address")
    if len(email.from_addr) > 320:
        raise SubmissionRefused("554 5.6.0 The From address is longer than 320 characters")
    if "message-id" in composed.header_names(raw) and not email.message_id:
        raise SubmissionRefused("554 5.6.0 The Message-ID header is not of the form <id@domain>")
    if len(email.message_id) > 255:
        raise SubmissionRefused("554 5.6.0 The Message-ID is longer than 255 characters")
    why = bad_text(email.subject)
    if why:
        raise SubmissionRefused(f"554 5.6.0 subject {why}")
    fields: dict = {"from": email.from_addr, "subject": email.subject, "message_id": email.message_id}
    for name, value in email.headers:
        field = HEADER_FIELDS.get(name.lower())
        if field is None:
            continue
        value = value.strip()
        if field == "team_id":
            if not value.isdigit() or len(value) > 18:
                raise SubmissionRefused(
                    f"554 5.6.0 X-Donebox-Team-Id must be a team's number, not {value[:40]!r}"
                )
            fields[field] = int(value)
        else:
            fields[field] = value
    return fields


# never stored: Bcc (who else got it is the sender's secret) and our own instructions
UNSTORED = frozenset({"bcc", *HEADER_FIELDS})


@dataclass(frozen=True)
class Options:
    """What the X-Donebox-* headers ask of a message's rows."""

    team_id: int | None
    send_at: datetime | None
    key: str | None
    batch_id: str | None


def _options(s, fields: dict, token: ApiToken, now: datetime, settings: Settings) -> Options:
    """The rows' team, schedule, key and batch; raises RequestError for the same values the JSON
    API refuses (its own checks of these fields)."""
    send_at = sends._send_at(fields.get("send_at"), now, settings.api_max_schedule_s)
    key = sends._string(fields, "idempotency_key", limit=200)
    if key is not None and not sends._KEY.match(key):
        raise RequestError("idempotency_key must be 1-200 printable ASCII characters without spaces")
    batch_id = sends._string(fields, "batch_id", limit=200)
    if batch_id is not None and not sends._BATCH.match(batch_id):
        raise RequestError("batch_id must be 1-200 of A-Z a-z 0-9 . _ : -")
    return Options(sends._team_id(s, fields, token), send_at, key, batch_id)


def _tracks(s, team_id: int | None) -> bool:
    row = s.get(TeamSettings, team_id) if team_id is not None else None
    return bool(row and row.tracking)


def store(token_id: int, rcpts: list[str], raw: bytes, fields: dict, settings: Settings) -> Submitted:
    """The message stored once and one outbox row per recipient, all in one transaction; raises
    SubmissionRefused (nothing stored)."""
    now = utcnow()
    with session() as s:
        token = s.get(ApiToken, token_id)
        if token is None or token.revoked_at is not None:
            raise SubmissionRefused("535 5.7.8 The API token was revoked")
        try:
            opts = _options(s, fields, token, now, settings)
        except RequestError as e:
            raise SubmissionRefused(f"{'550 5.7.1' if e.status == 403 else '554 5.6.0'} {e}") from None
        team_id, key = opts.team_id, opts.key
        later = opts.send_at is not None and opts.send_at > now
        why = domains.check_from(s, team_id, fields["from"], settings)
        if why:
            raise SubmissionRefused(f"550 5.7.1 From <{fields['from'][:100]}>: {why}")
        body_id = composed.store(s, composed.without(raw, UNSTORED), now=now)
        message_id = fields["message_id"] or outbox.new_message_id(settings.mail_domain)
        scope = f"t{token.team_id}" if token.team_id is not None else "all"
        context = json.dumps({"_track": _tracks(s, team_id)})
        accepted = []
        for rcpt in rcpts:
            rcpt_key = f"{key}:{rcpt.lower()}"[:200] if key is not None and len(rcpts) > 1 else key
            mid, created = outbox.create(
                s,
                now=now,
                idempotency_key=f"api:{scope}:{rcpt_key}" if key else f"api:{uuid.uuid4().hex}",
                kind="api",
                team_id=team_id,
                to_addr=rcpt,
                subject=fields["subject"],
                context=context,
                message_id=message_id,
                state="scheduled" if later else "queued",
                send_at=opts.send_at,
                batch_id=opts.batch_id,
                lease_until=None if later else now + timedelta(seconds=settings.lease_s),
                body_id=body_id,
                from_addr=fields["from"],
            )
            state = "scheduled" if later else "queued"
            accepted.append(sends.Accepted(mid, state, not created, opts.send_at, opts.batch_id, team_id))
        if all(a.duplicate for a in accepted):  # a resubmission: the rows that exist keep their body
            s.delete(s.get(OutboundBody, body_id))
        try:
            sends.check_quotas(s, accepted, now=now, settings=settings)
        except QuotaExceeded as e:  # every recipient or none: the rows roll back
            if e.retry_after_s is None:  # more recipients than the quota: never fits as it is
                raise SubmissionRefused(f"552 5.5.3 {e}") from None
            raise SubmissionRefused(f"452 4.5.3 {e}") from None
    return Submitted(
        tuple(a.id for a in accepted),
        tuple(a.id for a in accepted if a.state == "queued" and not a.duplicate),
    )


class Handler:
    """aiosmtpd handler: check recipients as they come, store the message at DATA."""

    def __init__(self, settings: Settings, enqueue: Callable[[list[int]], None]):
        self.settings = settings
        self.enqueue = enqueue  # hands committed ids to the workers (jobs.enqueue.enqueue_deliveries)

    async def handle_RCPT(self, server, sess: Session, envelope: Envelope, address: str, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 At most {MAX_RECIPIENTS} recipients per message"
        if not sends.ADDRESS.match(address):
            return f"550 5.1.3 <{address[:100]}> is not an address donebox can send to"
        if not address.isascii() and not envelope.smtp_utf8:
            return f"553 5.6.7 <{address[:100]}> needs SMTPUTF8: declare it at MAIL FROM"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, sess: Session, envelope: Envelope):
        token_id = sess.auth_data
        raw = envelope.original_content or envelope.content or b""
        try:
            fields = await asyncio.to_thread(message_fields, raw)
            rcpts = list(envelope.rcpt_tos)
            done = await asyncio.to_thread(store, token_id, rcpts, raw, fields, self.settings)
        except SubmissionRefused as e:
            return str(e)
        except Exception:  # noqa: BLE001 - nothing was committed; the client keeps the mail and retries
            log.exception("storing a submitted message failed")
            return "451 4.3.0 Temporary failure storing the message; try again later"
        if done.to_enqueue:  # committed: a broker fault is the enqueuer's to log, the sweeper's to repair
            await asyncio.to_thread(self.enqueue, list(done.to_enqueue))
        log.info("submission from token %s: %d message(s) %s", token_id, len(done.ids), done.ids)
        return f"250 2.0.0 Queued as {' '.join(map(str, done.ids))}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context from the configured certificate, or None; raises SettingsError."""
    if not settings.submission_tls_cert and not settings.submission_tls_key:
        if settings.production:
            raise SettingsError("donebox smtp in production needs SUBMISSION_TLS_CERT and SUBMISSION_TLS_KEY")
        if not _loopback(settings.submission_host):
            raise SettingsError(
                "without SUBMISSION_TLS_CERT/KEY donebox smtp listens on loopback only "
                f"(SUBMISSION_HOST is {settings.submission_host})"
            )
        return None
    if not (settings.submission_tls_cert and settings.submission_tls_key):
        raise SettingsError("SUBMISSION_TLS_CERT and SUBMISSION_TLS_KEY go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.submission_tls_cert, settings.submission_tls_key)
    except (OSError, ssl.SSLError) as e:
        raise SettingsError(f"cannot load the submission TLS certificate: {e}") from None
    return context


def make_server(
    settings: Settings,
    *,
    enqueue: Callable[[list[int]], None],
    context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
):
    """A factory of SMTP protocol instances for ``loop.create_server`` (or aiosmtpd's Controller).
    ``implicit_tls``: the listener's sockets are TLS from the start (``ssl=context`` at
    create_server), so STARTTLS is neither offered nor required."""
    handler, authenticator = Handler(settings, enqueue), Authenticator()
    starttls = None if implicit_tls else context

    def factory() -> SMTP:
        with warnings.catch_warnings():
            # without TLS we listen on loopback in development only (tls_context enforces it); with
            # implicit TLS every byte is encrypted before AUTH, which aiosmtpd cannot see
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return _smtp()

    def _smtp() -> SMTP:
        return SMTP(
            handler,
            hostname=settings.mail_domain,
            ident="donebox submission",
            # the whole message's size: inline parts count here, as every byte of the message does
            data_size_limit=settings.submission_max_bytes,
            enable_SMTPUTF8=True,
            tls_context=starttls,
            require_starttls=starttls is not None,
            auth_required=True,
            auth_require_tls=starttls is not None,
            authenticator=authenticator,
            timeout=60,
        )

    return factory


async def serve(
    settings: Settings, enqueue: Callable[[list[int]], None], stop: asyncio.Event | None = None
) -> None:
    """Listen on SUBMISSION_HOST:SUBMISSION_PORT (STARTTLS) and, when set, SUBMISSION_TLS_PORT
    (implicit TLS) until ``stop`` is set (or forever); ``enqueue`` takes the ids of committed
    messages. Raises SettingsError for an implicit TLS port without a certificate."""
    context = tls_context(settings)
    if settings.submission_tls_port and context is None:
        raise SettingsError("SUBMISSION_TLS_PORT needs SUBMISSION_TLS_CERT and SUBMISSION_TLS_KEY")
    loop = asyncio.get_running_loop()
    host = settings.submission_host
    servers = [
        await loop.create_server(
            make_server(settings, enqueue=enqueue, context=context), host, settings.submission_port
        )
    ]
    tls = "STARTTLS required" if context else "no TLS: loopback, development"
    print(f"SMTP submission on {host}:{settings.submission_port} ({tls})", flush=True)
    if settings.submission_tls_port:
        factory = make_server(settings, enqueue=enqueue, context=context, implicit_tls=True)
        servers.append(await loop.create_server(factory, host, settings.submission_tls_port, ssl=context))
        print(f"SMTP submission on {host}:{settings.submission_tls_port} (implicit TLS)", flush=True)
    try:
        if stop:
            await stop.wait()
        else:
            await asyncio.gather(*(srv.serve_forever() for srv in servers))
    finally:
        for srv in servers:
            srv.close()
        for srv in servers:
            await srv.wait_closed()
