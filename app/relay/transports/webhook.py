"""The webhook transport: a chat post is one JSON POST to the destination's incoming webhook.

Answers map as the pipeline needs them: 2xx is sent; 429 and 5xx are transient (Retry-After
honoured, in seconds or as an HTTP date; Discord's JSON ``retry_after`` too); a timeout or a
connection failure is transient; any other answer (a 4xx, a redirect: never followed, a webhook
URL that moved is the team's to fix) is permanent, with the start of the response as the error.
The standard library's urllib carries it: one POST needs no client library.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from app.errors import PermanentSendError, TransientSendError
from app.relay.transports.base import SendResult

TIMEOUT_S = 10.0
EXCERPT = 300  # characters of a refusal kept as the message's error
MAX_RETRY_AFTER_S = 6 * 3600.0
DEFAULT_RETRY_S = 60.0


@dataclass(frozen=True)
class Post:
    """One chat post ready to hand over: where to, and the JSON bytes (``raw``: what is kept)."""

    url: str
    raw: bytes
    outbound_id: int = 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect comes back as an HTTPError with its 3xx code


def retry_after_s(value: str | None, body: bytes = b"", *, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date) or a JSON body's
    ``retry_after`` (Discord); DEFAULT_RETRY_S when neither says, capped at MAX_RETRY_AFTER_S."""
    wait = None
    if value:
        value = value.strip()
        try:
            wait = float(value)
        except ValueError:
            try:
                wait = (parsedate_to_datetime(value) - (now or datetime.now(UTC))).total_seconds()
            except (TypeError, ValueError):
                wait = None
    if wait is None and body:
        try:
            found = json.loads(body.decode("utf-8", "replace")).get("retry_after")
            wait = float(found) if isinstance(found, int | float) else None
        except (ValueError, AttributeError):
            wait = None
    if wait is None:
        return DEFAULT_RETRY_S
    return min(MAX_RETRY_AFTER_S, max(1.0, wait))


def _excerpt(body: bytes) -> str:
    text = body[: EXCERPT * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:EXCERPT]


class WebhookTransport:
    """POSTs chat posts as JSON; one per process (it holds no connection between posts)."""

    name = "webhook"

    def __init__(self, timeout_s: float = TIMEOUT_S):
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirect())

    def send(self, post: Post) -> SendResult:
        """POST ``post.raw``; SendResult on 2xx, else TransientSendError or PermanentSendError."""
        req = urllib.request.Request(
            post.url,
            data=post.raw,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "donebox"},
        )
        try:
            with self._opener.open(req, timeout=self.timeout_s) as r:
                status, body = r.status, r.read(64 * 1024)
        except urllib.error.HTTPError as e:
            body = e.read(64 * 1024) if e.fp else b""
            detail = f"HTTP {e.code}: {_excerpt(body)}".strip()
            if e.code == 429 or e.code >= 500:
                raise TransientSendError(
                    detail, retry_in_s=retry_after_s(e.headers.get("Retry-After"), body)
                ) from e
            raise PermanentSendError(detail) from e
        except (urllib.error.URLError, OSError) as e:  # refused, unreachable, timed out, TLS
            reason = getattr(e, "reason", e)
            raise TransientSendError(f"cannot reach the webhook: {reason}", connection=True) from e
        if not 200 <= status < 300:
            raise PermanentSendError(f"HTTP {status}: {_excerpt(body)}")
        return SendResult(self.name, detail=f"HTTP {status}", response=_excerpt(body))
