"""The maildir transport: every message written to a local maildir (the development inbox)."""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path

from app.relay.transports.base import Outgoing, SendResult


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
