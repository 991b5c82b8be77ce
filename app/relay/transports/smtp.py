"""The SMTP transport: a pool of blocking ``smtplib`` connections per sender and process, shared
by the worker threads, with the envelope pipelined (RFC 2920) where the server offers it.

One ``SMTPTransport`` per sender URL and process; its pool keeps up to ``pool``
authenticated connections open and reuses them across messages (a connection
idle for over IDLE_S is closed, not used; one that broke is replaced, and the
message retried once on a new one, the other idle ones closed, when the break
came before the message's content was sent). Replies map by (enhanced) status code:
4xx -> TransientSendError, 5xx -> PermanentSendError; 5.7.x and 4.7.x are
blocks of the sender, which routing's circuit breaker counts.

A server that says PIPELINING at EHLO gets MAIL FROM, RCPT TO and DATA in one write, and their
three replies are read in order; a server that does not gets them one at a time, each after
the reply to the one before. Either way the content follows only a 354 after accepted MAIL
and RCPT: when DATA was accepted although MAIL or RCPT was refused, the client sends the lone
"." RFC 2920 asks for (an empty message the server then refuses), then RSET, and the
connection stays in the pool.

What goes into DATA is the message with every line ending made CRLF (no bare CR
or LF can reach the server, so no SMTP smuggling) and every line
starting with "." doubled. An address with a UTF-8 local part goes with ``SMTPUTF8`` (a server
without it refuses the message for good), 8-bit data with ``BODY=8BITMIME`` where the server has it.

A relay run by a provider whose events donebox reads (Postmark, Mailgun) gets our outbox id in
the header that provider turns into event metadata and strips (``PROVIDER_TAGS``), so its
events find the message; the provider is known by the host, or named with ``tag=``.

URL: ``smtp://user:password@host:port?tls=starttls|implicit|none&timeout=30&pool=4&ca=/path.pem&verify=1&tag=``

Without ``pool`` a process keeps as many connections as it runs worker threads (WORKER_THREADS,
which ``donebox worker`` sets to its ``--threads``): a thread sends over one connection at a
time, and with a remote server's replies taking milliseconds, a thread that waits for a free
connection is a send the process could have had under way.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

from app.errors import PermanentSendError, TransientSendError
from app.relay.transports.base import Outgoing, SendResult

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_LONE_CR = re.compile(rb"\r(?!\n)")
_DOT_LINE = re.compile(rb"\n\.")
DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}
POOL = 4  # connections a process keeps when neither the URL nor the caller (transport_for) says
IDLE_S = 60.0  # a pooled connection unused for longer is closed, not used: servers drop idle sessions
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


def mail_options(message: Outgoing, data: bytes, client: smtplib.SMTP) -> list[str]:
    """The MAIL FROM parameters ``message`` needs: SMTPUTF8 for a UTF-8 address, BODY=8BITMIME for
    8-bit data when the server said (at EHLO) it takes it."""
    options = []
    if not (message.mail_from + message.rcpt_to).isascii():
        options.append("SMTPUTF8")
    if not data.isascii() and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    return options


def smtp_data(raw: bytes) -> bytes:
    """``raw`` with every CR, LF or CRLF made CRLF, ending in CRLF: what may go into DATA.

    As many CRs as LFs and no CR without an LF after it means CRLF lines only (a lone LF would
    leave a CR over, and that CR would be lone): the bytes go as they are. Two one-byte counts and
    a search for a lone CR, where ``bytes.count`` of the two-byte CRLF is the slower count."""
    if raw.count(b"\n") == raw.count(b"\r") and not _LONE_CR.search(raw):
        data = raw
    else:
        data = _LINE_ENDS.sub(b"\r\n", raw)
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
    pool: int = POOL
    ca_file: str = ""
    verify: bool = True
    tag: str = ""  # a provider of PROVIDER_TAGS: our outbox id goes in its header

    @classmethod
    def from_url(cls, url: str, pool: int = POOL) -> SMTPConfig:
        """Parse ``smtp://...``, with ``pool`` connections when the URL names none; ValueError with
        the reason when it is unusable."""
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
            pool=max(1, int(q.get("pool", pool))),
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


def smtp_content(data: bytes) -> bytes:
    """``data`` (CRLF lines, from ``smtp_data``) as DATA sends it: every line that starts with "."
    has it doubled, and the lone "." that ends the message follows."""
    if data.startswith(b"."):
        data = b"." + data
    if _DOT_LINE.search(data):  # most messages have no such line: then nothing is copied
        data = data.replace(b"\n.", b"\n..")
    return data + b".\r\n"


_hostname: str | None = None


def local_hostname() -> str:
    """The name this host gives at EHLO (its fully qualified name), looked up once per process."""
    global _hostname
    if _hostname is None:
        _hostname = socket.getfqdn()
    return _hostname


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "surrogateescape") if isinstance(reply, bytes) else reply


class _Refused(Exception):
    """The transaction refused (by a reply, or before a command went): its error, and whether the
    connection can stay in the pool."""

    def __init__(self, error: TransientSendError | PermanentSendError, usable: bool):
        self.error = error
        self.usable = usable


def _path(address: str) -> bytes:
    """``<address>`` for MAIL FROM or RCPT TO; no line break can get into a command."""
    if "\r" in address or "\n" in address:
        error = PermanentSendError(f"an address with a line break: {address!r}", enhanced="5.1.3")
        raise _Refused(error, usable=True)
    return b"<" + address.encode("utf-8") + b">"


class _Connection:
    """One open, greeted (and, when asked, authenticated) connection to the server."""

    def __init__(self, config: SMTPConfig):
        c = self.config = config
        try:
            if c.tls == "implicit":
                client = smtplib.SMTP_SSL(
                    c.host, c.port, local_hostname(), timeout=c.timeout_s, context=c.tls_context()
                )
            else:
                client = smtplib.SMTP(c.host, c.port, local_hostname(), timeout=c.timeout_s)
        except smtplib.SMTPConnectError as e:  # the greeting was not 220
            raise classify(e.smtp_code, _text(e.smtp_error), where="connect") from e
        except OSError as e:
            raise TransientSendError(f"cannot connect to {c.host}:{c.port}: {e}", connection=True) from e
        self.client = client
        try:
            client.ehlo_or_helo_if_needed()  # its extensions decide MAIL FROM's parameters (8BITMIME)
            if c.tls == "starttls":
                client.starttls(context=c.tls_context())
                client.ehlo()
            if c.username:
                client.login(c.username, c.password)
        except smtplib.SMTPAuthenticationError as e:
            self.close()
            raise PermanentSendError(
                f"{e.smtp_code} AUTH refused: {_text(e.smtp_error)}", smtp_code=e.smtp_code, connection=True
            ) from e
        except smtplib.SMTPResponseException as e:
            self.close()
            raise classify(e.smtp_code, _text(e.smtp_error), where="connect") from e
        except OSError as e:  # smtplib.SMTPException is an OSError
            self.close()
            raise TransientSendError(f"cannot connect to {c.host}:{c.port}: {e}", connection=True) from e
        self.pipelining = client.has_extn("pipelining")

    def _reply(self) -> tuple[int, str]:
        code, text = self.client.getreply()
        return code, _text(text)

    def transaction(self, message: Outgoing, data: bytes) -> str:
        """MAIL FROM, RCPT TO and DATA (pipelined when the server offers it), then the content;
        the final reply. Raises _Refused for a refusal, and OSError (smtplib's errors are) when
        the connection broke; ``self.content_sent`` says whether that was after the content went."""
        self.content_sent = False
        client = self.client
        options = mail_options(message, data, client)
        if "SMTPUTF8" in options and not client.has_extn("smtputf8"):
            # the server cannot take the address at all: any retry, here or elsewhere, would fail too
            error = PermanentSendError(
                f"{self.config.host}: the address needs SMTPUTF8, which the server does not offer",
                enhanced="5.6.7",
            )
            raise _Refused(error, usable=True)
        mail = b"MAIL FROM:" + _path(message.mail_from) + b"".join(b" " + o.encode() for o in options)
        commands = (mail + b"\r\n", b"RCPT TO:" + _path(message.rcpt_to) + b"\r\n", b"DATA\r\n")
        expected = ((250,), (250, 251), (354,))
        replies: list[tuple[int, str]] = []
        if self.pipelining:
            client.send(b"".join(commands))
            replies = [self._reply() for _ in commands]
        else:
            for command, ok in zip(commands, expected, strict=True):
                client.send(command)
                replies.append(self._reply())
                if replies[-1][0] not in ok:
                    break
        for where, (code, text), ok in zip(("mail", "rcpt", "data"), replies, expected, strict=False):
            if code not in ok:
                self._abort(data_accepted=replies[-1][0] == 354)
                raise _Refused(classify(code, text, where=where), usable=code != 421)
        self.content_sent = True
        client.send(smtp_content(data))
        code, text = self._reply()
        if code != 250:
            raise _Refused(classify(code, text, where="data"), usable=code != 421)
        return f"{code} {text}"

    def _abort(self, *, data_accepted: bool) -> None:
        """After a refused MAIL or RCPT: the empty message RFC 2920 asks for when DATA was accepted
        all the same, then RSET, so the next transaction starts clean. A break shows at the next use."""
        try:
            if data_accepted:
                self.client.send(b".\r\n")
                self._reply()
            self.client.rset()
        except OSError:
            self.close()

    @property
    def open(self) -> bool:
        return self.client.sock is not None  # smtplib drops its socket when it closes

    def quit(self) -> None:
        try:
            self.client.quit()
        except OSError:
            self.close()

    def close(self) -> None:
        try:
            self.client.close()
        except OSError:
            pass


class _Pool:
    """Open connections of one sender in one process, shared by its threads: at most
    ``config.pool`` in use at once.

    A server closes a session that stays idle (RFC 5321 4.5.3.2.7 asks it to wait at least five
    minutes; many wait less), and a pooled connection does not know it until its next use. So a
    connection idle for over IDLE_S is closed rather than used, and when a reused one turns out
    broken before the message's content went, every idle connection goes with it (the server that
    dropped one, or restarted, has most likely dropped them too) and the message is sent once more
    on a new connection. Taking the next pooled one instead deferred the first messages after a
    quiet spell: each attempt met two dead connections."""

    def __init__(self, config: SMTPConfig):
        self.config = config
        self.pid = os.getpid()
        # (when it was given back, the connection), oldest first: the next send takes the newest
        self.idle: deque[tuple[float, _Connection]] = deque()
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(config.pool)

    def _take(self) -> _Connection | None:
        """The connection given back last, or None; those idle for over IDLE_S are closed."""
        stale, given_back_by = [], time.monotonic() - IDLE_S
        with self.lock:
            while self.idle and self.idle[0][0] < given_back_by:
                stale.append(self.idle.popleft()[1])
            connection = self.idle.pop()[1] if self.idle else None
        for old in stale:
            old.close()
        return connection

    def _keep(self, connection: _Connection) -> None:
        with self.lock:
            self.idle.append((time.monotonic(), connection))

    def _drop_idle(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, deque()
        for _, connection in idle:
            connection.close()

    def send(self, message: Outgoing) -> SendResult:
        c = self.config
        data = smtp_data(provider_tag(c.tag, message.outbound_id) + message.raw)
        if not self.slots.acquire(timeout=c.timeout_s * 6):  # every connection busy, for that long
            raise TransientSendError(f"SMTP to {c.host} timed out waiting for a connection", connection=True)
        try:
            for attempt in (1, 2):
                connection = self._take() if attempt == 1 else None
                reused = connection is not None
                connection = connection or _Connection(c)
                try:
                    reply = connection.transaction(message, data)
                except _Refused as e:
                    if e.usable and connection.open:  # not if the RSET after the refusal broke it
                        self._keep(connection)
                    else:
                        connection.close()
                    raise e.error from None
                except OSError as e:  # smtplib's errors included
                    connection.close()
                    if reused and not connection.content_sent:
                        self._drop_idle()  # most likely dropped with it
                        continue  # a pooled connection the server had closed: once more on a new one
                    raise TransientSendError(f"connection to {c.host} broke: {e}", connection=True) from e
                self._keep(connection)
                return SendResult("smtp", provider_id=message.parts.message_id, detail=reply)
        finally:
            self.slots.release()
        raise AssertionError("unreachable")

    def close(self) -> None:
        while (connection := self._take()) is not None:
            connection.quit()

    def __del__(self) -> None:  # a transport dropped unclosed (routing replaced it): no open sockets left
        for _, connection in self.idle:
            connection.close()


class SMTPTransport:
    """Sends through one SMTP server (a relay, a smarthost or a provider's SMTP endpoint)."""

    name = "smtp"

    def __init__(self, url: str, pool: int = POOL):
        self.config = SMTPConfig.from_url(url, pool)
        self._pool: _Pool | None = None
        self._lock = threading.Lock()

    def _pool_here(self) -> _Pool:
        """This process's pool: a forked child (Dramatiq's worker processes) never shares its
        parent's connections."""
        with self._lock:
            if self._pool is None or self._pool.pid != os.getpid():
                self._pool = _Pool(self.config)
            return self._pool

    def send(self, message: Outgoing) -> SendResult:
        """Deliver ``message`` to the server; raises TransientSendError or PermanentSendError.
        Every read and write has the URL's ``timeout``; so has the wait for a free connection, six
        times over."""
        return self._pool_here().send(message)

    def probe(self, timeout_s: float = 10.0) -> str:
        """Connect, EHLO and AUTH (when the URL has credentials), each command within ``timeout_s``,
        then QUIT, sending nothing: what the server said, in a line (`donebox doctor`). Raises as
        ``send`` does: TransientSendError (cannot connect), PermanentSendError (AUTH refused)."""
        config = replace(self.config, timeout_s=min(self.config.timeout_s, timeout_s))
        connection = _Connection(config)
        try:
            features = ", ".join(sorted(connection.client.esmtp_features)[:8])
            said = f"EHLO answered ({features})" if features else "HELO answered"
            return said + (", AUTH accepted" if config.username else ", no AUTH asked")
        finally:
            connection.quit()

    def close(self) -> None:
        """Say QUIT on every idle connection."""
        if self._pool is not None:
            self._pool.close()
