"""Reply text -> entries: one per line or bullet."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


@dataclass(frozen=True)
class EntryDraft:
    """One entry before it is stored."""

    text: str
    kind: str = "done"  # done | goal | blocker
    tags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()


def split_entries(text: str) -> list[EntryDraft]:
    """One entry per non-empty line, bullets removed."""
    out = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if line:
            out.append(EntryDraft(line))
    return out
