"""parsers.answers: a reply's text mapped to a team's questions (headings, lists, order, the first)."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.answers import map_answers, question_kind
from parsers.entries import split_entries
from parsers.reply import extract_reply_text

STANDUP = ["What did you get done today?", "What will you do next?", "Is anything blocking you?"]
REPLIES = json.loads((Path(__file__).parents[1] / "fixtures" / "answers" / "replies.json").read_text())
MIN_ACCURACY = 0.9  # of the realistic replies whose every section comes out as written


def mapped(body: str, questions: list[str]) -> list[list[str]]:
    """The entry texts of each question's section, as the inbound path makes them from a body."""
    answers = map_answers(extract_reply_text(body), questions)
    return [[d.text for d in split_entries(section)] for section in answers.sections]


def test_the_realistic_replies_cover_each_client_format_and_way_of_answering():
    assert len(REPLIES) >= 30
    assert {(r["client"], r["format"]) for r in REPLIES} == {
        (c, f) for c in ("gmail", "outlook", "apple") for f in ("plain", "html")
    }


PLACED = [r for r in REPLIES if "known_miss" not in r]
MISSED = [r for r in REPLIES if "known_miss" in r]  # counted in the accuracy; each says why


@pytest.mark.parametrize("case", PLACED, ids=[r["name"] for r in PLACED])
def test_a_realistic_reply_puts_each_answer_under_its_question(case):
    assert mapped(case["body"], case["questions"]) == case["expected"]


@pytest.mark.parametrize("case", MISSED, ids=[r["name"] for r in MISSED])
def test_a_known_miss_still_keeps_every_answer_it_has_in_some_section(case):
    got = [e for section in mapped(case["body"], case["questions"]) for e in section]
    want = [e for section in case["expected"] for e in section]
    assert got and set(got) <= set(want)


def test_the_mapping_accuracy_on_the_realistic_replies(capsys):
    right = sum(mapped(r["body"], r["questions"]) == r["expected"] for r in REPLIES)
    entries = sum(len(s) for r in REPLIES for s in r["expected"])
    placed = sum(
        len(set(got) & set(want))
        for r in REPLIES
        for got, want in zip(mapped(r["body"], r["questions"]), r["expected"], strict=True)
    )
    with capsys.disabled():
        print(
            f"\nanswers mapped: {right}/{len(REPLIES)} replies, {placed}/{entries} entries in their section"
        )
    assert right / len(REPLIES) >= MIN_ACCURACY


def test_one_question_takes_the_whole_text_unchanged():
    text = "1. What did you get done today?\n- a\n\nNext: b"
    assert map_answers(text, ["What did you get done today?"]).sections == (text,)


def test_text_it_cannot_place_goes_to_the_first_question_with_a_note():
    got = map_answers("a\n\nb\n\nc\n\nd", STANDUP)
    assert got.sections == ("a\n\nb\n\nc\n\nd", "", "") and got.how == "first"
    assert "question 1" in got.notes[0]
    before = map_answers("Quick one.\n2. What will you do next?\nx", STANDUP)
    assert before.sections == ("Quick one.", "x", "") and before.notes


def test_a_question_about_plans_makes_goals_and_one_about_blockers_blockers():
    assert [question_kind(q) for q in STANDUP] == ["done", "goal", "blocker"]
    assert question_kind("What are you planning for next week?") == "goal"
    assert question_kind("What did you learn?") == "done"


questions_st = st.lists(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60).filter(str.strip),
    min_size=1,
    max_size=5,
    unique_by=str.lower,
)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), questions=questions_st)
def test_any_text_gives_one_section_per_question_and_never_raises(text, questions):
    got = map_answers(text, questions)
    assert len(got.sections) == len(questions)
    assert all(isinstance(s, str) for s in got.sections)


words = st.lists(
    st.sampled_from(["shipped", "the", "fix", "docs", "review", "deploy", "call"]), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(answers=st.lists(st.lists(words.map(" ".join), min_size=1, max_size=3), min_size=3, max_size=3))
def test_answers_under_their_headings_come_back_under_their_questions(answers):
    text = "\n\n".join(
        f"{i}. {q}\n" + "\n".join(lines) for i, (q, lines) in enumerate(zip(STANDUP, answers, strict=True), 1)
    )
    got = map_answers(text, STANDUP)
    assert [s.split("\n") for s in got.sections] == [list(a) for a in answers]


@settings(max_examples=200, deadline=None)
@given(answers=st.lists(st.lists(words.map(" ".join), min_size=1, max_size=3), min_size=1, max_size=3))
def test_paragraphs_answer_the_questions_in_order(answers):
    got = map_answers("\n\n".join("\n".join(p) for p in answers), STANDUP)
    assert [s.split("\n") for s in got.sections if s] == [list(a) for a in answers]
    assert not got.notes


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_no_text_is_lost_or_invented_by_the_mapping(text):
    got = map_answers(text, STANDUP)
    kept = "".join("".join(s.split()) for s in got.sections)
    assert set(kept) <= set("".join(text.split()))
