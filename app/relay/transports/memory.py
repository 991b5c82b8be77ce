"""The memory transport: keeps every message in a list, parsed back from its bytes; for tests."""

from __future__ import annotations

import threading
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

from app.relay.transports.base import Outgoing, SendResult


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
