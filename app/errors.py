"""donebox's exceptions, in one tree.

The relay's and the core's are defined here; the others stay next to the only code that raises
them and is meant to catch them, and are drawn here with their module so the tree is whole.
RequestError and TransitionError are ValueErrors too (what they were before they moved here).

Exception
 +-- DoneboxError                  app.errors: every error donebox raises on purpose
 |    +-- SendError                a transport could not hand a message over
 |    |    +-- TransientSendError  try again later (retry_in_s): 4xx, timeouts, connection refused
 |    |    +-- PermanentSendError  never retry (smtp_code): 5xx, rejected recipient, bad content
 |    +-- RenderError              a template or its context cannot make a valid message
 |    |    +-- UnregisteredKind    no context builder for a message's kind (the process lacks a package)
 |    +-- RequestError             a send or cancel request the relay refuses (``status``: HTTP's)
 |    |    +-- QuotaExceeded        the team's hourly or daily quota is full (429, retry_after_s)
 |    +-- TransitionError          a state change app.relay.outbox's TRANSITIONS does not allow
 |    +-- FetchError               a stored message's content could not be fetched (app.inbound.s3)
 |         +-- TransientFetchError try again later: connection refused, timeouts, 5xx, throttling
 |         +-- PermanentFetchError no retry will fix it: no such bucket or key, access denied, not configured
 +-- ValueError
 |    +-- ScheduleError            app.checkins.times: a schedule field with the reason
 |    +-- EntryError               app.checkins.entries: an entry that cannot be stored
 |    +-- TeamError                app.checkins.teams: a team change refused, with the reason
 |    +-- SpanError                app.checkins.participation: a span of days refused (field, reason)
 |    +-- QuestionsError           app.checkins.questions: a team's questions refused, with the reason
 |    +-- NoticeError              app.checkins.notices: a blocker that cannot be resolved (by whom, which)
 |    +-- ChatURLError             app.relay.chat: a chat webhook URL refused, with the reason
 |    +-- PayloadError             parsers.providers.base: a webhook payload that cannot be read
 |    +-- EventError               parsers.providers.events: an event payload that cannot be read
 |    +-- BadInput                 app.web.common: a request value refused (status 400/404/422, reason)
 +-- LookupError
 |    +-- NoWebhook                parsers.providers.base: a provider without that webhook (404)
 +-- RuntimeError
 |    +-- SettingsError            app.settings: the environment cannot make working settings
 +-- SubmissionRefused             app.relay.submission: a submitted message not stored (the SMTP reply)
 +-- Replayed                      app.inbound.accept: a signed webhook token was used before
 +-- CertUnavailable               app.inbound.sns: SNS's signing certificate cannot be fetched
 +-- Raced                         app.inbound.process: another worker moved the rows first
 +-- CutError                      app.inbound.corrections: a cut not shown or not moved (status, reason)
 +-- LookupFailed                  app.relay.dns_check: a DNS lookup got no answer (timeout, SERVFAIL)
 +-- _Refused                      app.relay.transports.smtp: a transaction refused (carries its SendError)
 +-- TooLarge                      app.web.common: a request body past its limit
 +-- AuthError                     parsers.providers.base: a webhook not proven to be the provider's (401)
 |    +-- Forbidden                parsers.providers.base: proven, but not allowed (an unpinned topic, 403)
 +-- Refused                       app.web.hooks.webhooks: a webhook refused (status, reason)
 +-- ApiError                      app.web.api.base: a JSON API request refused (status, reason)
 +-- FormError                     app.web.pages.framework: a page's form refused (field -> reason, 422)
 +-- Unconfirmed                   app.web.pages.framework: a destructive POST without confirm=yes
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


class UnregisteredKind(RenderError):
    """Raised when no context builder is registered for a message's kind (app.relay.render):
    the process did not import the package that registers it; the message waits, unharmed."""


class RequestError(DoneboxError, ValueError):
    """Raised for a send, cancel or redrive request the relay refuses; ``status`` is the HTTP status, the
    text the reason."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


class QuotaExceeded(RequestError):
    """Raised when a send would take a team past its hourly or daily quota (app.relay.quotas);
    ``retry_after_s`` is how long until enough of the window frees, None if it never will."""

    def __init__(self, reason: str, retry_after_s: int | None):
        super().__init__(reason, 429)
        self.retry_after_s = retry_after_s


class TransitionError(DoneboxError, ValueError):
    """Raised when code asks for a state change that app.relay.outbox's TRANSITIONS does not allow."""


class FetchError(DoneboxError):
    """Raised when the content of a stored message, kept elsewhere by its provider (an SES S3
    action's object), cannot be fetched; the text names where it is and why."""


class TransientFetchError(FetchError):
    """Raised for a fetch worth trying again later: the endpoint unreachable, a timeout, a 5xx."""


class PermanentFetchError(FetchError):
    """Raised for a fetch no retry will fix: no such bucket or key, access denied, S3 not configured."""
