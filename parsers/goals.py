"""Lines of a reply that close or carry the goals a reminder listed: "done 1", "1 done", "✓ 2",
"2 -> tomorrow", "done 1, 3".

Pure and lenient: ``goal_marks`` takes the reply's text and how many goals the reminder listed and
returns the marks it found, the text without those lines (the rest becomes entries as usual) and
notes for numbers no goal has. A line that only looks like one ("done with 1 bug") is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMS = r"#?\d{1,2}(?:\s*(?:,|&|and|\+)\s*#?\d{1,2})*"
_DONE = r"(?:done|did|closed?|finished|complete[d]?|✓|✔|✅|☑|\[x\])"
_CARRY = r"(?:->|→|=>|>>|carry|carried|carry over|moved? to|still open|tomorrow|next)"
_LATER = r"(?:tomorrow|next|later|carry|carried|again|still open)"
_QUOTE = r"^[\s\-*•]*"
# "theirs -> ours": each pattern, matched against a whole line, gives the action of its numbers
MARKS = (
    (re.compile(_QUOTE + _DONE + r"\s*:?\s*(" + _NUMS + r")[\s.!]*$", re.I), "done"),  # done 1 / ✓ 2
    (re.compile(_QUOTE + r"(" + _NUMS + r")\s*[:.)\-]?\s*" + _DONE + r"[\s.!]*$", re.I), "done"),  # 1 done
    (re.compile(_QUOTE + r"(" + _NUMS + r")\s*" + _CARRY + r"(?:\s*" + _LATER + r")?[\s.!]*$", re.I),
     "carry"),  # 2 -> tomorrow
    (re.compile(_QUOTE + r"(?:carry|carried|move)\s*:?\s*(" + _NUMS + r")"
                r"(?:\s*(?:->|→|to)\s*" + _LATER + r")?[\s.!]*$", re.I), "carry"),  # carry 2
)  # fmt: skip


@dataclass(frozen=True)
class GoalMarks:
    """What a reply says of the listed goals: (number from 1, "done" | "carry") in order of writing,
    its text without those lines, and notes (numbers no listed goal has)."""

    marks: tuple[tuple[int, str], ...]
    text: str
    notes: tuple[str, ...] = ()


def goal_marks(text: str, listed: int) -> GoalMarks:
    """The marks on goals 1..``listed`` in ``text``; with no goals listed, the text as it is."""
    if listed <= 0 or not text:
        return GoalMarks((), text or "")
    marks: list[tuple[int, str]] = []
    kept: list[str] = []
    notes: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        for pattern, action in MARKS:
            m = pattern.match(line)
            if m:
                for num in re.findall(r"\d+", m.group(1)):
                    k = int(num)
                    if 1 <= k <= listed:
                        marks.append((k, action))
                    else:
                        notes.append(f"{line.strip()[:80]!r}: no goal {k} was listed (1-{listed})")
                break
        else:
            kept.append(line)
    return GoalMarks(tuple(marks), "\n".join(kept), tuple(notes))
