"""What a reply to a digest is about: the entry it quotes or the member it names. Pure, never raises.

A reply to a team's digest becomes a comment (app.checkins.comments). It is on an entry when
the reply quotes it: the quoted line right above the reply's first words (an answer written
between quoted lines), else the one entry the quote holds when the writer cut the quote down
to it. Otherwise on a member when the reply names exactly one (``@ada``, or the name as
words: "Ada", "Ada Lovelace"), else on the day.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MIN_MATCH = 4  # an entry's text shorter than this is too common to find in a quote
MATCH_CHARS = 80  # the start of an entry's text looked for (digests cut long entries)
MAX_LINES = 2000  # a body's lines read

_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_BULLET = re.compile(r"^\s*(?:[-*•!]\s*)?(?:\[(?:goal|blocked)\]\s*|goal:\s*|blocked:\s*)?")
_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w@]+")
_MENTION = re.compile(r"(?<![\w@.])@([\w][\w.-]{0,63})")


def norm(text: str) -> str:
    """Lower case, one space between words, no bullet or kind marker in front."""
    return _SPACE.sub(" ", _BULLET.sub("", text.lower())).strip()


def _quoted_lines(body: str) -> list[tuple[int, bool, str]]:
    """(line number, quoted?, normalized text) of each non-empty line."""
    out = []
    for i, line in enumerate(body.splitlines()[:MAX_LINES]):
        m = _QUOTE.match(line)
        rest = line[m.end() :] if m else line
        if rest.strip():
            out.append((i, bool(m), norm(rest)))
    return out


def _entry_in(line: str, entries: Sequence[tuple[int, str]]) -> int | None:
    """The entry whose text ``line`` shows (the longest match: one entry's text may hold another's)."""
    best, best_len = None, 0
    for entry_id, text in entries:
        key = norm(text)[:MATCH_CHARS]
        if len(key) >= MIN_MATCH and key in line and len(key) > best_len:
            best, best_len = entry_id, len(key)
    return best


def quoted_entry(body: str, reply: str, entries: Sequence[tuple[int, str]]) -> int | None:
    """The id of the entry (of ``entries``: (id, text)) the reply in ``body`` quotes, or None.

    ``body``: the mail's whole plain text; ``reply``: the new text extraction kept."""
    try:
        lines = _quoted_lines(body or "")
        first = next((norm(x) for x in (reply or "").splitlines() if x.strip()), "")
        if first:
            for n, (_, quoted, text) in enumerate(lines):
                if not quoted and text == first and n and lines[n - 1][1]:  # an answer below a quoted line
                    found = _entry_in(lines[n - 1][2], entries)
                    if found is not None:
                        return found
        shown = {
            e for _, quoted, text in lines if quoted for e in [_entry_in(text, entries)] if e is not None
        }
        return shown.pop() if len(shown) == 1 else None
    except Exception:  # noqa: BLE001 - a parser answers None, never an error
        return None


def named_member(reply: str, members: Sequence[tuple[int, str, str]]) -> int | None:
    """The id of the one member (of ``members``: (id, name, email)) the reply names, or None.

    ``@handle`` first: a first name, a whole name without spaces or an address's local part;
    then a name written out as words. Two members named is no answer."""
    try:
        text = (reply or "")[:20_000]
        handles = {h.lower().rstrip(".") for h in _MENTION.findall(text)}
        found = set()
        for mid, name, email in members:
            words = name.lower().split()
            own = {email.lower().split("@")[0], "".join(words), *(words[:1])}
            if handles & own:
                found.add(mid)
        if found:
            return found.pop() if len(found) == 1 else None
        low = " " + _SPACE.sub(" ", _NON_WORD.sub(" ", text.lower())) + " "
        for mid, name, _ in members:
            words = name.lower().split()
            if words and (f" {' '.join(words)} " in low or f" {words[0]} " in low):
                found.add(mid)
        return found.pop() if len(found) == 1 else None
    except Exception:  # noqa: BLE001 - as above
        return None
