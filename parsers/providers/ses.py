"""Amazon SES through SNS: receipt rules (inbound mail) and notifications (delivery events).

Both arrive as SNS messages whose ``Message`` is SES's JSON; only SNS topics pinned in a
setting are accepted (``verify``), and the SNS signature and subscription handshake are
checked by app/inbound/sns.py (it fetches the signing certificate). Inbound: SNS carries at
most 150 KB and the mail sits in ``content`` (``BASE64`` or ``UTF8`` encoding, as the rule's
action says). A receipt rule with an S3 action stores the mail in a bucket and notifies without
``content``: ``s3_object`` names the object (app/inbound/s3.py fetches it into the stored raw),
and until then ``parse`` gives a summary from ``mail.commonHeaders`` and ``mail.headers``.
Events: the SNS MessageId names the notification (SNS keeps it across retries), so it is the
dedupe key; a notification about several recipients gives one event each.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from datetime import UTC, datetime

from parsers.message import (
    InboundEmail,
    addresses,
    first_values,
    message_ids,
    parse_date,
    parse_mime,
    raw_message_id,
)
from parsers.providers.base import (
    Forbidden,
    Headers,
    Keys,
    Payload,
    PayloadError,
    Provider,
    S3Object,
    content_fingerprint,
    decode_words,
    sha256,
    threading_fields,
    verdict,
)
from parsers.providers.events import DeliveryEvent, EventError, bounded

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
MAX_HEADERS = 1000  # mail.headers entries a summary keeps (SES truncates long header blocks itself)
MAX_HEADER_CHARS = 10_000  # characters kept of one header value in a summary
# bounce.bounceType -> ours: only Permanent is final (Undetermined: SES could not tell)
BOUNCE_TYPES = {"Permanent": "bounce", "Transient": "soft_bounce", "Undetermined": "soft_bounce"}


def _time(value) -> datetime | None:
    try:
        t = datetime.fromisoformat(bounded(value, 40).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def _our_ids(mail: dict) -> tuple[str, ...]:
    """Message-IDs the mail had when we handed it over (SES sets its own when it sends)."""
    found = []
    common = mail.get("commonHeaders")
    if isinstance(common, dict):
        found += message_ids(bounded(common.get("messageId")))
    headers = mail.get("headers")
    if isinstance(headers, list):
        for h in headers:
            if isinstance(h, dict) and bounded(h.get("name")).lower() == "message-id":
                found += message_ids(bounded(h.get("value")))
    return tuple(dict.fromkeys(found))


def _address(value) -> str:
    if isinstance(value, dict):
        value = value.get("emailAddress")
    addr = bounded(value, 320).strip()
    if "<" in addr and addr.endswith(">"):  # "Name <addr>" as SES sometimes reports it
        addr = addr.rsplit("<", 1)[1][:-1]
    return addr.lower()


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def ses_notification(envelope: dict) -> dict:
    """The SES notification inside an SNS Notification envelope; PayloadError when there is none."""
    if envelope.get("Type") != "Notification":
        raise PayloadError(f"SNS message type {str(envelope.get('Type'))[:40]!r} carries no mail")
    try:
        doc = json.loads(envelope.get("Message") or "")
    except (TypeError, ValueError, RecursionError):
        raise PayloadError("the SNS Message is not SES's JSON") from None
    if not isinstance(doc, dict) or doc.get("notificationType") != "Received":
        raise PayloadError("the SNS Message is not an SES 'Received' notification")
    return doc


def content_bytes(doc: dict) -> bytes | None:
    """The raw MIME carried in ``content``, decoded per the action's encoding; None when absent."""
    content = doc.get("content")
    if not isinstance(content, str) or not content:
        return None
    encoding = str(_dict(_dict(doc.get("receipt")).get("action")).get("encoding", "")).upper()
    if encoding == "BASE64":
        try:
            return base64.b64decode(content, validate=False)
        except (binascii.Error, ValueError):
            return None
    return content.encode("utf-8", "surrogatepass")


def s3_location(doc: dict) -> S3Object | None:
    """The bucket and key of a notification from a receipt rule's S3 action (the mail is there, not
    in ``content``); None for other actions. A missing name is '' (the fetch refuses it)."""
    action = _dict(_dict(doc.get("receipt")).get("action"))
    if action.get("type") != "S3":
        return None
    return S3Object(bounded(action.get("bucketName"), 255).strip(), bounded(action.get("objectKey"), 1024))


def summary(doc: dict, *, provider_id: str, where: S3Object | None) -> InboundEmail:
    """The mail as far as the notification tells it without ``content``: the headers SES lists in
    ``mail.headers`` (values as received) and the decoded ``mail.commonHeaders``, no body."""
    mail = _dict(doc.get("mail"))
    common = _dict(mail.get("commonHeaders"))
    listed = mail.get("headers") if isinstance(mail.get("headers"), list) else []
    headers = tuple(
        (bounded(h.get("name"), 200), decode_words(bounded(h.get("value"), MAX_HEADER_CHARS)))
        for h in listed[:MAX_HEADERS]
        if isinstance(h, dict) and bounded(h.get("name"), 200)
    )

    values = first_values(headers)

    def common_list(name: str, header: str) -> str:
        value = common.get(name)
        if isinstance(value, list):
            return ", ".join(bounded(v, MAX_HEADER_CHARS) for v in value[:100] if isinstance(v, str))
        return bounded(value, MAX_HEADER_CHARS) or values.get(header.lower(), "")

    notes = []
    if where is None:
        notes.append("no content: the receipt rule's action is neither SNS nor S3")
    elif where.bucket and where.key:
        notes.append(f"content in S3 at {where}, not fetched yet: this is the notification's summary")
    else:
        notes.append("content in S3, but the notification names no bucket or object key")
    if mail.get("headersTruncated") is True:
        notes.append("SES truncated the header list")
    from_pairs = addresses(common_list("from", "From"))
    from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
    threading = threading_fields(values)
    mid = message_ids(bounded(common.get("messageId"), 1000))
    return InboundEmail(
        from_addr=from_addr,
        from_name=decode_words(from_name),
        to=tuple(a for _, a in addresses(common_list("to", "To"))),
        cc=tuple(a for _, a in addresses(common_list("cc", "Cc"))),
        reply_to=tuple(a for _, a in addresses(common_list("replyTo", "Reply-To"))),
        subject=common_list("subject", "Subject"),
        date=parse_date(common_list("date", "Date"), notes),
        message_id=mid[0] if mid else threading["message_id"],
        in_reply_to=threading["in_reply_to"],
        references=threading["references"],
        headers=headers,
        provider="ses",
        provider_id=provider_id,
        notes=tuple(notes),
    )


def pinned(body: bytes, arns: tuple[str, ...], setting: str) -> None:
    """The SNS message's TopicArn must be one of ``arns``; raises Forbidden (PayloadError when the
    body is not an SNS message)."""
    topic = Payload(body).json.get("TopicArn")
    if not isinstance(topic, str) or topic not in arns:
        raise Forbidden(f"SNS topic {str(topic)[:200]!r} is not in {setting}")


class SES(Provider):
    """SES through SNS; for inbound mail ``mail.messageId`` is SES's id and the dedupe key."""

    name = "ses"
    setting = "SES_TOPIC_ARNS"
    event_setting = "SES_EVENT_TOPIC_ARNS"
    body_signed = True
    via_sns = True

    def verify(self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300) -> None:
        pinned(body, secret, self.setting)

    def verify_events(
        self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300
    ) -> None:
        pinned(body, secret, self.event_setting)

    def keys(self, payload: Payload) -> Keys:
        doc = ses_notification(payload.json)
        mail = _dict(doc.get("mail"))
        receipt = _dict(doc.get("receipt"))
        raw = content_bytes(doc)
        recipients = receipt.get("recipients") or mail.get("destination") or []
        common = _dict(mail.get("commonHeaders"))
        mid = raw_message_id(raw) if raw else str(common.get("messageId") or "")
        return Keys(
            provider_id=str(mail.get("messageId") or "")[:200],
            message_id=mid,
            envelope_to=tuple(str(r).strip() for r in recipients if isinstance(r, str) and "@" in r),
            raw_mime=raw,
            header_hash="" if raw else sha256(repr(mail.get("headers"))),
            # no content (not an SNS action): what SES says of the mail, not the notification's JSON
            fingerprint=""
            if raw
            else content_fingerprint(
                (k, json.dumps(common.get(k), sort_keys=True)) for k in ("from", "to", "cc", "subject")
            ),
        )

    def s3_object(self, payload: Payload) -> S3Object | None:
        try:
            doc = ses_notification(payload.json)
        except PayloadError:
            return None
        return None if content_bytes(doc) is not None else s3_location(doc)

    def parse(self, payload: Payload) -> InboundEmail:
        return self.parse_stored(payload, b"")

    def parse_stored(self, payload: Payload, raw: bytes) -> InboundEmail:
        """The notification's mail: ``content``, else ``raw`` (the S3 object once fetched into the
        stored raw), else the summary of its headers."""
        keys = self.keys(payload)
        doc = ses_notification(payload.json)
        receipt = _dict(doc.get("receipt"))
        verdicts = {
            k: verdict(str(_dict(receipt.get(f"{k}Verdict")).get("status", "")))
            for k in ("spf", "dkim", "dmarc")
        }
        source = _dict(doc.get("mail")).get("source")
        verdicts["envelope_from"] = source.strip().lower()[:320] if isinstance(source, str) else ""
        mime = keys.raw_mime if keys.raw_mime is not None else raw
        if not mime:
            email = summary(doc, provider_id=keys.provider_id, where=s3_location(doc))
            return replace(email, envelope_to=keys.envelope_to, **verdicts)
        email = parse_mime(mime, provider=self.name, provider_id=keys.provider_id)
        return replace(email, envelope_to=keys.envelope_to or email.envelope_to, **verdicts)

    def parse_events(self, payload: Payload) -> list[DeliveryEvent]:
        """The events of one SNS Notification from SES; EventError when it is not one or its Message
        is malformed."""
        envelope = payload.json
        if envelope.get("Type") != "Notification":
            raise EventError("not an SNS Notification")
        sns_id = bounded(envelope.get("MessageId"), 200)
        if not sns_id:
            raise EventError("the SNS notification has no MessageId")
        try:
            doc = json.loads(bounded(envelope.get("Message"), 10_000_000))
        except (ValueError, RecursionError) as e:
            raise EventError(f"the SNS Message is not JSON: {str(e)[:200]}") from None
        if not isinstance(doc, dict):
            raise EventError("the SNS Message is not a JSON object")
        name = bounded(doc.get("notificationType") or doc.get("eventType"), 100)
        if not name:
            raise EventError("the SES notification has neither notificationType nor eventType")
        if name not in TYPES:
            return []  # e.g. AmazonSnsSubscriptionSucceeded, Rendering Failure: nothing to apply
        kind, key, rcpt_key = TYPES[name]
        mail = doc.get("mail") if isinstance(doc.get("mail"), dict) else {}
        info = doc.get(key) if isinstance(doc.get(key), dict) else {}
        if kind == "bounce":
            kind = BOUNCE_TYPES.get(bounded(info.get("bounceType")), "soft_bounce")
        if kind == "complaint" and bounded(info.get("complaintFeedbackType")).lower() == "not-spam":
            return []  # the recipient said it is NOT spam
        recipients = info.get(rcpt_key) if rcpt_key else None
        if not isinstance(recipients, list) or not recipients:
            recipients = mail.get("destination") if isinstance(mail.get("destination"), list) else [""]
        common = {
            "source": "ses",
            "kind": kind,
            "provider_id": bounded(mail.get("messageId"), 255),
            "message_ids": _our_ids(mail),
            "at": _time(info.get("timestamp") or mail.get("timestamp")),
            "cause": "other" if kind == "dropped" else "",
        }
        base = {
            k: bounded(info.get(v), 2000)
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
                        detail[k] = bounded(r.get(v), 2000)
            event_id = f"ses:{sns_id}" if i == 0 else f"ses:{sns_id}/{i}"
            out.append(
                DeliveryEvent(event_id=event_id, recipient=_address(r), detail=detail, raw=raw, **common)
            )
        return out
