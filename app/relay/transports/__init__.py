"""Transports: one method, ``send(message) -> SendResult`` (the protocol is in base.py).

``SMTPTransport`` (pooled smtplib, pipelined), ``SendGridTransport`` (the v3 API),
``MaildirTransport`` (the development inbox) and ``MemoryTransport`` (tests), one module
each. ``transport_for`` makes one per sender URL and process; ``close_all`` closes them
at shutdown.
"""

from __future__ import annotations

import threading
from pathlib import Path

from app.relay.transports.base import Outgoing, SendResult, Transport
from app.relay.transports.maildir import MaildirTransport
from app.relay.transports.memory import MemoryTransport
from app.relay.transports.sendgrid import SendGridTransport
from app.relay.transports.smtp import SMTPTransport

__all__ = [
    "MaildirTransport",
    "MemoryTransport",
    "Outgoing",
    "SendResult",
    "Transport",
    "close_all",
    "get_transport",
    "transport_for",
]

_MEMORY = MemoryTransport()
_MAILDIRS: dict[Path, MaildirTransport] = {}
_BY_URL: dict[str, Transport] = {}
_LOCK = threading.Lock()


def transport_for(url: str, settings) -> Transport:
    """The process's transport for a sender URL (one per URL: SMTP pools are shared); ValueError if unusable.

    ``smtp://...``, ``sendgrid://<key>@host`` (``sendgrid+http://`` for a local API), ``maildir:`` (the
    dev maildir) or ``maildir:/path``, ``memory:``.
    """
    with _LOCK:
        hit = _BY_URL.get(url)
    if hit is not None:
        return hit
    scheme = url.split(":", 1)[0].lower()
    if scheme == "smtp":
        made = SMTPTransport(url, pool=settings.worker_threads)  # a connection for each sending thread
    elif scheme in ("sendgrid", "sendgrid+http"):
        made = SendGridTransport(url)
    elif scheme == "maildir":
        path = url.split(":", 1)[1]
        made = _maildir(Path(path) if path else Path(settings.mail_dir))
    elif scheme == "memory":
        made = _MEMORY
    else:
        raise ValueError(f"unknown transport {scheme!r}: smtp, sendgrid, maildir or memory")
    with _LOCK:
        return _BY_URL.setdefault(url, made)


def close_all() -> None:
    """Close every transport made by transport_for (QUIT pooled SMTP connections) and forget them."""
    with _LOCK:
        made = list(_BY_URL.values())
        _BY_URL.clear()
    for t in made:
        close = getattr(t, "close", None)
        if close:
            close()


def _maildir(path: Path) -> MaildirTransport:
    with _LOCK:
        if path not in _MAILDIRS:
            _MAILDIRS[path] = MaildirTransport(path)
        return _MAILDIRS[path]


def get_transport(settings) -> Transport | None:
    """The process's transport for MAIL_TRANSPORT (what carries mail while no sender is configured);
    None for ``none``, production's default: there mail leaves only through a configured sender."""
    if settings.mail_transport == "none":
        return None
    if settings.mail_transport == "memory":
        return _MEMORY
    return _maildir(Path(settings.mail_dir))
