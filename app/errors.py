"""donebox's exceptions, in one tree:

DoneboxError
 +-- SendError                 a transport could not hand a message over
 |    +-- TransientSendError   try again later (retry_in_s): 4xx, timeouts, connection refused
 |    +-- PermanentSendError   never retry (smtp_code): 5xx, rejected recipient, bad content
 +-- RenderError               a template or its context cannot make a valid message
"""

from __future__ import annotations


class DoneboxError(Exception):
    """Base of every error donebox raises on purpose."""


class SendError(DoneboxError):
    """Raised when a transport could not hand a message over.

    ``connection``: the sender itself failed (unreachable, timed out, our credentials refused);
    ``block``: the receiving side refused this sender for a recipient domain (x.7.x). Routing's
    circuit breaker counts both; neither says anything about the message.
    """

    connection: bool = False
    block: bool = False


class TransientSendError(SendError):
    """Raised for a failure worth retrying, after ``retry_in_s`` seconds at the earliest."""

    def __init__(
        self, message: str, retry_in_s: float = 60.0, *, connection: bool = False, block: bool = False
    ):
        super().__init__(message)
        self.retry_in_s = retry_in_s
        self.connection = connection  # the sender could not be reached at all (circuit breaker)
        self.block = block  # the receiving side refused us, not the message (4.7.x)


class PermanentSendError(SendError):
    """Raised for a failure that no retry will fix; ``smtp_code`` when the server gave one."""

    def __init__(
        self,
        message: str,
        smtp_code: int | None = None,
        *,
        enhanced: str = "",
        block: bool = False,
        connection: bool = False,
    ):
        super().__init__(message)
        self.connection = connection  # the sender itself is unusable (e.g. our credentials refused)
        self.smtp_code = smtp_code
        self.enhanced = enhanced  # RFC 3463 status code such as "5.1.1", when the server gave one
        self.block = block  # a policy block of the sender (5.7.x), not a bad recipient

    @property
    def bounce(self) -> bool:
        """True when the recipient address itself is bad (5.1.x, or 550-553 without an enhanced code)."""
        if self.enhanced:
            return self.enhanced.startswith(("5.1.", "5.2.1"))
        return bool(self.smtp_code and 550 <= self.smtp_code <= 553 and not self.block)


class RenderError(DoneboxError):
    """Raised when a message cannot be rendered into valid email."""
