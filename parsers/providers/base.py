"""The provider adapter contract: a request payload in, dedupe keys and one ``InboundEmail`` out.

An adapter is pure: it never verifies signatures (that needs secrets and the
clock, see app/webhooks.py), never touches the network or the database. ``keys``
is cheap (it runs inside the webhook, before the 2xx); ``parse`` is the full
normalization (it runs in the process_inbound job, on the stored payload).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import HeaderParser
from email.policy import compat32
from functools import cached_property

from parsers.message import InboundEmail, addresses, headers_digest, message_ids
from parsers.providers.form import Form, parse_form


class PayloadError(ValueError):
    """Raised when a request body is not in the provider's documented format; the text says why."""


@dataclass(frozen=True)
class Keys:
    """What the webhook needs before it answers: ids to dedupe on and the raw MIME when carried."""

    provider_id: str = ""  # the provider's own id of this mail, stable across its retries
    message_id: str = ""  # the Message-ID header, ``<...>``
    envelope_to: tuple[str, ...] = ()  # SMTP RCPT TO addresses, lower-case
    raw_mime: bytes | None = None  # the whole RFC 5322 message, when the payload carries it
    header_hash: str = ""  # sha256 of the mail's header block as the provider gave it

    def __post_init__(self):
        if not self.header_hash and self.raw_mime is not None:
            object.__setattr__(self, "header_hash", headers_digest(self.raw_mime))


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
    """One inbound provider: its name in URLs and how its payloads map to our vocabulary."""

    name = ""

    def keys(self, payload: Payload) -> Keys:
        """Dedupe keys and raw MIME of a payload; raises PayloadError when it is not this provider's."""
        raise NotImplementedError

    def parse(self, payload: Payload) -> InboundEmail:
        """The normalized email of a payload that ``keys`` accepted; never raises on odd mail."""
        raise NotImplementedError


def json_field(value, what: str, default):
    """A JSON-encoded form field, or ``default`` (and no error) when it is missing or malformed."""
    if not value:
        return default
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return default
    return parsed if isinstance(parsed, type(default)) else default


def decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words decoded; left as is when they are broken."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - unknown charsets and broken encodings in hostile headers
        return value


def header_block(text: str) -> tuple[tuple[str, str], ...]:
    """A raw header block ("Name: value" lines, folded) as (name, decoded value) pairs."""
    msg = HeaderParser(policy=compat32).parsestr(text.replace("\r\n", "\n").rstrip("\n") + "\n\n")
    return tuple((k, decode_words(re.sub(r"\s*\n\s+", " ", str(v)))) for k, v in msg.items())


def first(headers, name: str) -> str:
    """The first value of header ``name`` in (name, value) pairs, or ''."""
    low = name.lower()
    return next((v for k, v in headers if k.lower() == low), "")


def threading_fields(headers) -> dict:
    """message_id, in_reply_to and references of InboundEmail taken from header pairs."""
    return {
        "message_id": (message_ids(first(headers, "Message-ID")) or ("",))[0],
        "in_reply_to": (message_ids(first(headers, "In-Reply-To")) or ("",))[0],
        "references": message_ids(first(headers, "References")),
    }


def address_list(value: str) -> tuple[str, ...]:
    """Lower-case addresses of an address-list value."""
    return tuple(a for _, a in addresses(value))


def verdict(value: str) -> str:
    """A provider's pass/fail word normalized to our vocabulary (lower-case first word)."""
    word = (value or "").strip().split(None, 1)
    return word[0].lower().strip(";,()") if word else ""


def sha256(data: bytes | str) -> str:
    """Hex sha256 of bytes or UTF-8 text."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()
