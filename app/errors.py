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
    """Raised when a transport could not hand a message over."""


class TransientSendError(SendError):
    """Raised for a failure worth retrying, after ``retry_in_s`` seconds at the earliest."""

    def __init__(self, message: str, retry_in_s: float = 60.0):
        super().__init__(message)
        self.retry_in_s = retry_in_s


class PermanentSendError(SendError):
    """Raised for a failure that no retry will fix; ``smtp_code`` when the server gave one."""

    def __init__(self, message: str, smtp_code: int | None = None):
        super().__init__(message)
        self.smtp_code = smtp_code


class RenderError(DoneboxError):
    """Raised when a message cannot be rendered into valid email."""
