"""Bounce and complaint reports in mail: RFC 3464 DSNs, RFC 5965 ARF, and common plain-text bounces.

Pure and lenient: raw message bytes (or, when a provider gave no raw MIME, the parsed
``InboundEmail``) in, a ``Report`` or None out. Nothing here raises on odd mail, reads the
clock, the database or the network. Which message a report is about is the original
Message-ID it quotes (the ``message/rfc822`` or ``text/rfc822-headers`` part, or the
headers a plain-text bounce copies); ``delivery_events`` turns a report into the
``DeliveryEvent`` vocabulary that app.relay.feedback applies.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32

from parsers.message import InboundEmail, address_key, addresses, message_ids
from parsers.providers.events import DeliveryEvent

MAX_PARTS = 200  # parts of a report looked at; a DSN has three
MAX_RECIPIENTS = 100
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?:[ -]|$)")
_BODY_MSGID = re.compile(r"(?im)^[ \t>]*message-id:[ \t]*(<[^<>\s]{1,900}>)")
# a plain-text bounce is recognized by who sent it (or Exim's header), never by its subject alone:
# a person's reply may well say "undeliverable"
_DAEMONS = ("mailer-daemon@", "postmaster@", "mail-daemon@", "mailerdaemon@")
# recipients named in the text of plain-text bounces: qmail "<addr>:" lines, Exim's indented list
_QMAIL_RCPT = re.compile(r"(?m)^<([^<>\s@]+@[^<>\s]+)>:\s*$")
_EXIM_RCPT = re.compile(r"(?m)^  ([^\s<>@]+@[^\s<>]+)\s*$")
# phrases of plain-text bounces, checked in order: a delay notice first, then a final failure
_DELAYED = re.compile(r"delayed|will (be retried|retry|keep trying|continue)|not yet been delivered", re.I)
_FAILED = re.compile(
    r"permanent(ly)? (error|fatal|failure)|failed permanently|could not be delivered|"
    r"does not exist|user unknown|no such (user|mailbox|recipient)|address rejected|"
    r"recipient address rejected|mailbox unavailable|undeliverable|i couldn't find|delivery has failed",
    re.I,
)


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's lines of a report: what happened to the mail for this address."""

    recipient: str  # Final-Recipient (or the address a plain-text bounce names), lower-case
    original_recipient: str = ""  # Original-Recipient: the address we sent to, when it was forwarded
    action: str = ""  # failed | delayed | delivered | relayed | expanded (RFC 3464)
    status: str = ""  # RFC 3463 code, e.g. 5.1.1
    diagnostic: str = ""  # Diagnostic-Code: the remote server's words
    remote_mta: str = ""

    @property
    def kind(self) -> str:
        """Our event kind: bounce (the address is bad), soft_bounce, deferred, delivered or complaint."""
        action = self.action
        if action == "complained":  # ARF
            return "complaint"
        if action in ("delivered", "relayed", "expanded"):
            return "delivered"
        if action == "delayed":
            return "deferred"
        if self.status:
            # the relay's own rule (app.errors.PermanentSendError.bounce): 5.1.x and 5.2.1 condemn
            # the address; a block (5.7.x), a full mailbox or an expiry does not
            return "bounce" if self.status.startswith(("5.1.", "5.2.1")) else "soft_bounce"
        code = _SMTP_CODE.search(self.diagnostic)
        if code and 550 <= int(code.group(1)) <= 553 and "5.7." not in self.diagnostic:
            return "bounce"
        return "soft_bounce"


@dataclass(frozen=True)
class Report:
    """A bounce or complaint report found in a message."""

    kind: str  # dsn (RFC 3464) | arf (RFC 5965 complaint) | text (a plain-text bounce)
    recipients: tuple[RecipientStatus, ...] = ()
    original_message_id: str = ""  # the Message-ID of the mail the report is about, ``<...>``
    reporting_mta: str = ""
    feedback_type: str = ""  # arf: abuse | fraud | virus | other | not-spam ...
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------- field blocks


def field_blocks(text: str) -> list[dict[str, str]]:
    """``Name: value`` blocks separated by blank lines (continuation lines unfolded), names lower-case.

    The body of ``message/delivery-status`` and ``message/feedback-report``: the first block is
    about the message, each further block about one recipient.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            continue
        last = name.strip().lower()
        current.setdefault(last, value.strip())
    if current:
        blocks.append(current)
    return blocks


def _typed(value: str) -> str:
    """The value of a typed field (``rfc822; bob@example.com`` -> ``bob@example.com``)."""
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _address(value: str) -> str:
    addr = _typed(value).strip().strip("<>").strip()
    return addr.lower() if "@" in addr else ""


def _recipients_of(blocks: list[dict[str, str]]) -> tuple[RecipientStatus, ...]:
    out = []
    for b in blocks[1:] if len(blocks) > 1 else blocks:
        rcpt = _address(b.get("final-recipient", "")) or _address(b.get("original-recipient", ""))
        if not rcpt:
            continue
        status = _STATUS.search(b.get("status", ""))
        out.append(
            RecipientStatus(
                recipient=rcpt,
                original_recipient=_address(b.get("original-recipient", "")),
                action=b.get("action", "").strip().lower().split()[0] if b.get("action", "").strip() else "",
                status=".".join(status.groups()) if status else "",
                diagnostic=_typed(b.get("diagnostic-code", ""))[:2000],
                remote_mta=_typed(b.get("remote-mta", ""))[:255],
            )
        )
    return tuple(out[:MAX_RECIPIENTS])


# ---------------------------------------------------------------- raw MIME (stdlib parser)


def _decoded(part: Message) -> str:
    """A leaf part's body as text, transfer encoding undone, never raising."""
    payload = part.get_payload()
    if isinstance(payload, list):  # message/* parsed into sub-messages by the stdlib
        return "\n".join(m.as_string() if isinstance(m, Message) else str(m) for m in payload)
    data = payload.encode("latin-1", "replace") if isinstance(payload, str) else b""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    try:
        if cte == "base64":
            data = base64.b64decode(data)
        elif cte == "quoted-printable":
            data = quopri.decodestring(data)
    except (binascii.Error, ValueError):
        pass
    return data.decode("utf-8", "replace")


def _delivery_status_text(part: Message) -> str:
    """The delivery-status body; the stdlib parses it into header blocks, which we write back."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [m for m in payload if isinstance(m, Message)]
        if blocks and any(len(m.keys()) for m in blocks):
            return "\n".join("".join(f"{k}: {v}\n" for k, v in m.items()) for m in blocks)
        return ""
    return _decoded(part)


def _walk(msg: Message, notes: list[str]):
    stack, seen = [msg], 0
    while stack:
        part = stack.pop(0)
        seen += 1
        if seen > MAX_PARTS:
            notes.append(f"more than {MAX_PARTS} parts: the rest were not read")
            return
        yield part
        if part.get_content_type().startswith("multipart/") and isinstance(part.get_payload(), list):
            stack[:0] = [p for p in part.get_payload() if isinstance(p, Message)]


def _original_id(part: Message) -> str:
    """The Message-ID of a message/rfc822 or text/rfc822-headers part."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner = payload[0]
    else:
        inner = HeaderParser(policy=compat32).parsestr(_decoded(part), headersonly=True)
    return (message_ids(str(inner.get("Message-ID", ""))) or ("",))[0]


def _from_raw(raw: bytes, notes: list[str]) -> tuple[Message | None, list[tuple[str, str]]]:
    """The parsed message and its (content type, text) leaves of interest."""
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
    except Exception as e:  # noqa: BLE001 - hostile input: note it, report nothing
        notes.append(f"unparseable message: {type(e).__name__}")
        return None, []
    leaves = []
    for part in _walk(msg, notes):
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            leaves.append(("message/delivery-status", _delivery_status_text(part)))
        elif ctype == "message/feedback-report":
            leaves.append((ctype, _delivery_status_text(part)))
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers"):
            leaves.append(("original", _original_id(part)))
        elif ctype == "text/plain":
            leaves.append(("text", _decoded(part)[:200_000]))
    return msg, leaves


# ---------------------------------------------------------------- the report


def _header(headers, name: str) -> str:
    low = name.lower()
    return next((str(v) for k, v in headers if k.lower() == low), "")


def _text_recipients(text: str, failed_header: str) -> list[str]:
    found = [address_key(a) for _, a in addresses(failed_header)]
    if not found:
        found = [m.lower() for m in _QMAIL_RCPT.findall(text)]
    if not found and "following address" in text.lower():  # Exim: "The following address(es) failed:"
        found = [m.lower() for m in _EXIM_RCPT.findall(text)]
    return list(dict.fromkeys(found))[:MAX_RECIPIENTS]


def _from_daemon(headers) -> bool:
    sender = addresses(_header(headers, "From"))
    return bool(sender) and address_key(sender[0][1]).startswith(_DAEMONS)


def _text_report(headers, texts: list[str], original: str, notes: list[str]) -> Report | None:
    failed_header = _header(headers, "X-Failed-Recipients")
    if not (_from_daemon(headers) or failed_header):
        return None
    text = "\n".join(texts)
    if _DELAYED.search(_header(headers, "Subject")) or (_DELAYED.search(text) and not _FAILED.search(text)):
        action = "delayed"
    elif _FAILED.search(text) or failed_header:
        action = "failed"
    else:
        return None  # from a daemon, but not a bounce we can read
    status = _STATUS.search(text)
    code = _SMTP_CODE.search(text)
    diagnostic = ""
    for line in text.splitlines():
        if (status and status.group(0) in line) or (code and code.group(1) in line):
            diagnostic = line.strip()[:2000]
            break
    rcpts = _text_recipients(text, failed_header) or [""]
    statuses = tuple(
        RecipientStatus(
            recipient=r,
            action=action,
            status=status.group(0) if status else "",
            diagnostic=diagnostic,
        )
        for r in rcpts
    )
    notes.append("a plain-text bounce: read heuristically")
    return Report("text", statuses, original, notes=tuple(notes))


def might_be_report(email: InboundEmail) -> bool:
    """A cheap look at headers and parts: could this message be a bounce or complaint report?"""
    ctype = email.header("Content-Type").lower()
    return (
        "multipart/report" in ctype
        or any(a.content_type.startswith(_REPORT_PARTS) for a in email.attachments)
        or address_key(email.from_addr).startswith(_DAEMONS)
        or bool(email.header("X-Failed-Recipients"))
    )


_REPORT_PARTS = ("message/delivery-status", "message/global-delivery-status", "message/feedback-report")


def parse_report(email: InboundEmail, raw: bytes = b"") -> Report | None:
    """The bounce or complaint report in a message, or None when it is not one.

    ``email`` is the parsed message; ``raw`` (the message as received) is read too when given,
    since the parsed form does not keep the original message's headers that a report encloses.
    Mail that does not look like a report (``might_be_report``) is not parsed again.
    """
    if not might_be_report(email):
        return None
    notes: list[str] = []
    if raw:
        msg, leaves = _from_raw(raw, notes)
        if msg is None:
            return None
        headers = list(msg.items())
        report_type = str(msg.get_param("report-type", "", header="content-type") or "").lower()
    else:
        headers = list(email.headers)
        ctype = _header(headers, "Content-Type").lower()
        m = re.search(r"report-type=\"?([\w-]+)", ctype)
        report_type = m.group(1) if m else ""
        leaves = [
            (
                "message/delivery-status"
                if a.content_type.startswith(("message/delivery-status", "message/global-delivery-status"))
                else a.content_type.split(";")[0],
                a.content.decode("utf-8", "replace"),
            )
            for a in email.attachments
            if a.content_type.startswith(("message/", "text/rfc822-headers"))
        ]
        leaves += [("text", t) for t in (email.text or "",) if t]
        notes.append("no raw MIME: the original message's headers were not kept by the parser")
    original = next((v for k, v in leaves if k == "original" and v), "")
    texts = [v for k, v in leaves if k == "text"]
    if not original:  # no enclosed headers: the text may quote them (Exchange, Exim)
        found = _BODY_MSGID.search("\n".join(texts))
        original = found.group(1) if found else ""
    # Gmail and Exchange reports also answer the original: In-Reply-To names it (only trusted in a
    # report's own format, never in a plain-text one)
    replied = (message_ids(_header(headers, "In-Reply-To")) or ("",))[0]
    feedback = next((v for k, v in leaves if k == "message/feedback-report"), None)
    if feedback is not None or report_type == "feedback-report":
        blocks = field_blocks(feedback or "")
        fields = blocks[0] if blocks else {}
        rcpt = _address(fields.get("original-rcpt-to", ""))
        return Report(
            "arf",
            (RecipientStatus(recipient=rcpt, action="complained"),) if rcpt else (),
            original or replied,
            reporting_mta=_typed(fields.get("reporting-mta", ""))[:255],
            feedback_type=fields.get("feedback-type", "").strip().lower()[:40] or "abuse",
            notes=tuple(notes),
        )
    status_text = next((v for k, v in leaves if k == "message/delivery-status"), None)
    if status_text is not None:
        blocks = field_blocks(status_text)
        recipients = _recipients_of(blocks)
        if recipients:
            first = blocks[0] if len(blocks) > 1 else {}
            given = message_ids(first.get("x-original-message-id", ""))  # Gmail's per-message field
            return Report(
                "dsn",
                recipients,
                original or (given[0] if given else "") or replied,
                reporting_mta=_typed(first.get("reporting-mta", ""))[:255],
                notes=tuple(notes),
            )
        notes.append("a delivery-status part that names no recipient")
    return _text_report(headers, texts, original, notes)


def delivery_events(report: Report, ref: str) -> list[DeliveryEvent]:
    """The report as DeliveryEvents; ``ref`` names the report (e.g. the inbound row) for dedupe."""
    ids = (report.original_message_id,) if report.original_message_id else ()
    base = {"source": "dsn", "message_ids": ids}
    if report.kind == "arf":
        if report.feedback_type == "not-spam":
            return []
        rcpt = report.recipients[0].recipient if report.recipients else ""
        detail = {"feedback_type": report.feedback_type, "reporting_mta": report.reporting_mta}
        return [DeliveryEvent(kind="complaint", event_id=f"dsn:{ref}", recipient=rcpt, detail=detail, **base)]
    out = []
    for i, r in enumerate(report.recipients):
        detail = {
            k: v
            for k, v in (
                ("action", r.action),
                ("status", r.status),
                ("diagnostic", r.diagnostic),
                ("remote_mta", r.remote_mta),
                ("reporting_mta", report.reporting_mta),
                ("original_recipient", r.original_recipient),
                ("format", report.kind),
            )
            if v
        }
        event_id = f"dsn:{ref}" if i == 0 else f"dsn:{ref}/{i}"
        out.append(
            DeliveryEvent(kind=r.kind, event_id=event_id, recipient=r.recipient, detail=detail, **base)
        )
    return out
