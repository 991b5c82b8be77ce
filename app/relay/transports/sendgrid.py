"""The SendGrid transport: v3 mail send through the ``sendgrid`` package.

URL: ``sendgrid://<api key>@api.sendgrid.com`` (https), or ``sendgrid+http://<key>@127.0.0.1:8080``
for a local server speaking the v3 API (tests). Our outbox id travels in
``custom_args.donebox_id`` so provider events can be matched; the ``X-Message-Id``
SendGrid answers with becomes the message's provider id. SendGrid signs with its
own DKIM, so the parts go as JSON, not our signed bytes.
"""

from __future__ import annotations

import json
from email.utils import parseaddr
from urllib.error import URLError
from urllib.parse import unquote, urlsplit

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from app.errors import PermanentSendError, TransientSendError
from app.relay.transports.base import Outgoing, SendResult

# headers SendGrid sets itself and refuses in "headers"
RESERVED = frozenset(
    "from to cc bcc subject reply-to date content-type content-transfer-encoding mime-version "
    "dkim-signature received x-sg-id x-sg-eid".split()
)
TIMEOUT_S = 30.0


def payload(message: Outgoing) -> dict:
    """The v3 /mail/send body for ``message``."""
    p = message.parts
    if p.composed:  # its attachments and structure are in the bytes, which this API does not take
        raise PermanentSendError(
            "a composed message (attachments, its own MIME) cannot go through SendGrid's JSON API: "
            "route it through an SMTP sender"
        )
    headers = {"Message-ID": p.message_id, **p.headers}
    body = {
        "personalizations": [
            {
                "to": [{"email": message.rcpt_to, **({"name": p.to_name} if p.to_name else {})}],
                "custom_args": {"donebox_id": str(message.outbound_id)},
            }
        ],
        # the From of the message: SendGrid's own return path carries its bounces, not our VERP sender
        "from": {"email": p.from_addr or message.mail_from, **({"name": p.from_name} if p.from_name else {})},
        "subject": p.subject,
        "content": [{"type": "text/plain", "value": p.text}, {"type": "text/html", "value": p.html}],
        "headers": {k: v for k, v in headers.items() if k.lower() not in RESERVED},
    }
    reply_to = next((v for k, v in p.headers.items() if k.lower() == "reply-to"), "")
    if reply_to:
        body["reply_to"] = {"email": parseaddr(reply_to)[1]}
    return body


def _retry_after(headers) -> float:
    try:
        return max(1.0, float((headers or {}).get("Retry-After", "60")))
    except (TypeError, ValueError):
        return 60.0


class SendGridTransport:
    """Sends through SendGrid's v3 API (or anything that speaks it at the URL's host)."""

    name = "sendgrid"

    def __init__(self, url: str):
        u = urlsplit(url)
        if u.scheme not in ("sendgrid", "sendgrid+http") or not u.username:
            raise ValueError("a SendGrid URL is sendgrid://<api key>@host")
        scheme = "http" if u.scheme == "sendgrid+http" else "https"
        host = u.hostname or "api.sendgrid.com"
        self.host = f"{scheme}://{host}" + (f":{u.port}" if u.port else "")
        self.client = SendGridAPIClient(api_key=unquote(u.username), host=self.host)
        self.client.client.timeout = TIMEOUT_S

    def send(self, message: Outgoing) -> SendResult:
        """POST /v3/mail/send; 202 -> SendResult with X-Message-Id, else the mapped SendError."""
        try:
            r = self.client.client.mail.send.post(request_body=payload(message))
        except HTTPError as e:
            body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else str(e.body)
            detail = f"SendGrid {e.status_code}: {body[:500]}"
            if e.status_code == 429:
                raise TransientSendError(detail, retry_in_s=_retry_after(e.headers)) from e
            if e.status_code >= 500:
                raise TransientSendError(detail, retry_in_s=_retry_after(e.headers), connection=True) from e
            # 401/403: our key or account is refused, not the message: this sender is broken
            raise PermanentSendError(detail, connection=e.status_code in (401, 403)) from e
        except (URLError, OSError) as e:
            raise TransientSendError(f"cannot reach SendGrid at {self.host}: {e}", connection=True) from e
        body = r.body.decode("utf-8", "replace") if isinstance(r.body, bytes) else str(r.body or "")
        provider_id = r.headers.get("X-Message-Id", "") if r.headers else ""
        response = json.dumps({"status": r.status_code, "x_message_id": provider_id, "body": body})
        return SendResult(
            self.name,
            provider_id=provider_id,
            detail=f"{r.status_code} {body[:200]}".strip(),
            response=response,
        )
