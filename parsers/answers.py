"""A reply's text and a team's questions -> the answer to each question, and notes of what was guessed.

Pure and lenient like every parser: any text and any non-empty list of questions give one section
per question (possibly empty) and never raise. The answer to each question is found, in this order:

1. **headings**: a line that is a question as the reminder asked it (numbered or not, quoted with
   ``>``, in bold, with or without its "?"), a bare number ("1.", "Q2:", "(3)"), or the label of a
   question's kind ("Done:", "Next:", "Blocked:"); what follows it, up to the next heading, answers
   that question (a label with text after it on the line answers it on that line);
2. **a numbered list** "1. ... 2. ..." whose numbers are all questions' numbers;
3. **in order**: paragraphs (split at blank lines) answer the questions one after another, when
   there are no more of them than questions.

Whatever cannot be placed (text before the first heading, more paragraphs than questions) goes to
the first question, and a note says so. With one question the whole text answers it, unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from parsers.entries import KIND_PREFIXES
from parsers.signature import SIGN_OFF

# Words that make a question one about plans (its answers are goals) or blockers, "theirs -> ours".
_GOAL_WORDS = re.compile(r"\b(next|tomorrow|plan|plans|planning|goal|goals|todo|upcoming|will you)\b", re.I)
_BLOCKER_WORDS = re.compile(r"\b(block\w*|stuck|in your way|impediments?|obstacles?)\b", re.I)

# Around a heading: quote marks, emphasis, numbering ("1.", "1)", "Q1:", "(1)", "#1"), a final colon.
_LEAD = re.compile(r"^[\s>*_#~`\"'“”‘’]*(?:(?:q(?:uestion)?\s*)?\(?#?(\d{1,2})\s*[.):\-–]?\)?\s+)?", re.I)
_BARE_NUMBER = re.compile(r"^[\s>*_#]*(?:q(?:uestion)?\s*)?\(?#?(\d{1,2})\s*[.):\-–]?\)?[\s*_:]*$", re.I)
_LIST_ITEM = re.compile(r"^\s*\(?(\d{1,2})[.)]\s+(\S.*)$")
_TRAIL = re.compile(r"[\s*_`\"'“”‘’:?.!]+$")
_LABEL = re.compile(r"^[\s>*_#]*([A-Za-z]+)\s*[*_]*\s*:[*_]*\s*(.*)$")
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings|hola|bonjour|salut|hallo"
    r"|moin|ciao|hej|hei)\b[^.!?]{0,40}[,!:.]?\s*$",
    re.I,
)
SIMILAR = 0.82  # how close a line must be to a question (difflib ratio, on lower-cased words)


@dataclass(frozen=True)
class Answers:
    """The text answering each question (one a question, '' when unanswered) and what was guessed."""

    sections: tuple[str, ...]
    notes: tuple[str, ...] = ()
    how: str = "single"  # single | headings | list | order | first


def question_kind(question: str) -> str:
    """The kind of entry a question's answers make: "goal" for plans, "blocker", else "done"."""
    if _BLOCKER_WORDS.search(question or ""):
        return "blocker"
    if _GOAL_WORDS.search(question or ""):
        return "goal"
    return "done"


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", (text or "").lower()))


def _heading(line: str, questions: list[str], plain: list[str]) -> tuple[int, str] | None:
    """(question index, text after the heading on its line) when ``line`` is a heading, else None."""
    bare = _BARE_NUMBER.match(line)
    if bare:
        n = int(bare.group(1))
        return (n - 1, "") if 1 <= n <= len(questions) else None
    lead = _LEAD.match(line)
    body = _TRAIL.sub("", line[lead.end() :] if lead else line)
    words = _words(body)
    if words:
        for i, q in enumerate(plain):
            if words == q or (len(words) >= 8 and SequenceMatcher(None, words, q).ratio() >= SIMILAR):
                return i, ""
    label = _LABEL.match(line)
    if label and label.group(1).lower() in KIND_PREFIXES:
        kind = KIND_PREFIXES[label.group(1).lower()]
        kinds = [question_kind(q) for q in questions]
        if kinds.count(kind) == 1:  # a label names a question only when one question has its kind
            return kinds.index(kind), label.group(2).strip()
    return None


def _by_headings(lines: list[str], questions: list[str]) -> tuple[list[list[str]], list[str]] | None:
    plain = [_words(q) for q in questions]
    sections: list[list[str]] = [[] for _ in questions]
    current, found, before = None, False, []
    for line in lines:
        head = _heading(line, questions, plain) if line.strip() else None
        if head is not None:
            current, found = head[0], True
            if head[1]:
                sections[current].append(head[1])
            continue
        (before if current is None else sections[current]).append(line)
    if not found:
        return None
    notes = []
    if any(line.strip() for line in before):
        if not all(_GREETING.match(line) for line in before if line.strip()):
            notes.append("text before the first question's heading was put under question 1")
            sections[0] = before + [""] + sections[0]
    return sections, notes


def _by_list(lines: list[str], n: int) -> list[list[str]] | None:
    """Items "1. ..", "2. .." (with wrapped lines) each answering its question, when every number
    present is a question's number and appears once, in order."""
    sections: list[list[str]] = [[] for _ in range(n)]
    current, seen = None, []
    for line in lines:
        item = _LIST_ITEM.match(line)
        if item:
            k = int(item.group(1))
            if not 1 <= k <= n or k in seen or (seen and k < seen[-1]):
                return None
            seen.append(k)
            current = k - 1
            sections[current].append(item.group(2))
        elif line.strip():
            if current is None:
                if _GREETING.match(line):
                    continue
                return None
            sections[current].append(line)
    return sections if len(seen) >= 2 else None


def _paragraphs(lines: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            out[-1].append(line)
        elif out[-1]:
            out.append([])
    paras = [p for p in out if p]
    if paras and all(_GREETING.match(line) for line in paras[0]):
        paras = paras[1:]
    return paras


def _until_sign_off(text: str) -> tuple[list[str], list[str]]:
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i, line in enumerate(lines):
        if SIGN_OFF.match(line):
            return lines[:i], lines[i:]
    return lines, []


def _joined(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def map_answers(text: str, questions: list[str] | tuple[str, ...]) -> Answers:
    """Each question's answer in ``text`` (a reply's new text, quote and signature already cut)."""
    questions = list(questions) or [""]
    n = len(questions)
    if n == 1:
        return Answers((text or "",))
    lines, tail = _until_sign_off(text)
    headed = _by_headings(lines, questions)
    if headed is not None:
        sections, notes = headed
        return Answers(tuple(_joined(s) for s in sections), tuple(notes), "headings")
    listed = _by_list(lines, n)
    if listed is not None:
        return Answers(tuple(_joined(s) for s in listed), (), "list")
    paras = _paragraphs(lines)
    if len(paras) <= n:
        sections = [_joined(p) for p in paras] + [""] * (n - len(paras))
        return Answers(tuple(sections), (), "order")
    note = (
        f"the reply has {len(paras)} paragraphs for {n} questions and no question headings: "
        "all of it was put under question 1"
    )
    return Answers((_joined(lines + tail),) + ("",) * (n - 1), (note,), "first")
