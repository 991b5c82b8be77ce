"""What a team asks: one to five questions, their presets, and a reply's answers as entry drafts.

A team without questions of its own asks DEFAULT alone, and its replies become entries exactly as
they always did. With more, the reminder numbers them, a reply is mapped to them
(``parsers.answers``) and each entry records the question it answers (Entry.question); each
question is a section of the digest. A question about plans ("What will you do next?") makes goals
(``parsers.answers.question_kind``), which the next reminders carry (app.checkins.goals).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlmodel import Session

from app.models import TeamSettings
from parsers.answers import map_answers, question_kind
from parsers.entries import EntryDraft, split_entries

DEFAULT = "What did you get done today?"
MAX_QUESTIONS = 5
MAX_QUESTION_CHARS = 200
PRESETS = {
    "default": (DEFAULT,),
    "standup": (DEFAULT, "What will you do next?", "Is anything blocking you?"),
    "weekly": (
        "What did you get done this week?",
        "What are you planning for next week?",
        "Is anything in your way?",
    ),
}


class QuestionsError(ValueError):
    """Raised with a reason naming the field ``questions`` when a team's questions are refused."""

    field = "questions"


def clean(value: str | Sequence[str]) -> tuple[str, ...]:
    """The questions given (a list, or text with one a line; a preset's name picks its questions),
    whitespace collapsed and empty lines dropped; raises QuestionsError unless there are 1 to
    MAX_QUESTIONS, each at most MAX_QUESTION_CHARS characters and all different."""
    if isinstance(value, str):
        if value.strip().lower() in PRESETS:
            return PRESETS[value.strip().lower()]
        value = value.splitlines()
    if not isinstance(value, (list, tuple)) or not all(isinstance(q, str) for q in value):
        raise QuestionsError("questions must be a list of texts")
    questions = tuple(q for q in (" ".join(v.split()) for v in value) if q)
    if not 1 <= len(questions) <= MAX_QUESTIONS:
        raise QuestionsError(f"questions: a team asks 1 to {MAX_QUESTIONS} questions, not {len(questions)}")
    for i, q in enumerate(questions, 1):
        if len(q) > MAX_QUESTION_CHARS:
            raise QuestionsError(f"questions: question {i} is longer than {MAX_QUESTION_CHARS} characters")
        if "\x00" in q:
            raise QuestionsError(f"questions: question {i} holds a NUL character")
    if len({q.lower() for q in questions}) < len(questions):
        raise QuestionsError("questions: the same question is asked twice")
    return questions


def stored(questions: Sequence[str]) -> str:
    """TeamSettings.questions for ``questions``: '' for the default alone, else one a line."""
    return "" if tuple(questions) == (DEFAULT,) else "\n".join(questions)


def of_text(value: str) -> tuple[str, ...]:
    """The questions TeamSettings.questions holds ('' -> DEFAULT alone)."""
    return tuple(q for q in (value or "").split("\n") if q) or (DEFAULT,)


def of(opts: TeamSettings | None) -> tuple[str, ...]:
    """The questions a team's options row asks (DEFAULT alone without a row or questions)."""
    return of_text(opts.questions if opts else "")


def for_teams(s: Session, team_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """{team id: questions} of the teams asked about, in one query (teams with no row: DEFAULT)."""
    ids = set(team_ids)
    out = dict.fromkeys(ids, (DEFAULT,))
    if ids:
        rows = s.execute(
            select(TeamSettings).where(TeamSettings.team_id.in_(ids), TeamSettings.questions != "")
        )
        out.update((o.team_id, of(o)) for o in rows.scalars())
    return out


def goal_question(questions: Sequence[str]) -> int | None:
    """The index of the first question whose answers are goals (carried to the next reminders)."""
    return next((i for i, q in enumerate(questions) if question_kind(q) == "goal"), None)


def drafts(text: str, questions: Sequence[str]) -> tuple[list[EntryDraft], tuple[str, ...]]:
    """A reply's entry drafts, each with the question it answers and that question's kind (unless
    its line set another, "Blocked: ..."), and notes of what the mapping guessed. With one question
    these are ``split_entries(text)`` unchanged."""
    if len(questions) <= 1:
        return split_entries(text), ()
    answers = map_answers(text, questions)
    out: list[EntryDraft] = []
    for i, (section, question) in enumerate(zip(answers.sections, questions, strict=True)):
        kind = question_kind(question)
        for d in split_entries(section):
            out.append(
                EntryDraft(d.text, kind if d.kind == "done" else d.kind, d.tags, d.mentions, question=i)
            )
    return out, answers.notes
