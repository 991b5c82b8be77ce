"""parsers.correction: a reply's text from the lines the extractor read and where a person cut it."""

from parsers.correction import clamp, cut_text, kept_text, last_kept
from parsers.reply import extract_reply

LINES = ("Shipped the export", "", "", "Fixed the flaky test", "", "-- ", "Ada", "")


def test_the_kept_text_is_the_lines_above_the_cut_with_blank_runs_collapsed():
    assert kept_text(LINES, 4) == "Shipped the export\n\nFixed the flaky test"
    assert kept_text(LINES, 1) == "Shipped the export"
    assert cut_text(LINES, 4) == "-- \nAda"


def test_nothing_cut_keeps_every_line_and_cuts_nothing():
    assert (
        kept_text(LINES, None)
        == kept_text(LINES, len(LINES))
        == "Shipped the export\n\nFixed the flaky test\n\n-- \nAda"
    )
    assert cut_text(LINES, None) == ""


def test_a_cut_out_of_range_is_taken_at_the_nearest_end():
    assert clamp(LINES, -3) == 0 and clamp(LINES, 99) == len(LINES) and clamp(LINES, None) == len(LINES)
    assert kept_text(LINES, -3) == "" and kept_text(LINES, 99) == kept_text(LINES, None)
    assert kept_text((), 0) == "" and cut_text((), None) == ""


def test_the_last_kept_line_with_text():
    assert last_kept(LINES, 5) == 3
    assert last_kept(LINES, 1) == 0
    assert last_kept(LINES, 0) is None
    assert last_kept(("", ""), None) is None


def test_cutting_where_the_extractor_cut_gives_its_text_again():
    for body in (
        "Shipped the export\nFixed the login bug\n\nBest,\nAda\n\nOn Mon, Nov 23, 2026 at 17:00, "
        "donebox <donebox@mail.test> wrote:\n> What did you get done today?\n",
        "Shipped the export\n--\nFixed the flaky test\nReviewed the docs\n",
        "<div>Shipped the export</div><div><br></div><div>Fixed the bug</div>"
        "<blockquote>On Monday donebox wrote: what did you get done?</blockquote>",
    ):
        reply = extract_reply(body)
        assert reply.cut_at is not None and reply.lines
        assert kept_text(reply.lines, reply.cut_at) == reply.text
