"""The SMTP transport: aiosmtplib connection pools on the process's event loop thread.

One ``SMTPTransport`` per sender URL and process; its pool keeps up to ``pool``
authenticated connections open and reuses them across messages (a connection
that broke is replaced, and the message retried once on a fresh one when the
break came before DATA was accepted). Replies map by (enhanced) status code:
4xx -> TransientSendError, 5xx -> PermanentSendError; 5.7.x and 4.7.x are
blocks of the sender, which routing's circuit breaker counts.

What goes into DATA is the message with every line ending made CRLF (no bare CR
or LF can reach the server, so no SMTP smuggling) and, by aiosmtplib, every line
starting with "." doubled. An address with a UTF-8 local part goes with ``SMTPUTF8`` (a server
without it refuses the message for good), 8-bit data with ``BODY=8BITMIME`` where the server has it.

A relay run by a provider whose events donebox reads (Postmark, Mailgun) gets our outbox id in
the header that provider turns into event metadata and strips (``PROVIDER_TAGS``), so its
events find the message; the provider is known by the host, or named with ``tag=``.

URL: ``smtp://user:password@host:port?tls=starttls|implicit|none&timeout=30&pool=4&ca=/path.pem&verify=1&tag=``
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from app.errors import PermanentSendError, TransientSendError
from app.relay import aioloop
from app.relay.transports.base import Outgoing, SendResult

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}
# provider -> (the domain of its SMTP hosts, the header it reads our outbox id from). Postmark turns
# X-PM-Metadata-<key> into the events' Metadata; Mailgun, X-Mailgun-Variables into user-variables.
PROVIDER_TAGS = {
    "postmark": ("postmarkapp.com", "X-PM-Metadata-donebox_id: {id}"),
    "mailgun": ("mailgun.org", 'X-Mailgun-Variables: {{"donebox_id": "{id}"}}'),
}


def provider_tag(tag: str, outbound_id: int) -> bytes:
    """The header line (CRLF) that carries ``outbound_id`` to provider ``tag``; b"" for none."""
    if tag not in PROVIDER_TAGS or not outbound_id:
        return b""
    return PROVIDER_TAGS[tag][1].format(id=int(outbound_id)).encode() + b"\r\n"


def tag_for_host(host: str) -> str:
    """The provider whose SMTP host ``host`` is (by domain), or ''."""
    host = host.lower().rstrip(".")
    return next((name for name, (domain, _) in PROVIDER_TAGS.items() if host.endswith("." + domain)), "")


def mail_options(message: Outgoing, data: bytes, client: aiosmtplib.SMTP) -> list[str]:
    """The MAIL FROM parameters ``message`` needs: SMTPUTF8 for a UTF-8 address, BODY=8BITMIME for
    8-bit data when the server said (at EHLO) it takes it."""
    options = []
    if not (message.mail_from + message.rcpt_to).isascii():
        options.append("SMTPUTF8")
    if not data.isascii() and client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    return options


def smtp_data(raw: bytes) -> bytes:
    """``raw`` with every CR, LF or CRLF made CRLF, ending in CRLF: what may go into DATA."""
    lf, crlf = raw.count(b"\n"), raw.count(b"\r\n")
    data = raw if lf == crlf == raw.count(b"\r") else _LINE_ENDS.sub(b"\r\n", raw)  # CRLF already: as is
    return data if data.endswith(b"\r\n") else data + b"\r\n"


@dataclass(frozen=True)
class SMTPConfig:
    """Where and how to connect; parsed from a sender's transport URL."""

    host: str
    port: int
    tls: str = "starttls"  # starttls | implicit | none
    username: str = ""
    password: str = ""
    timeout_s: float = 30.0
    pool: int = 4
    ca_file: str = ""
    verify: bool = True
    tag: str = ""  # a provider of PROVIDER_TAGS: our outbox id goes in its header

    @classmethod
    def from_url(cls, url: str) -> SMTPConfig:
        """Parse ``smtp://...``; ValueError with the reason when it is unusable."""
        u = urlsplit(url)
        if u.scheme != "smtp" or not u.hostname:
            raise ValueError(f"not an smtp:// URL with a host: {url!r}")
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        tls = q.get("tls", "starttls")
        if tls not in DEFAULT_PORTS:
            raise ValueError(f"tls must be starttls, implicit or none, not {tls!r}")
        tag = q.get("tag", tag_for_host(u.hostname))
        if tag not in ("", "none", *PROVIDER_TAGS):
            raise ValueError(f"tag must be {', '.join(PROVIDER_TAGS)} or none, not {tag!r}")
        return cls(
            host=u.hostname,
            port=u.port or DEFAULT_PORTS[tls],
            tls=tls,
            username=unquote(u.username or ""),
            password=unquote(u.password or ""),
            timeout_s=float(q.get("timeout", "30")),
            pool=max(1, int(q.get("pool", "4"))),
            ca_file=q.get("ca", ""),
            verify=q.get("verify", "1") not in ("0", "false", "no"),
            tag="" if tag == "none" else tag,
        )

    def tls_context(self) -> ssl.SSLContext | None:
        if self.tls == "none":
            return None
        ctx = ssl.create_default_context(cafile=self.ca_file or None)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def classify(code: int, text: str, *, where: str) -> TransientSendError | PermanentSendError:
    """The error for an SMTP reply ``code`` with ``text`` at step ``where`` (connect, mail, rcpt, data)."""
    m = _ENHANCED.match(text or "")
    enhanced = ".".join(m.groups()) if m else ""
    detail = f"{code} {text}".strip() + f" (at {where})"
    if 400 <= code < 500:
        block = enhanced.startswith("4.7.")
        return TransientSendError(
            detail, retry_in_s=300 if block else 60, connection=code == 421, block=block
        )
    block = enhanced.startswith("5.7.") or (not enhanced and where in ("connect", "mail") and code == 554)
    return PermanentSendError(detail, smtp_code=code, enhanced=enhanced, block=block)


class _Pool:
    """Open connections of one sender, owned by the event loop thread."""

    def __init__(self, config: SMTPConfig):
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.idle: list[aiosmtplib.SMTP] = []
        self.slots = asyncio.Semaphore(config.pool)

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            timeout=c.timeout_s,
            use_tls=c.tls == "implicit",
            start_tls=c.tls == "starttls",
            tls_context=c.tls_context(),
            username=c.username or None,
            password=c.password or None,
        )
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # its extensions decide MAIL FROM's parameters (8BITMIME)
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except aiosmtplib.SMTPAuthenticationError as e:
            raise PermanentSendError(
                f"{e.code} AUTH refused: {e.message}", smtp_code=e.code, connection=True
            ) from e
        except aiosmtplib.SMTPResponseException as e:
            raise classify(e.code, e.message, where="connect") from e
        except (OSError, aiosmtplib.SMTPException) as e:
            raise TransientSendError(f"cannot connect to {c.host}:{c.port}: {e}", connection=True) from e
        return client

    async def send(self, message: Outgoing) -> SendResult:
        data = smtp_data(provider_tag(self.config.tag, message.outbound_id) + message.raw)
        async with self.slots:
            for attempt in (1, 2):
                reused = bool(self.idle)
                client = self.idle.pop() if reused else await self._connect()
                try:
                    options = mail_options(message, data, client)
                    _, reply = await client.sendmail(
                        message.mail_from, [message.rcpt_to], data, mail_options=options
                    )
                except aiosmtplib.SMTPNotSupported as e:  # the server lacks SMTPUTF8: any retry would too
                    self.idle.append(client)
                    raise PermanentSendError(f"{self.config.host}: {e}", enhanced="5.6.7") from e
                except aiosmtplib.SMTPRecipientsRefused as e:
                    self.idle.append(client)
                    r = e.recipients[0]
                    raise classify(r.code, r.message, where="rcpt") from e
                except aiosmtplib.SMTPResponseException as e:
                    where = {
                        aiosmtplib.SMTPSenderRefused: "mail",
                        aiosmtplib.SMTPRecipientRefused: "rcpt",
                        aiosmtplib.SMTPDataError: "data",
                    }.get(type(e), "data")
                    if e.code == 421 or not client.is_connected:
                        client.close()
                    else:
                        self.idle.append(client)
                    raise classify(e.code, e.message, where=where) from e
                except (OSError, aiosmtplib.SMTPException) as e:
                    client.close()
                    if reused and attempt == 1:
                        continue  # a pooled connection the server had closed: once more on a new one
                    raise TransientSendError(
                        f"connection to {self.config.host} broke: {e}", connection=True
                    ) from e
                self.idle.append(client)
                # aiosmtplib returns only the text: DATA succeeded, so the code was 250
                return SendResult("smtp", provider_id=message.parts.message_id, detail=f"250 {reply}")
        raise AssertionError("unreachable")

    async def close(self) -> None:
        while self.idle:
            client = self.idle.pop()
            try:
                await client.quit()
            except (OSError, aiosmtplib.SMTPException):
                client.close()


class SMTPTransport:
    """Sends through one SMTP server (a relay, a smarthost or a provider's SMTP endpoint)."""

    name = "smtp"

    def __init__(self, url: str):
        self.config = SMTPConfig.from_url(url)
        self._pool: _Pool | None = None

    async def _send(self, message: Outgoing) -> SendResult:
        if self._pool is None or self._pool.loop is not asyncio.get_running_loop():  # new, or forked
            self._pool = _Pool(self.config)  # made on the loop thread, where its semaphore belongs
        return await self._pool.send(message)

    def send(self, message: Outgoing) -> SendResult:
        """Deliver ``message`` to the server; raises TransientSendError or PermanentSendError."""
        # every command has its own timeout; this bounds the whole exchange, pool wait included
        try:
            return aioloop.run(self._send(message), timeout_s=self.config.timeout_s * 6)
        except TimeoutError as e:
            raise TransientSendError(f"SMTP to {self.config.host} timed out", connection=True) from e

    def probe(self, timeout_s: float = 10.0) -> str:
        """Connect, EHLO and AUTH (when the URL has credentials), each command within ``timeout_s``,
        then QUIT, sending nothing: what the server said, in a line (`donebox doctor`). Raises as
        ``send`` does: TransientSendError (cannot connect), PermanentSendError (AUTH refused)."""
        config = replace(self.config, timeout_s=min(self.config.timeout_s, timeout_s))

        async def hello() -> str:
            client = await _Pool(config)._connect()
            try:
                features = ", ".join(sorted(client.esmtp_extensions)[:8])
                said = f"EHLO answered ({features})" if features else "HELO answered"
                return said + (", AUTH accepted" if config.username else ", no AUTH asked")
            finally:
                try:
                    await client.quit()
                except (OSError, aiosmtplib.SMTPException):
                    client.close()

        try:
            return aioloop.run(hello(), timeout_s=config.timeout_s * 4)
        except TimeoutError as e:
            raise TransientSendError(f"SMTP to {config.host} timed out", connection=True) from e

    def close(self) -> None:
        """Say QUIT on every idle connection."""
        if self._pool is not None:
            aioloop.run(self._pool.close(), timeout_s=self.config.timeout_s)
