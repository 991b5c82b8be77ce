"""Delivery feedback, normalized: one ``DeliveryEvent`` vocabulary for every source.

A provider's ``parse_events`` (and parsers/dsn.py for bounce mail) turns a payload,
verified before, into DeliveryEvents, each carrying the untouched provider record next to
the normalized fields. What an event does to a message (state, suppression) is decided in
one place, ``app.relay.feedback.EFFECTS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from parsers.storable import storable

# our vocabulary ("theirs -> ours" happens in each adapter):
#   processed    the provider accepted the message for delivery
#   delivered    the recipient's server accepted it
#   deferred     a temporary failure; the provider (or the remote MTA) keeps trying
#   soft_bounce  a bounce that is not final (SES Transient/Undetermined, SendGrid "blocked")
#   bounce       a permanent failure: the address does not take mail
#   dropped      the provider refused to send it (``cause`` says why)
#   complaint    the recipient reported it as spam
#   unsubscribe  the recipient unsubscribed through the provider
#   open, click  engagement the provider tracked
KINDS = frozenset(
    "processed delivered deferred soft_bounce bounce dropped complaint unsubscribe open click".split()
)
# why a provider dropped a message (``DeliveryEvent.cause`` of a ``dropped`` event)
CAUSES = frozenset({"bounce", "invalid", "complaint", "unsubscribe", "other"})


class EventError(ValueError):
    """Raised when a body is not in the provider's documented event format; the text says why."""


@dataclass(frozen=True)
class DeliveryEvent:
    """One thing a provider (or a bounce message) reports about one message and recipient."""

    source: str  # sendgrid | ses | dsn
    kind: str  # one of KINDS
    event_id: str  # unique across sources ("sendgrid:<sg_event_id>"); the dedupe key
    recipient: str = ""  # lower-case address the event is about
    outbound_id: int | None = None  # our OutboundMessage id, when the provider echoes it back
    provider_id: str = ""  # the provider's id of the message (SendGrid's X-Message-Id)
    message_ids: tuple[str, ...] = ()  # Message-IDs that may be ours (``<...>``)
    at: datetime | None = None  # when it happened, aware UTC, as the provider says
    cause: str = ""  # dropped: one of CAUSES
    detail: dict = field(default_factory=dict)  # normalized extras: status, reason, url, user_agent ...
    raw: dict = field(default_factory=dict, repr=False)  # the provider's record, untouched


def bounded(value, limit: int = 1000) -> str:
    """A payload value as bounded text ('' for None and containers)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)[:limit]


def clean(value: str) -> str:
    """Text a database column and an SQL comparison take: no NUL (dropped), no lone surrogate."""
    return storable(value, nul="")


def epoch_time(value) -> datetime | None:
    """A Unix timestamp in a payload as aware UTC; None for anything else (NaN, infinities, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def our_id(carrier, key: str = "donebox_id") -> int | None:
    """Our outbox id as a provider hands it back under ``key`` of a payload object; None if none."""
    text = bounded(carrier.get(key), 20) if isinstance(carrier, dict) else ""
    return int(text) if text.isdigit() and 0 < int(text) < 2**31 else None
