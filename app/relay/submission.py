"""SMTP submission into the outbox (``donebox smtp``): applications that speak SMTP send through the relay.

A client authenticates with ``AUTH PLAIN`` or ``AUTH LOGIN``, any user name and an
API token with the ``send`` scope as the password (``donebox api-token create NAME``; a token
without it is refused at AUTH with 535 naming the scope), then submits a
message as to any SMTP server. Each envelope recipient becomes one outbox row
built by ``app.relay.sends.create``, the code behind ``POST /api/messages``: the same
validation, the same limits, the same templates, tracking, DKIM and routing.
All rows of a message are committed in one transaction before the ``250`` reply,
so a ``250`` means stored; a refusal is a 5xx with the reason and stores nothing
(the same message would be refused again: a field out of range, text that cannot be
stored, a message that cannot be parsed); only a fault of ours (the database) is a
``451`` the client retries. A message that would take the team past its hourly or daily
quota (app.relay.quotas) is a ``452 4.5.3`` with the reason and stores nothing, for any of its
recipients; one with more recipients than the quota at all is a ``552 5.5.3``.

What is taken from the message: the Subject, the text and HTML parts, and
optional ``X-Donebox-*`` headers for what the JSON API takes as fields
(``X-Donebox-Send-At``, ``X-Donebox-Idempotency-Key``, ``X-Donebox-Batch-Id``,
``X-Donebox-Team-Id``). The From and every other header are not sent on: mail
goes out from ``MAIL_FROM`` with our own Message-ID, as API sends do.
Attachments are refused (the relay does not carry them), and so are inline parts (images the
HTML shows by ``cid:``), each with its own reason: an inline part is never called or counted an
attachment.

TLS: with ``SUBMISSION_TLS_CERT`` and ``SUBMISSION_TLS_KEY`` the listener offers
STARTTLS and requires it before AUTH and MAIL. Without them it is for loopback
in development only; in production it refuses to start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from app.db import session
from app.errors import QuotaExceeded, RequestError
from app.models import ApiToken, utcnow
from app.relay import sends
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


def _lines(text: str) -> str:
    """SMTP's CRLF line ends as the templates' LF (the MIME builder writes CRLF again)."""
    return text.replace("\r\n", "\n")


def message_fields(raw: bytes) -> dict:
    """The send request a submitted message stands for, without ``to``; raises SubmissionRefused."""
    try:
        email = parse_mime(raw)
    except Exception as e:  # noqa: BLE001 - the same bytes fail the same way: permanent, not 451
        raise SubmissionRefused(f"554 5.6.0 The message cannot be parsed ({type(e).__name__})") from None
    if email.attached:  # attachments proper: an inline image is not one, and is not named as one
        names = ", ".join(a.filename for a in email.attached[:3])
        raise SubmissionRefused(
            f"554 5.6.1 Attachments are not carried by this relay ({names}): link to them instead"
        )
    if email.inline_parts:  # the relay sends text and HTML only: the HTML's cid: images would arrive broken
        cids = ", ".join(f"cid:{a.content_id}" for a in email.inline_parts[:3])
        raise SubmissionRefused(
            f"554 5.6.1 Inline images are not carried by this relay ({cids}): link to hosted images instead"
        )
    body: dict = {"subject": email.subject}
    if email.html:
        body["html"] = _lines(email.html)
    if email.text and not email.text_from_html:
        body["text"] = _lines(email.text)
    if "html" not in body and "text" not in body:
        raise SubmissionRefused("554 5.6.0 The message has no text or HTML body")
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
            body[field] = int(value)
        else:
            body[field] = value
    return body


def store(token_id: int, rcpts: list[str], fields: dict, settings: Settings) -> Submitted:
    """One outbox row per recipient, all in one transaction; raises SubmissionRefused (nothing stored)."""
    key = fields.get("idempotency_key")
    now = utcnow()
    with session() as s:
        token = s.get(ApiToken, token_id)
        if token is None or token.revoked_at is not None:
            raise SubmissionRefused("535 5.7.8 The API token was revoked")
        accepted = []
        for rcpt in rcpts:
            body = {**fields, "to": rcpt}
            if key is not None and len(rcpts) > 1:
                body["idempotency_key"] = f"{key}:{rcpt.lower()}"[:200]
            try:
                accepted.append(sends.create(s, body, token, now=now, settings=settings))
            except RequestError as e:  # the session rolls back every row of this message
                code = "550 5.7.1" if e.status == 403 else "554 5.6.0"
                raise SubmissionRefused(f"{code} {'<' + rcpt + '>: ' if len(rcpts) > 1 else ''}{e}") from None
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
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, sess: Session, envelope: Envelope):
        token_id = sess.auth_data
        raw = envelope.original_content or envelope.content or b""
        try:
            fields = await asyncio.to_thread(message_fields, raw)
            done = await asyncio.to_thread(store, token_id, list(envelope.rcpt_tos), fields, self.settings)
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
    settings: Settings, *, enqueue: Callable[[list[int]], None], context: ssl.SSLContext | None = None
):
    """A factory of SMTP protocol instances for ``loop.create_server`` (or aiosmtpd's Controller)."""
    handler, authenticator = Handler(settings, enqueue), Authenticator()

    def factory() -> SMTP:
        with warnings.catch_warnings():
            # without TLS we listen on loopback in development only (tls_context enforces it)
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return _smtp()

    def _smtp() -> SMTP:
        return SMTP(
            handler,
            hostname=settings.mail_from.rsplit("@", 1)[-1],
            ident="donebox submission",
            # the whole message's size: inline parts count here, as every byte of the message does
            data_size_limit=settings.submission_max_bytes,
            enable_SMTPUTF8=True,
            tls_context=context,
            require_starttls=context is not None,
            auth_required=True,
            auth_require_tls=context is not None,
            authenticator=authenticator,
            timeout=60,
        )

    return factory


async def serve(
    settings: Settings, enqueue: Callable[[list[int]], None], stop: asyncio.Event | None = None
) -> None:
    """Listen on SUBMISSION_HOST:SUBMISSION_PORT until ``stop`` is set (or forever); ``enqueue``
    takes the ids of committed messages."""
    context = tls_context(settings)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        make_server(settings, enqueue=enqueue, context=context),
        settings.submission_host,
        settings.submission_port,
    )
    tls = "STARTTLS required" if context else "no TLS: loopback, development"
    print(f"SMTP submission on {settings.submission_host}:{settings.submission_port} ({tls})", flush=True)
    async with server:
        await (stop.wait() if stop else server.serve_forever())
