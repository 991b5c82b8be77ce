"""A reply cut again by a person: from the lines the extractor read (``parsers.reply.Reply.lines``)
and the first line not kept, the reply's text and the text cut away.

Pure and total: a ``cut_at`` out of range is taken as the nearest end (the caller, who asked a
person for it, says what was wrong). The text is joined as the extractor joins HTML lines: blank
runs collapsed to one, blank lines at both ends dropped, so paragraphs stay paragraphs.
"""

from __future__ import annotations

from collections.abc import Sequence


def _join(lines: Sequence[str]) -> str:
    out: list[str] = []
    for line in lines:
        if not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def clamp(lines: Sequence[str], cut_at: int | None) -> int:
    """``cut_at`` within 0..len(lines); None (nothing cut) is len(lines)."""
    return len(lines) if cut_at is None else max(0, min(cut_at, len(lines)))


def kept_text(lines: Sequence[str], cut_at: int | None) -> str:
    """The reply's text when it ends before line ``cut_at`` (None: nothing cut)."""
    return _join(lines[: clamp(lines, cut_at)])


def cut_text(lines: Sequence[str], cut_at: int | None) -> str:
    """What a cut before line ``cut_at`` leaves out ('' when nothing is cut)."""
    return _join(lines[clamp(lines, cut_at) :])


def last_kept(lines: Sequence[str], cut_at: int | None) -> int | None:
    """The index of the last line a cut before ``cut_at`` keeps that holds text (None: none does)."""
    for i in range(clamp(lines, cut_at) - 1, -1, -1):
        if lines[i].strip():
            return i
    return None
