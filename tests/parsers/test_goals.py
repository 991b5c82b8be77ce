"""parsers.goals: reply lines that close ("done 1") or carry ("2 -> tomorrow") the listed goals."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.goals import goal_marks


@pytest.mark.parametrize(
    ("line", "marks"),
    [
        ("done 1", ((1, "done"),)),
        ("Done #2.", ((2, "done"),)),
        ("1 done", ((1, "done"),)),
        ("1: done!", ((1, "done"),)),
        ("✓ 2", ((2, "done"),)),
        ("✔2", ((2, "done"),)),
        ("[x] 3", ((3, "done"),)),
        ("- done 1, 3", ((1, "done"), (3, "done"))),
        ("done 1 and 2", ((1, "done"), (2, "done"))),
        ("2 -> tomorrow", ((2, "carry"),)),
        ("2 → tomorrow", ((2, "carry"),)),
        ("3 => next", ((3, "carry"),)),
        ("carry 1", ((1, "carry"),)),
        ("1 still open", ((1, "carry"),)),
    ],
)
def test_a_line_closes_or_carries_the_goals_it_numbers(line, marks):
    got = goal_marks(f"Shipped the export\n{line}\nReviewed PRs", 3)
    assert got.marks == marks
    assert got.text == "Shipped the export\nReviewed PRs"


@pytest.mark.parametrize(
    "line", ["done with 1 bug left", "1. Shipped the export", "Fixed 2 bugs", "tomorrow: plan 2", "done"]
)
def test_a_line_that_only_looks_like_a_mark_stays_an_entry(line):
    got = goal_marks(line, 3)
    assert got.marks == () and got.text == line


def test_a_number_no_listed_goal_has_is_noted_and_changes_nothing():
    got = goal_marks("done 4", 3)
    assert got.marks == () and got.text == "" and "no goal 4" in got.notes[0]


def test_with_no_goals_listed_the_text_is_left_as_it_is():
    assert goal_marks("done 1", 0).text == "done 1"


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), listed=st.integers(0, 12))
def test_any_text_gives_marks_within_the_list_and_never_raises(text, listed):
    got = goal_marks(text, listed)
    assert all(1 <= n <= listed and a in ("done", "carry") for n, a in got.marks)
    assert len(got.text) <= len(text.replace("\r\n", "\n"))
