"""Text a database column can store, the one home of that rule.

PostgreSQL refuses NUL characters in text, and a lone surrogate (what a JSON ``\\ud800`` escape or
a ``surrogateescape`` decode leaves) cannot be encoded as UTF-8; hostile mail and payloads carry
both. What we were sent and must keep is made storable (``storable``: NUL as U+FFFD, or dropped
where a value is compared as an identifier, and each lone surrogate as ``?``); what a person or an
application asks us to store is refused with the reason instead (``unstorable``), so an error can
name the field.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(value: str) -> bool:
    # UTF-8 encoding fails on a lone surrogate and on nothing else: C speed, where the pattern's
    # search took 20 us per 4,000 characters (a reply's text, kept several times per message)
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored in a text column, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if _has_surrogate(value):
        return "contains a lone surrogate (not valid Unicode)"
    return None


def storable(value: str, nul: str = "\ufffd") -> str:
    """``value`` with each NUL replaced by ``nul`` and each lone surrogate by ``?``."""
    if "\x00" in value:
        value = value.replace("\x00", nul)
    return _SURROGATE.sub("?", value) if _has_surrogate(value) else value
