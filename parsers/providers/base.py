"""The provider contract: prove a request came from the provider, then turn its payload into
dedupe keys, one ``InboundEmail`` and ``DeliveryEvent``s.

A provider is pure: ``verify`` gets the secret and the time as arguments, nothing touches
the network or the database (Amazon SNS's certificate fetch lives in app/inbound/sns.py).
``keys`` is cheap (it runs inside the webhook, before the 2xx); ``parse`` is the full
normalization (it runs in the process_inbound job, on the stored payload).

Exceptions::

    AuthError          the request is not proven to come from the provider (401)
    +-- Forbidden      it is proven, but from a source nobody pinned (an SNS topic) (403)
    PayloadError       the body is not in the provider's documented format (400)
    EventError         the body is not in the provider's event format (400; events.py)
    NoWebhook          the provider has no such webhook (404)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.parser import HeaderParser
from email.policy import compat32
from functools import cached_property

from parsers.inline import content_id
from parsers.message import (
    InboundEmail,
    addresses,
    headers_digest,
    message_ids,
    mime_fingerprint,
)
from parsers.providers.events import DeliveryEvent
from parsers.providers.form import Form, parse_form

Headers = Mapping[str, str]  # request headers; names are looked up lower-case
BASIC_CHALLENGE = 'Basic realm="donebox inbound"'


class AuthError(Exception):
    """Raised when a request is not proven to come from the provider; the text says why."""

    status = 401


class Forbidden(AuthError):
    """Raised when a proven request comes from a source that is not pinned (an SNS topic)."""

    status = 403


class NoWebhook(LookupError):
    """Raised when a provider has no webhook of the kind asked for (the endpoint answers 404)."""


class PayloadError(ValueError):
    """Raised when a request body is not in the provider's documented format; the text says why."""


@dataclass(frozen=True)
class Keys:
    """What the webhook needs before it answers: ids to dedupe on and the raw MIME when carried."""

    provider_id: str = ""  # the provider's own id of this mail, stable across its retries
    message_id: str = ""  # the Message-ID header, ``<...>``
    envelope_to: tuple[str, ...] = ()  # SMTP RCPT TO addresses, as received
    raw_mime: bytes | None = None  # the whole RFC 5322 message, when the payload carries it
    header_hash: str = ""  # sha256 of the mail's header block as the provider gave it
    # sha256 of the mail's content, equal across the provider's retries (not of the form or JSON
    # carrying it, whose boundaries, signatures and tokens change): mime_fingerprint of the raw
    # MIME, else content_fingerprint of the parsed fields; tells a retry from a reused Message-ID
    fingerprint: str = ""

    def __post_init__(self):
        if not self.header_hash and self.raw_mime is not None:
            object.__setattr__(self, "header_hash", headers_digest(self.raw_mime))
        if not self.fingerprint and self.raw_mime is not None:
            object.__setattr__(self, "fingerprint", mime_fingerprint(self.raw_mime))


@dataclass(frozen=True)
class S3Object:
    """Where a provider stored a mail its payload does not carry: an Amazon S3 bucket and key."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class Payload:
    """A request body and its Content-Type, with the form or JSON parsed once on demand."""

    def __init__(self, body: bytes, content_type: str = ""):
        self.body = body
        self.content_type = content_type

    @cached_property
    def form(self) -> Form:
        """The body as a form (multipart or urlencoded); PayloadError when it is not one."""
        try:
            return parse_form(self.body, self.content_type)
        except ValueError as e:
            raise PayloadError(str(e)) from None

    @cached_property
    def json(self) -> dict:
        """The body as a JSON object; PayloadError when it is not one."""
        try:
            value = json.loads(self.body)
        except (ValueError, RecursionError) as e:
            raise PayloadError(f"the body is not JSON: {str(e)[:200]}") from None
        if not isinstance(value, dict):
            raise PayloadError("the body is JSON but not an object")
        return value


class Provider:
    """One provider: its name in URLs, how it proves a request, how its payloads map to ours.

    The class attributes say what differs between providers, so the endpoints name none.
    """

    name = ""  # in URLs (/inbound/{name}, /events/{name}) and in InboundMessage.provider
    webhook = True  # posts to /inbound/{name}; False: parse-only (the IMAP poller)
    setting = ""  # the setting holding the inbound webhook's secret (Settings.secret_for)
    max_age_setting = ""  # the setting bounding a signed timestamp's age, when the proof has one
    event_setting = ""  # the setting holding the event webhook's secret; "" = no /events/{name}
    event_max_age_setting = ""  # the same bound for the event webhook
    content_types: tuple[str, ...] = ()  # media types /inbound/{name} takes (others: 415); () = any
    body_signed = False  # the proof covers the body; False: verify reads headers only, before the body
    challenge = ""  # the WWW-Authenticate of a 401 (HTTP Basic providers)
    via_sns = False  # requests are Amazon SNS messages: their signature and handshake are checked too
    open_in_development = True  # development accepts requests, loudly, while the setting is unset
    stores_payload = True  # keep the request body next to the raw MIME (False: it is the raw MIME)
    created_status = 200  # the answer to a new message; a duplicate is always 200

    def verify(self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300) -> None:
        """Prove an inbound request with ``secret``; raises AuthError (or PayloadError for an
        unreadable body). Fails closed: a provider that does not say how is refused."""
        raise AuthError(f"{self.name} requests cannot be verified")

    def verify_events(
        self, headers: Headers, body: bytes, secret, *, now: datetime, max_age_s: int = 300
    ) -> None:
        """Prove an event webhook request with ``secret``; raises AuthError or NoWebhook."""
        raise NoWebhook(f"{self.name} has no event webhook")

    def replay_token(self, payload: Payload) -> str:
        """The one-time token of a verified request, to be remembered with the message; '' if none."""
        return ""

    def event_replay_token(self, payload: Payload) -> str:
        """The one-time token of a verified event request, remembered with its events; '' if none."""
        return ""

    def keys(self, payload: Payload) -> Keys:
        """Dedupe keys and raw MIME of a payload; raises PayloadError when it is not this provider's."""
        raise NotImplementedError

    def parse(self, payload: Payload) -> InboundEmail:
        """The normalized email of a payload that ``keys`` accepted; never raises on odd mail."""
        raise NotImplementedError

    def parse_stored(self, payload: Payload, raw: bytes) -> InboundEmail:
        """The normalized email of a stored payload and the raw MIME stored beside it (b'' when
        there is none, or none yet); providers whose payload carries the mail ignore ``raw``."""
        return self.parse(payload)

    def s3_object(self, payload: Payload) -> S3Object | None:
        """Where the provider put the mail when the payload carries only a summary of it (an SES
        receipt rule's S3 action): app.inbound.s3 fetches it before processing. None otherwise."""
        return None

    def parse_events(self, payload: Payload) -> list[DeliveryEvent]:
        """Every event of a verified event webhook body; EventError when malformed, NoWebhook when
        the provider has no event webhook."""
        raise NoWebhook(f"{self.name} has no event webhook")


def check_basic(headers: Headers, expected: str) -> None:
    """HTTP Basic credentials must equal ``expected`` (``user:password``); raises AuthError."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise AuthError("missing HTTP Basic credentials (put user:password in the webhook URL)")
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("malformed HTTP Basic credentials") from None
    if not hmac.compare_digest(given, expected.encode()):
        raise AuthError("wrong HTTP Basic credentials")


def check_bearer(headers: Headers, expected: str) -> None:
    """``Authorization: Bearer <expected>``; raises AuthError."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected.encode()):
        raise AuthError("missing or wrong bearer token")


def unix_time(value: str, what: str) -> int:
    """A signed Unix timestamp in seconds; raises AuthError("malformed <what>") when it is not one."""
    if not value.isdigit() or len(value) > 12:
        raise AuthError(f"malformed {what}")
    return int(value)


def check_fresh(timestamp: int, *, now: datetime, max_age_s: int, what: str) -> None:
    """A signed timestamp within ``max_age_s`` of ``now`` (either way); raises AuthError."""
    if abs(now.timestamp() - timestamp) > max_age_s:
        raise AuthError(f"stale {what} (more than {max_age_s} s from now)")


def json_field(value, what: str, default, notes: list[str] | None = None):
    """A JSON-encoded form field, or ``default`` (and no error) when it is missing or malformed;
    a malformed one is noted in ``notes`` when given."""
    if not value:
        return default
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, type(default)):
        return parsed
    if notes is not None:
        kind = {dict: "object", list: "array"}.get(type(default), type(default).__name__)
        notes.append(f"{what} is not a JSON {kind}: ignored")
    return default


def content_id_map(value, what: str, notes: list[str]) -> dict[str, str]:
    """A JSON object mapping Content-IDs to attachment field names (SendGrid's ``content-ids``,
    Mailgun's ``content-id-map``), read the other way: field name -> Content-ID; {} and a note
    when it is malformed."""
    given = json_field(value, what, {}, notes)
    return {f: content_id(c) for c, f in given.items() if isinstance(f, str) and content_id(c)}


def decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words decoded; left as is when they are broken."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - unknown charsets and broken encodings in hostile headers
        return value


_FIELD_NAME = re.compile(r"[\041-\071\073-\176]+")  # RFC 5322 ftext, as the email package reads it
_FOLD = re.compile(r"\s*\n\s+")


def header_block(text: str) -> tuple[tuple[str, str], ...]:
    """A raw header block ("Name: value" lines, folded) as (name, decoded value) pairs."""
    text = text.replace("\r\n", "\n").rstrip("\n")
    fields = _plain_fields(text)
    if fields is None:  # anything else is read as the email package reads it
        fields = HeaderParser(policy=compat32).parsestr(text + "\n\n").items()
    return tuple((k, decode_words(_unfold(str(v)))) for k, v in fields)


def _unfold(value: str) -> str:
    # the pattern starts with \s*, which re tries from every position of a long value (a DKIM
    # signature's): only a value with a line break has anything to unfold
    return _FOLD.sub(" ", value) if "\n" in value else value


def _plain_fields(text: str) -> list[tuple[str, str]] | None:
    """The (name, value) pairs of a header block of "Name: value" lines and their continuations,
    as the email package's compat32 parse gives them (values unfolded later); None for any other
    block (an mbox "From " line, a line that is not a field, a lone CR), which is left to it. Every
    received message's provider headers are read, and the email package's parser costs more."""
    if "\r" in text or text.startswith("From "):
        return None
    fields: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if line[:1] in (" ", "\t"):
            if not fields:
                return None
            name, value = fields[-1]
            fields[-1] = (name, value + "\n" + line)
            continue
        name, colon, value = line.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            return None
        fields.append((name, value.lstrip(" \t")))
    return fields


def threading_fields(values: dict[str, str]) -> dict:
    """message_id, in_reply_to and references of InboundEmail taken from the header fields'
    ``first_values``."""
    return {
        "message_id": (message_ids(values.get("message-id", "")) or ("",))[0],
        "in_reply_to": (message_ids(values.get("in-reply-to", "")) or ("",))[0],
        "references": message_ids(values.get("references", "")),
    }


def address_list(value: str) -> tuple[str, ...]:
    """The addresses of an address-list value, as received."""
    return tuple(a for _, a in addresses(value))


def sender(*values: str) -> tuple[str, str]:
    """(display name, address) of the first value holding an address (``Name <addr>``,
    ``"Name" <addr>`` or a bare address), or ('', '')."""
    for value in values:
        pairs = addresses(value)
        if pairs:
            return pairs[0]
    return "", ""


def form_digest(form: Form, skip: tuple[str, ...] = ()) -> str:
    """sha256 of a form's field names and contents (not its boundary), ``skip`` left out: the
    dedupe key of a post that carries no header block, stable across the provider's retries."""
    h = hashlib.sha256()
    for part in form.parts:
        if part.name not in skip:
            for chunk in (part.name.encode("utf-8", "surrogatepass"), part.content):
                h.update(len(chunk).to_bytes(8, "big"))
                h.update(chunk)
    return h.hexdigest()


def content_fingerprint(fields) -> str:
    """sha256 of a parsed-mode mail's content: (name, value) pairs, a value text, bytes or None
    (absent). Providers pass from, to, cc, subject, text, html and each attachment's name, size
    and bytes, never the form or JSON around them, so a retry fingerprints the same."""
    h = hashlib.sha256()
    for name, value in fields:
        if value is None:
            continue
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        for chunk in (name.encode(), raw):
            h.update(len(chunk).to_bytes(8, "big"))
            h.update(chunk)
    return h.hexdigest()


def attachment_fields(parts) -> list[tuple[str, str | bytes]]:
    """The content_fingerprint pairs of attachments given as (name, bytes)."""
    out: list[tuple[str, str | bytes]] = []
    for name, content in parts:
        out += [("attachment", name), ("size", str(len(content))), ("bytes", content)]
    return out


def verdict(value: str) -> str:
    """A provider's pass/fail word normalized to our vocabulary (lower-case first word)."""
    word = (value or "").strip().split(None, 1)
    return word[0].lower().strip(";,()") if word else ""


def sha256(data: bytes | str) -> str:
    """Hex sha256 of bytes or UTF-8 text."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()
