"""Amazon SES notifications (bounce, complaint, delivery; also event publishing) -> DeliveryEvents.

The input is the SNS envelope, already verified (app/sns.py); its ``Message`` is SES's
JSON. The SNS MessageId names the notification (SNS keeps it across retries), so it is
the dedupe key; a notification about several recipients gives one event each.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from parsers.events import DeliveryEvent, EventError, text
from parsers.message import message_ids

# SES notificationType / eventType -> (ours, the object holding details, its recipients list)
TYPES = {
    "Bounce": ("bounce", "bounce", "bouncedRecipients"),
    "Complaint": ("complaint", "complaint", "complainedRecipients"),
    "Delivery": ("delivered", "delivery", "recipients"),
    "Send": ("processed", "send", None),
    "Reject": ("dropped", "reject", None),
    "DeliveryDelay": ("deferred", "deliveryDelay", "delayedRecipients"),
    "Open": ("open", "open", None),
    "Click": ("click", "click", None),
}
# bounce.bounceType -> ours: only Permanent is final (Undetermined: SES could not tell)
BOUNCE_TYPES = {"Permanent": "bounce", "Transient": "soft_bounce", "Undetermined": "soft_bounce"}


def _time(value) -> datetime | None:
    try:
        t = datetime.fromisoformat(text(value, 40).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def _our_ids(mail: dict) -> tuple[str, ...]:
    """Message-IDs the mail had when we handed it over (SES sets its own when it sends)."""
    found = []
    common = mail.get("commonHeaders")
    if isinstance(common, dict):
        found += message_ids(text(common.get("messageId")))
    headers = mail.get("headers")
    if isinstance(headers, list):
        for h in headers:
            if isinstance(h, dict) and text(h.get("name")).lower() == "message-id":
                found += message_ids(text(h.get("value")))
    return tuple(dict.fromkeys(found))


def _address(value) -> str:
    if isinstance(value, dict):
        value = value.get("emailAddress")
    addr = text(value, 320).strip()
    if "<" in addr and addr.endswith(">"):  # "Name <addr>" as SES sometimes reports it
        addr = addr.rsplit("<", 1)[1][:-1]
    return addr.lower()


def parse(envelope: dict) -> list[DeliveryEvent]:
    """The events of one SNS Notification from SES; EventError when its Message is malformed."""
    sns_id = text(envelope.get("MessageId"), 200)
    if not sns_id:
        raise EventError("the SNS notification has no MessageId")
    try:
        doc = json.loads(text(envelope.get("Message"), 10_000_000))
    except (ValueError, RecursionError) as e:
        raise EventError(f"the SNS Message is not JSON: {str(e)[:200]}") from None
    if not isinstance(doc, dict):
        raise EventError("the SNS Message is not a JSON object")
    name = text(doc.get("notificationType") or doc.get("eventType"), 100)
    if not name:
        raise EventError("the SES notification has neither notificationType nor eventType")
    if name not in TYPES:
        return []  # e.g. AmazonSnsSubscriptionSucceeded, Rendering Failure: nothing to apply
    kind, key, rcpt_key = TYPES[name]
    mail = doc.get("mail") if isinstance(doc.get("mail"), dict) else {}
    info = doc.get(key) if isinstance(doc.get(key), dict) else {}
    if kind == "bounce":
        kind = BOUNCE_TYPES.get(text(info.get("bounceType")), "soft_bounce")
    if kind == "complaint" and text(info.get("complaintFeedbackType")).lower() == "not-spam":
        return []  # the recipient said it is NOT spam
    recipients = info.get(rcpt_key) if rcpt_key else None
    if not isinstance(recipients, list) or not recipients:
        recipients = mail.get("destination") if isinstance(mail.get("destination"), list) else [""]
    common = {
        "source": "ses",
        "kind": kind,
        "provider_id": text(mail.get("messageId"), 255),
        "message_ids": _our_ids(mail),
        "at": _time(info.get("timestamp") or mail.get("timestamp")),
        "cause": "other" if kind == "dropped" else "",
    }
    base = {
        k: text(info.get(v), 2000)
        for k, v in (
            ("type", "bounceType"),
            ("subtype", "bounceSubType"),
            ("feedback_type", "complaintFeedbackType"),
            ("reason", "reason"),
            ("url", "link"),
            ("user_agent", "userAgent"),
            ("ip", "ipAddress"),
            ("response", "smtpResponse"),
        )
        if info.get(v) not in (None, "")
    }
    raw = {"type": name, key: info, "mail": {"messageId": mail.get("messageId")}}
    out = []
    for i, r in enumerate(recipients[:1000]):
        detail = dict(base)
        if isinstance(r, dict):
            for k, v in (("status", "status"), ("diagnostic", "diagnosticCode"), ("action", "action")):
                if r.get(v) not in (None, ""):
                    detail[k] = text(r.get(v), 2000)
        event_id = f"ses:{sns_id}" if i == 0 else f"ses:{sns_id}/{i}"
        out.append(DeliveryEvent(event_id=event_id, recipient=_address(r), detail=detail, raw=raw, **common))
    return out
