"""Amazon SES receipt rules with an SNS action: an SNS ``Notification`` whose Message is SES's JSON.

SNS carries at most 150 KB and the mail sits in ``content`` (``BASE64`` or ``UTF8``
encoding, as the rule's action says). The SNS signature is verified in app/sns.py.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace

from parsers.message import InboundEmail, parse_mime, raw_message_id
from parsers.providers.base import Keys, Payload, PayloadError, Provider, sha256, verdict


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


class SES(Provider):
    """SES inbound through SNS; ``mail.messageId`` is SES's id and the dedupe key."""

    name = "ses"

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
            envelope_to=tuple(str(r).strip().lower() for r in recipients if isinstance(r, str) and "@" in r),
            raw_mime=raw,
            header_hash="" if raw else sha256(repr(mail.get("headers"))),
        )

    def parse(self, payload: Payload) -> InboundEmail:
        keys = self.keys(payload)
        doc = ses_notification(payload.json)
        receipt = _dict(doc.get("receipt"))
        verdicts = {
            k: verdict(str(_dict(receipt.get(f"{k}Verdict")).get("status", "")))
            for k in ("spf", "dkim", "dmarc")
        }
        if keys.raw_mime is None:
            return InboundEmail(
                provider=self.name,
                provider_id=keys.provider_id,
                envelope_to=keys.envelope_to,
                notes=("no content: the receipt rule's action is not SNS (S3 actions are not supported)",),
                **verdicts,
            )
        email = parse_mime(keys.raw_mime, provider=self.name, provider_id=keys.provider_id)
        return replace(email, envelope_to=keys.envelope_to or email.envelope_to, **verdicts)
