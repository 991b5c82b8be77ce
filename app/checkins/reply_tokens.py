"""Signed tokens: the per-member reply address ``reply+<token>@REPLY_DOMAIN`` (or the team's domain),
and a digest's ``digest+<token>@...`` (a reply to it is a comment, app.checkins.comments).

The token binds a member and a day with an HMAC over SECRET_KEY, so a reply
can be attributed without trusting the From header, and a reply to day D's
reminder counts for D even after midnight. Tokens are lower-case base32 so
mail systems that fold the local part's case do not break them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import date
from functools import lru_cache

SIG_CHARS = 16  # 80 bits of HMAC-SHA256
_TOKEN = re.compile(rf"^(\d{{1,12}})-(\d{{8}})-([a-z2-7]{{{SIG_CHARS}}})$")
DIGEST = "digest:"  # what a digest reply token's signature covers before member and day
_ADDRESS = re.compile(r"^([a-z]+)\+([^@]+)@(.+)$", re.IGNORECASE)


# Base32 writes each 5 bytes as 8 characters of their own: the first SIG_CHARS characters of the
# whole MAC's encoding are those of its first _SIG_BYTES bytes, which is all that is encoded
_SIG_BYTES = -(-SIG_CHARS // 8) * 5


# processing checks a reply's token up to three times (finding its sender, its day, whether it
# answers a digest): the signature is worked out once
@lru_cache(maxsize=4096)
def _sig(secret: str, payload: str) -> str:
    mac = hmac.digest(secret.encode(), payload.encode(), hashlib.sha256)
    return base64.b32encode(mac[:_SIG_BYTES]).decode().lower()[:SIG_CHARS]


def reply_token(secret: str, member_id: int, day: date) -> str:
    """The token for ``member_id`` answering the reminder of ``day``."""
    payload = f"{member_id}-{day:%Y%m%d}"
    return f"{payload}-{_sig(secret, payload)}"


def reply_address(secret: str, domain: str, member_id: int, day: date) -> str:
    """The Reply-To address of a reminder."""
    return f"reply+{reply_token(secret, member_id, day)}@{domain}"


def digest_reply_token(secret: str, member_id: int, day: date) -> str:
    """The token for ``member_id`` answering the digest of ``day`` (their team's): signed over
    another payload than a reminder's, so neither token stands for the other."""
    payload = f"{member_id}-{day:%Y%m%d}"
    return f"{payload}-{_sig(secret, DIGEST + payload)}"


def digest_reply_address(secret: str, domain: str, member_id: int, day: date) -> str:
    """The Reply-To address of ``member_id``'s digest of ``day``: ``digest+<token>@domain``."""
    return f"digest+{digest_reply_token(secret, member_id, day)}@{domain}"


def verify_digest_token(secret: str, token: str) -> tuple[int, date] | None:
    """(member_id, day) of a digest reply token whose signature matches, else None."""
    return verify_reply_token(secret, token, _prefix=DIGEST)


def verify_reply_token(secret: str, token: str, _prefix: str = "") -> tuple[int, date] | None:
    """(member_id, day) when the token is well-formed and its signature matches, else None."""
    m = _TOKEN.match(token.strip().lower())
    if not m:
        return None
    member, ymd, sig = m.groups()
    if not hmac.compare_digest(sig, _sig(secret, f"{_prefix}{member}-{ymd}")):
        return None
    try:
        day = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
    except ValueError:
        return None
    return int(member), day


def token_from_address(address: str, domain: str | tuple[str, ...], tag: str = "reply") -> str | None:
    """The token part of ``<tag>+<token>@domain`` (``reply+``, or ``unsubscribe+`` for the
    List-Unsubscribe mailto), or None for any other address; ``domain`` may be several (lower case)."""
    m = _ADDRESS.match(address.strip())
    domains = (domain.lower(),) if isinstance(domain, str) else domain
    if not m or m.group(1).lower() != tag or m.group(3).lower() not in domains:
        return None
    return m.group(2)


def team_reply_domain(chosen: str, accepted: tuple[str, ...]) -> str:
    """The domain of a team's reply addresses: its ``chosen`` one while inbound still accepts it
    (``accepted``: Settings.reply_domains, REPLY_DOMAIN first), else REPLY_DOMAIN, so no reminder
    ever asks for a reply that inbound would not attribute."""
    return chosen if chosen and chosen.lower() in accepted else accepted[0]
