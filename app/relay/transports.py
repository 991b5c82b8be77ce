"""Transports: one method, ``send(message) -> SendResult``.

``MaildirTransport`` writes every message to a local maildir (the development
inbox); ``MemoryTransport`` keeps them in a list (tests). Each raises
``TransientSendError`` or ``PermanentSendError`` from app.errors on failure.
"""

from __future__ import annotations

import mailbox
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

from app.relay.render import Parts


@dataclass(frozen=True)
class Outgoing:
    """One message ready to hand over: envelope, the final (signed, CRLF) bytes and the parsed parts."""

    mail_from: str
    rcpt_to: str
    raw: bytes
    parts: Parts  # what the bytes were built from, for API transports that take parts
    outbound_id: int = 0  # our OutboundMessage.id (providers echo it back in events)

    @property
    def rcpt_domain(self) -> str:
        return self.rcpt_to.rpartition("@")[2].lower()


@dataclass(frozen=True)
class SendResult:
    """What a transport reports for one accepted message."""

    transport: str
    provider_id: str = ""
    detail: str = ""
    response: str = ""  # the provider's raw answer, kept RETENTION_DAYS


class MaildirTransport:
    """Delivers into a maildir folder; what /dev/inbox shows."""

    name = "maildir"

    def __init__(self, path: Path):
        self.path = Path(path)
        for sub in ("tmp", "new", "cur"):  # made here: Maildir(create=True) races between threads
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(str(self.path), create=False)
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> SendResult:
        with self._lock:
            key = self._box.add(message.raw)
        return SendResult(self.name, provider_id=key)


class MemoryTransport:
    """Keeps every message, parsed back from the bytes it would send, in ``self.sent``; for tests."""

    name = "memory"

    def __init__(self):
        self.sent: list[EmailMessage] = []
        self.outgoing: list[Outgoing] = []
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> SendResult:
        parsed = BytesParser(policy=default).parsebytes(message.raw)
        with self._lock:
            self.sent.append(parsed)
            self.outgoing.append(message)
            return SendResult(self.name, provider_id=str(len(self.sent)))


_MEMORY = MemoryTransport()
_MAILDIRS: dict[Path, MaildirTransport] = {}
_MAILDIRS_LOCK = threading.Lock()


_BY_URL: dict[str, object] = {}


def transport_for(url: str, settings):
    """The process's transport for a sender URL (one per URL: SMTP pools are shared); ValueError if unusable.

    ``smtp://...``, ``sendgrid://<key>@host`` (``sendgrid+http://`` for a local API), ``maildir:`` (the
    dev maildir) or ``maildir:/path``, ``memory:``.
    """
    with _MAILDIRS_LOCK:
        hit = _BY_URL.get(url)
    if hit is not None:
        return hit
    scheme = url.split(":", 1)[0].lower()
    if scheme == "smtp":
        from app.relay.smtp import SMTPTransport

        made = SMTPTransport(url)
    elif scheme in ("sendgrid", "sendgrid+http"):
        from app.relay.sendgrid_api import SendGridTransport

        made = SendGridTransport(url)
    elif scheme == "maildir":
        path = url.split(":", 1)[1]
        made = _maildir(Path(path) if path else Path(settings.mail_dir))
    elif scheme == "memory":
        made = _MEMORY
    else:
        raise ValueError(f"unknown transport {scheme!r}: smtp, sendgrid, maildir or memory")
    with _MAILDIRS_LOCK:
        return _BY_URL.setdefault(url, made)


def close_all() -> None:
    """Close every transport made by transport_for (QUIT pooled SMTP connections) and forget them."""
    with _MAILDIRS_LOCK:
        made = list(_BY_URL.values())
        _BY_URL.clear()
    for t in made:
        close = getattr(t, "close", None)
        if close:
            close()


def _maildir(path: Path) -> MaildirTransport:
    with _MAILDIRS_LOCK:
        if path not in _MAILDIRS:
            _MAILDIRS[path] = MaildirTransport(path)
        return _MAILDIRS[path]


def get_transport(settings) -> MaildirTransport | MemoryTransport:
    """The process's transport for MAIL_TRANSPORT."""
    if settings.mail_transport == "memory":
        return _MEMORY
    return _maildir(Path(settings.mail_dir))
