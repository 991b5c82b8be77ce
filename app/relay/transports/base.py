"""The transport contract: one method, ``send(message) -> SendResult``.

A transport raises ``TransientSendError`` (retried with backoff) or
``PermanentSendError`` (the message fails) from app.errors; anything it returns
means the message was accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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


class Transport(Protocol):
    """What the pipeline hands messages to."""

    name: str

    def send(self, message: Outgoing) -> SendResult:
        """Hand one message over; raises TransientSendError or PermanentSendError when it was not accepted."""
        ...
