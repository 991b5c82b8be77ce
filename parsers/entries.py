"""Reply text -> entries: one per line or bullet."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_KIND = re.compile(r"^(goal|tomorrow|blocked|blocker)\s*:\s*", re.IGNORECASE)


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
        kind = "done"
        m = _KIND.match(line)
        if m:
            kind = "goal" if m.group(1).lower() in ("goal", "tomorrow") else "blocker"
            line = line[m.end() :]
        if line:
            out.append(EntryDraft(line, kind))
    return out
