"""Reply text -> entry drafts: one per bullet or line, with kind, #tags and @mentions.

Pure and lenient like every parser: any text gives a list, possibly empty.
Bullets (``-``, ``*``, ``•``, ``1.``, ``1)``, ``[x]``, ``[ ]``) start entries;
wrapped lines are joined to the entry above; greetings and sign-offs are
dropped; a "Goal:" / "Tomorrow:" or "Blocked:" / "Blocker:" prefix sets the
kind and is removed, and a line holding only such a prefix sets the kind of
the bullets under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from parsers.signature import SIGN_OFF

KINDS = ("done", "goal", "blocker")

# Prefixes that set an entry's kind, "theirs -> ours", matched case-insensitively before a colon.
KIND_PREFIXES = {
    "done": "done", "today": "done", "did": "done",
    "goal": "goal", "goals": "goal", "tomorrow": "goal", "next": "goal", "plan": "goal", "todo": "goal",
    "blocked": "blocker", "blocker": "blocker", "blockers": "blocker", "blocking": "blocker",
}  # fmt: skip
_PREFIX = re.compile(r"^({})\s?:\s*".format("|".join(sorted(KIND_PREFIXES, key=len, reverse=True))), re.I)

# A bullet, then maybe a task box: "- ", "* ", "• ", "1. ", "2) ", "[x] ", "- [ ] ".
_BULLET = re.compile(r"^\s*(?:[-*•+·▪◦‣–—]|\d{1,3}[.)])\s+")
_BOX = re.compile(r"^\s*\[([ xX✓✔]?)\]\s*")
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings|hola|bonjour|salut|hallo"
    r"|moin|ciao|hej|hei)\b[^.!?]{0,40}[,!:.]?\s*$",
    re.I,
)
_SEPARATOR = re.compile(r"^[\s\-_=*~—–#]*$")
# The sign comes first and what may not stand before it is looked behind from after it: a pattern
# that starts with a literal is searched for that character (fast), one that starts with a
# look-behind is tried at every position of the text (about 40x slower on a 4,000-character line).
_TAG = re.compile(r"#(?<![\w&#/]#)([^\W\d_][\w-]*\w|[^\W\d_])")
_MENTION = re.compile(r"@(?<![\w.@/]@)([A-Za-z0-9_](?:[\w.-]*[\w])?)")
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")


@dataclass(frozen=True)
class EntryDraft:
    """One entry before it is stored: its text, kind ("done" | "goal" | "blocker"), tags, mentions and
    the question it answers."""

    text: str
    kind: str = "done"  # done | goal | blocker
    tags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    question: int = 0  # which of the team's questions it answers (parsers.answers), from 0


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@lru_cache(maxsize=256)  # a line is read as a draft, then for its entry (tags_of, then mentions_of)
def tags_and_mentions(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The #tags (lower-case) and @mentions of one entry's text, each unique, in order."""
    return _unique(t.lower() for t in _TAG.findall(text)), _unique(_MENTION.findall(text))


def _draft(text: str, kind: str) -> EntryDraft | None:
    text = " ".join(text.split())
    m = _PREFIX.match(text)
    if m:
        kind, text = KIND_PREFIXES[m.group(1).lower()], text[m.end() :]
    if not text:
        return None
    tags, mentions = tags_and_mentions(text)
    return EntryDraft(text=text, kind=kind, tags=tags, mentions=mentions)


def split_entries(text: str) -> list[EntryDraft]:
    """Split a reply's text into entry drafts, in the order written."""
    pieces: list[tuple[str, str]] = []  # (text, kind) before tags are read
    section = "done"  # kind set by a line like "Tomorrow:"
    bulleted = False  # whether the entry being built started with a bullet
    last_line = ""
    after_blank = False  # a paragraph that does not start with a bullet ends a section
    for raw in (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if _SEPARATOR.match(line):
            last_line, after_blank = "", True
            continue
        if SIGN_OFF.match(line):
            break  # a sign-off ends the entries; what follows is a name
        if not pieces and _GREETING.match(line):
            continue
        header = _PREFIX.match(line.strip())
        if header and not line.strip()[header.end() :]:
            section = KIND_PREFIXES[header.group(1).lower()]
            last_line = ""
            continue
        body, kind, is_bullet = line.strip(), section, False
        bullet = _BULLET.match(line)
        if bullet:
            body, is_bullet = line[bullet.end() :], True
        box = _BOX.match(body)
        if box:
            body, is_bullet = body[box.end() :], True
            kind = "done" if box.group(1).strip() else "goal"
        if after_blank and not is_bullet:
            section = kind = "done"
        after_blank = False
        continuation = (
            last_line
            and not is_bullet
            and pieces
            and (
                raw[:1] in (" ", "\t")
                or (bulleted or not _SENTENCE_END.search(last_line))
                and body[:1].islower()
            )
        )
        if continuation:
            pieces[-1] = (pieces[-1][0] + " " + body.strip(), pieces[-1][1])
        else:
            pieces.append((body, kind))
            bulleted = is_bullet
        last_line = line
    drafts = (_draft(t, k) for t, k in pieces)
    return [d for d in drafts if d is not None]
