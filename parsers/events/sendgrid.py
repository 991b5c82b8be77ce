"""SendGrid's Event Webhook: a JSON array of events -> DeliveryEvents.

Our outbox id comes back as the top-level custom arg ``donebox_id``; ``sg_message_id``
is the X-Message-Id we stored plus a ``.filter...``/``.recvd...`` suffix.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from parsers.events import DeliveryEvent, EventError, text

# SendGrid event -> ours; a bounce's ``type`` refines it (below). Unknown events are skipped.
EVENTS = {
    "processed": "processed",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounce",
    "dropped": "dropped",
    "spamreport": "complaint",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "open": "open",
    "click": "click",
}
# a bounce event's ``type``: "bounce" is a hard bounce; "blocked" is SendGrid's soft bounce
BOUNCE_TYPES = {"bounce": "bounce", "blocked": "soft_bounce", "expired": "soft_bounce"}
# a dropped event's ``reason`` (lower-cased) -> cause; SendGrid drops mail to addresses it suppresses
DROP_REASONS = {
    "bounced address": "bounce",
    "invalid": "invalid",
    "invalid address": "invalid",
    "spam reporting address": "complaint",
    "unsubscribed address": "unsubscribe",
}
MAX_EVENTS = 50_000  # a batch is at most ~768 KB (a few thousand events); more is not SendGrid


def provider_id(sg_message_id: str) -> str:
    """The X-Message-Id part of an ``sg_message_id`` (``<id>.filter...`` or ``<id>.recvd-...``)."""
    return sg_message_id.split(".", 1)[0]


def _time(value) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _outbound_id(value) -> int | None:
    value = text(value, 20)
    return int(value) if value.isdigit() and 0 < int(value) < 2**31 else None


def _event_id(item: dict) -> str:
    given = text(item.get("sg_event_id"), 200)
    if given:
        return "sendgrid:" + given
    # no id (old accounts, dropped events): the event's own content names it, so a retried
    # batch still dedupes
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
    return "sendgrid:sha256:" + digest[:40]


def parse(body: bytes) -> list[DeliveryEvent]:
    """Every event of a webhook body we have a kind for; EventError when the body is malformed."""
    try:
        items = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise EventError(f"the body is not JSON: {str(e)[:200]}") from None
    if not isinstance(items, list):
        raise EventError("the body is JSON but not an array of events")
    if len(items) > MAX_EVENTS:
        raise EventError(f"more than {MAX_EVENTS} events in one request")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EventError(f"event {i} is not an object")
        name = item.get("event")
        if not isinstance(name, str):
            raise EventError(f"event {i} has no 'event' name")
        kind = EVENTS.get(name)
        if kind is None:
            continue  # processed by SendGrid but nothing we act on (group_resubscribe, account events)
        cause = ""
        if kind == "bounce":
            kind = BOUNCE_TYPES.get(text(item.get("type")).lower(), "bounce")
        elif kind == "dropped":
            cause = DROP_REASONS.get(text(item.get("reason")).strip().lower(), "other")
        detail = {
            k: text(item.get(v), 2000)
            for k, v in (
                ("reason", "reason"),
                ("status", "status"),
                ("response", "response"),
                ("type", "type"),
                ("classification", "bounce_classification"),
                ("url", "url"),
                ("user_agent", "useragent"),
                ("ip", "ip"),
            )
            if item.get(v) not in (None, "")
        }
        if item.get("sg_machine_open") is True:
            detail["machine_open"] = True
        out.append(
            DeliveryEvent(
                source="sendgrid",
                kind=kind,
                event_id=_event_id(item),
                recipient=text(item.get("email"), 320).strip().lower(),
                outbound_id=_outbound_id(item.get("donebox_id")),
                provider_id=provider_id(text(item.get("sg_message_id"), 300)),
                at=_time(item.get("timestamp")),
                cause=cause,
                detail=detail,
                raw=item,
            )
        )
    return out
