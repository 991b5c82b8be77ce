"""Moving a reply's cut (app.inbound.corrections): who may, what is refused, and the entries made
again from the corrected text through app.checkins.entries, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from app.checkins import teams
from app.checkins.reply_tokens import reply_address
from app.db import session
from app.inbound import corrections
from app.inbound.corrections import CutError, move_cut, who_may
from app.inbound.process import process_many
from app.models import Entry, InboundMessage, Member, ReplyCase, User
from app.settings import get_settings
from tests.app.inbound.test_process_batch import mail, store
from tests.conftest import FIXED_NOW

DAY = date(2026, 11, 23)
# the extractor takes "--" for a signature delimiter: a guess, and here a wrong one
WRONGLY_CUT = "Shipped the export\n--\nFixed the flaky test\nReviewed the docs\n"


def member(email: str) -> Member:
    with session() as s:
        return s.execute(select(Member).where(Member.email == email)).scalar_one()


def user(email: str, operator: bool = False) -> int:
    with session() as s:
        u = User(email=email, is_operator=operator)
        s.add(u)
        s.flush()
        return u.id


def replied(body: str, email: str = "bob@example.com", n: int = 1) -> int:
    """A reply of ``email``'s to the day's reminder, processed; its inbound id."""
    m = member(email)
    to = reply_address(get_settings().secret_key, "reply.test", m.id, DAY)
    iid = store(mail(n, to, body.replace("\n", "\r\n"), sender=f"{m.name} <{email}>"), f"cut-{n}")
    with session() as s:
        assert process_many(s, [iid], now=FIXED_NOW, settings=get_settings())[iid] == "processed"
    return iid


def made(iid: int) -> list[tuple]:
    with session() as s:
        rows = s.execute(
            select(Entry.text, Entry.kind, Entry.question).where(Entry.inbound_id == iid).order_by(Entry.id)
        ).all()
    return [tuple(r) for r in rows]


def move(iid: int, end, as_email: str, role: str | None = None):
    with session() as s:
        row = s.get(InboundMessage, iid)
        who = s.execute(select(User).where(User.email == as_email)).scalar_one()
        return move_cut(
            s, row, end, user=who, role=role or who_may(s, row, who), now=FIXED_NOW, settings=get_settings()
        )


def test_processing_keeps_the_lines_the_cut_its_rule_and_how_sure_it_was(team):
    iid = replied(WRONGLY_CUT)
    with session() as s:
        row = s.get(InboundMessage, iid)
        assert json.loads(row.reply_lines) == [
            "Shipped the export",
            "--",
            "Fixed the flaky test",
            "Reviewed the docs",
            "",
            "",
        ]
        assert (row.cut_at, row.cut_rule, row.cut_confidence, row.reply_html) == (
            1,
            "signature:delimiter",
            "low",
            False,
        )
        assert corrections.cuts(s, [iid, None]) == {iid: corrections.Cut("low", "signature:delimiter")}
        assert corrections.cuts(s, [iid])[iid].guessed
    assert made(iid) == [("Shipped the export", "done", 0)]


def test_the_author_moves_the_cut_and_the_entries_are_made_again_from_the_text_above(team):
    iid = replied(WRONGLY_CUT)
    user("bob@example.com")
    bob = member("bob@example.com").id
    moved = move(iid, "4", "bob@example.com")
    assert (moved.before, moved.after, moved.deleted, moved.made) == (1, 4, 1, 3)
    assert made(iid) == [
        ("Shipped the export", "done", 0),
        ("Fixed the flaky test", "done", 0),
        ("Reviewed the docs", "done", 0),
    ]
    with session() as s:
        row = s.get(InboundMessage, iid)
        assert row.reply_text == "Shipped the export\n--\nFixed the flaky test\nReviewed the docs"
        assert (row.cut_at, row.cut_rule, row.cut_confidence) == (4, "corrected", "high")
        assert (
            "cut moved by the author: the reply ends at line 4 (it ended at line 1, signature:delimiter)"
            in row.notes
        )
        case = s.execute(select(ReplyCase)).scalar_one()
        assert (case.inbound_id, case.by_role, case.kind, case.cut_before, case.cut_at) == (
            iid,
            "author",
            "plain",
            1,
            4,
        )
        assert (case.rule_before, case.confidence_before) == ("signature:delimiter", "low")
        assert case.input.replace("\r\n", "\n").strip() == WRONGLY_CUT.strip()
        assert case.expected == row.reply_text and case.from_name == "Bob"
        assert case.member_id == bob and case.created_at == FIXED_NOW
        assert not corrections.cuts(s, [iid])[iid].guessed
    # moved up again, by an admin: the entries follow, and each correction is a case of its own
    user("ada@example.com")
    again = move(iid, 1, "ada@example.com")
    assert (again.before, again.after, again.deleted, again.made) == (4, 1, 3, 1)
    assert made(iid) == [("Shipped the export", "done", 0)]
    with session() as s:
        assert [c.by_role for c in s.execute(select(ReplyCase).order_by(ReplyCase.id)).scalars()] == [
            "author",
            "admin",
        ]
        row = s.get(InboundMessage, iid)
        assert row.quoted_text == "--\nFixed the flaky test\nReviewed the docs" and row.signature_text == ""
        assert [c.cut_at for c, _ in corrections.history(s, iid)] == [4, 1]
        assert [who for _, who in corrections.history(s, iid)] == ["bob@example.com", "ada@example.com"]


def test_a_corrected_reply_maps_its_answers_to_the_teams_questions_and_closes_goals_as_processing_does(team):
    with session() as s:
        teams.update_team(s, team.id, now=FIXED_NOW, questions="standup")
        bob = s.execute(select(Member).where(Member.email == "bob@example.com")).scalar_one()
        goal = Entry(
            team_id=team.id, member_id=bob.id, day=date(2026, 11, 20), text="Fix the CI", kind="goal"
        )
        s.add(goal)
        s.flush()
        goal_id = goal.id
    iid = replied("Shipped the export\n\nWrite the docs\n\n--\nThe CI runner is down\ndone 1\n")
    assert made(iid) == [("Shipped the export", "done", 0), ("Write the docs", "goal", 1)]
    user("bob@example.com")
    move(iid, 7, "bob@example.com")  # down to "done 1"
    assert made(iid) == [
        ("Shipped the export", "done", 0),
        ("Write the docs", "goal", 1),
        ("The CI runner is down", "blocker", 2),
    ]
    with session() as s:
        assert (
            s.get(Entry, goal_id).closed_as == "done"
        )  # the reminder's goal 1, closed by the corrected text


def test_who_may_see_and_move_a_cut(team):
    iid = replied(WRONGLY_CUT)
    with session() as s:
        row = s.get(InboundMessage, iid)
        for email, operator in (
            ("bob@example.com", False),
            ("ada@example.com", False),
            ("op@example.com", True),
        ):
            s.add(User(email=email, is_operator=operator))
        s.add(User(email="olga@example.com"))
        s.add(User(email="eve@example.com"))
        s.flush()
        users = {u.email: u for u in s.execute(select(User)).scalars()}
        assert who_may(s, row, users["bob@example.com"]) == "author"
        assert who_may(s, row, users["ada@example.com"]) == "admin"
        assert who_may(s, row, users["op@example.com"]) == "operator"
        with pytest.raises(CutError) as olga:
            who_may(s, row, users["olga@example.com"])  # an observer of the team: not her reply
        assert olga.value.status == 403 and "Only the member who wrote this reply" in str(olga.value)
        with pytest.raises(CutError) as eve:
            who_may(s, row, users["eve@example.com"])  # in no team of the author's
        assert eve.value.status == 404


@pytest.mark.parametrize(
    ("end", "status", "reason"),
    [
        ("", 422, "Pick the line where your reply ends."),
        ("two", 422, "Pick the line where your reply ends."),
        ("0", 422, "There is no line 0 in this reply: pick one of lines 1 to 6."),
        ("7", 422, "There is no line 7 in this reply: pick one of lines 1 to 6."),
        ("-1", 422, "There is no line -1"),
        ("1", 422, "The reply already ends at line 1."),
    ],
)
def test_a_line_that_is_not_one_of_the_reply_or_no_change_is_refused_with_the_reason(
    team, end, status, reason
):
    iid = replied(WRONGLY_CUT)
    user("bob@example.com")
    with pytest.raises(CutError) as e:
        move(iid, end, "bob@example.com")
    assert e.value.status == status and str(e.value).startswith(reason)
    assert made(iid) == [("Shipped the export", "done", 0)]
    with session() as s:
        assert s.execute(select(ReplyCase)).first() is None


def test_a_cut_keeping_no_text_and_a_message_that_is_no_processed_reply_are_refused(team):
    iid = replied("\nShipped the export\n-- \nAda\n")
    user("bob@example.com")
    with pytest.raises(CutError) as blank:
        move(iid, 1, "bob@example.com")  # the first line is blank
    assert blank.value.status == 422 and "Line 1 keeps no text" in str(blank.value)
    with session() as s:
        row = s.get(InboundMessage, iid)
        row.reply_lines = ""  # processed before cuts were kept
        s.add(row)
    with pytest.raises(CutError) as old:
        move(iid, 2, "bob@example.com")
    assert old.value.status == 409 and "lines were not kept" in str(old.value)
    with session() as s:
        s.get(InboundMessage, iid).state = "received"
    with pytest.raises(CutError) as waiting:
        move(iid, 2, "bob@example.com")
    assert waiting.value.status == 409 and "this message is received" in str(waiting.value)


def test_two_corrections_at_once_take_turns_and_leave_the_second_ones_entries_only(team):
    import threading
    import time

    iid = replied(WRONGLY_CUT)
    user("bob@example.com")
    user("ada@example.com")
    done = {}

    def second():
        done["moved"] = move(iid, 3, "ada@example.com")  # waits for the first one's lock

    with session() as s:
        row = s.get(InboundMessage, iid)
        bob = s.execute(select(User).where(User.email == "bob@example.com")).scalar_one()
        move_cut(s, row, 4, user=bob, role="author", now=FIXED_NOW, settings=get_settings())
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.5)  # let it reach the lock (were it later, the two would simply run in turn)
    other.join(30)
    assert done["moved"].before == 4 and done["moved"].deleted == 3
    assert made(iid) == [("Shipped the export", "done", 0), ("Fixed the flaky test", "done", 0)]


def test_an_html_only_reply_is_corrected_on_the_lines_of_its_html_and_its_case_keeps_the_html(team):
    html = "".join(f"<div>{line}</div>" for line in WRONGLY_CUT.splitlines())
    m = member("bob@example.com")
    to = reply_address(get_settings().secret_key, "reply.test", m.id, DAY)
    raw = (
        f"From: Bob <bob@example.com>\r\nTo: {to}\r\nSubject: Re: today\r\n"
        f"Message-ID: <html-1@example.com>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    ).encode()
    iid = store(raw, "html-1")
    with session() as s:
        process_many(s, [iid], now=FIXED_NOW, settings=get_settings())
    with session() as s:
        row = s.get(InboundMessage, iid)
        assert row.reply_html and json.loads(row.reply_lines)[:4] == [
            "Shipped the export", "--", "Fixed the flaky test", "Reviewed the docs"
        ]  # fmt: skip
    user("bob@example.com")
    move(iid, 4, "bob@example.com")
    assert [t for t, *_ in made(iid)] == ["Shipped the export", "Fixed the flaky test", "Reviewed the docs"]
    with session() as s:
        case = s.execute(select(ReplyCase)).scalar_one()
        assert case.kind == "html" and case.input.strip() == html


def test_a_cut_that_keeps_the_same_text_is_no_change(team):
    iid = replied("Shipped the export\nFixed the bug\n")  # nothing cut; blank lines at the end
    with session() as s:
        row = s.get(InboundMessage, iid)
        assert row.cut_at is None and json.loads(row.reply_lines)[2:] == ["", ""]
    user("bob@example.com")
    with pytest.raises(CutError) as same:
        move(iid, 2, "bob@example.com")
    assert same.value.status == 422 and str(same.value) == "The reply already ends at line 2."
    assert move(iid, 1, "bob@example.com").made == 1
