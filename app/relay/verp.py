"""VERP return paths: the envelope sender ``bounces+<token>@<host>`` names the outbound message.

The token is the message id and an HMAC-SHA256 of it under SECRET_KEY (cut to MAC_BYTES), in
lower-case base32 without padding: short, case-insensitive, and good in a local part. A bounce sent
back to that address finds its message and recipient even when it quotes nothing of the original
(app.relay.feedback). A token that does not check is never trusted: ``message_of`` says why instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "bounces+"
MAC_BYTES = 8  # 64 bits: forging one takes 2^64 tries against a mail server's patience


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.digest(secret.encode(), b"verp:" + body, hashlib.sha256)[:MAC_BYTES]


def token(message_id: int, secret: str) -> str:
    """The signed token of outbound message ``message_id``."""
    body = message_id.to_bytes(8, "big").lstrip(b"\0") or b"\0"
    return base64.b32encode(body + _mac(secret, body)).decode().rstrip("=").lower()


def address(message_id: int, host: str, secret: str) -> str:
    """The envelope sender of outbound message ``message_id``: ``bounces+<token>@<host>``."""
    return f"{PREFIX}{token(message_id, secret)}@{host.lower()}"


def message_of(addresses: Iterable[str], secret: str) -> tuple[int | None, str]:
    """(the message id a VERP address among ``addresses`` names, '') or (None, why none did: '' when
    no address was a VERP address at all, else the note about the bad one)."""
    note = ""
    for addr in addresses:
        local = (addr or "").strip().strip("<>").rpartition("@")[0].lower()
        if not local.startswith(PREFIX):
            continue
        text = local[len(PREFIX) :]
        try:
            raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
        except (binascii.Error, ValueError):
            note = f"VERP address {addr[:100]!r}: not a token, ignored"
            continue
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        # the token exactly as we write it: the unused bits of its last character count too
        canonical = 0 < len(body) <= 8 and token(int.from_bytes(body, "big"), secret) == text
        if not (canonical and hmac.compare_digest(mac, _mac(secret, body))):
            note = f"VERP address {addr[:100]!r}: bad signature, ignored"
            continue
        return int.from_bytes(body, "big"), ""
    return None, note
