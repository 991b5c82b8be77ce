"""A team's own questions and the goals carried forward, end to end through real mail: the reminder
asks the questions and lists yesterday's goals -> replies in Gmail, Outlook and Apple Mail shapes
(plain and HTML) through the inbound path -> entries under their questions, goals closed -> the next
digest shows the sections and the goals still carried."""

from datetime import date, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from app.checkins import teams
from app.checkins.outgoing import digest_now, remind_now
from app.db import session
from app.models import Entry, InboundMessage, Member
from app.settings import get_settings
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.app.web.conftest import AUTH
from tests.conftest import FIXED_NOW

DAY1 = date(2026, 11, 23)
DAY2 = DAY1 + timedelta(days=1)


def _headers(reminder, who: str, content_type: str) -> str:
    return (
        f"From: {who.title()} <{who}@example.com>\r\nTo: {reminder['Reply-To']}\r\n"
        f"Subject: Re: {reminder['Subject']}\r\nIn-Reply-To: {reminder['Message-ID']}\r\n"
        f"Message-ID: <reply-{who}-{reminder['Message-ID'].strip('<>')}>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {content_type}; charset=utf-8\r\n\r\n"
    )


def _plain(reminder) -> str:
    return reminder.get_body(("plain",)).get_content()


def gmail_plain(reminder, who: str, text: str) -> bytes:
    quoted = "\n".join("> " + line for line in _plain(reminder).splitlines())
    body = f"{text}\n\nOn Mon, Nov 23, 2026 at 5:00 PM donebox <donebox@mail.test> wrote:\n{quoted}\n"
    return (_headers(reminder, who, "text/plain") + body.replace("\n", "\r\n")).encode()


def outlook_html(reminder, who: str, text: str) -> bytes:
    paras = "".join(f'<p class="MsoNormal">{line or "&nbsp;"}</p>' for line in text.split("\n"))
    quote = "".join(f'<p class="MsoNormal">{line}</p>' for line in _plain(reminder).splitlines())
    body = (
        f'<html><body><div class="WordSection1">{paras}'
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt"><p class="MsoNormal"><b>From:</b> donebox '
        "&lt;donebox@mail.test&gt;<br><b>Sent:</b> Tuesday, November 24, 2026 5:00 PM<br><b>To:</b> Ada<br>"
        f"<b>Subject:</b> {reminder['Subject']}</p></div>{quote}</div></body></html>"
    )
    return (_headers(reminder, who, "text/html") + body).encode()


def apple_plain(reminder, who: str, text: str) -> bytes:
    quoted = "\n".join("> " + line for line in _plain(reminder).splitlines())
    body = (
        f"{text}\n\nSent from my iPhone\n\n"
        f"> On Nov 23, 2026, at 17:00, donebox <donebox@mail.test> wrote:\n>\n{quoted}\n"
    )
    return (_headers(reminder, who, "text/plain") + body.replace("\n", "\r\n")).encode()


def gmail_html(reminder, who: str, text: str) -> bytes:
    typed = "".join(f"<div>{line}</div>" if line else "<div><br></div>" for line in text.split("\n"))
    quote = "".join(f"<div>{line or '<br>'}</div>" for line in _plain(reminder).splitlines())
    body = (
        f'<div dir="ltr">{typed}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, '
        "Nov 24, 2026 at 5:00 PM donebox &lt;donebox@mail.test&gt; wrote:<br></div>"
        '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid">'
        f"{quote}</blockquote></div>"
    )
    return (_headers(reminder, who, "text/html") + body).encode()


def outlook_plain(reminder, who: str, text: str) -> bytes:
    body = (
        f"{text}\n\n________________________________\nFrom: donebox <donebox@mail.test>\n"
        f"Sent: Tuesday, November 24, 2026 5:00 PM\nTo: {who.title()}\nSubject: {reminder['Subject']}\n\n"
        f"{_plain(reminder)}\n"
    )
    return (_headers(reminder, who, "text/plain") + body.replace("\n", "\r\n")).encode()


def apple_html(reminder, who: str, text: str) -> bytes:
    typed = "".join(f"<div>{line}</div>" if line else "<div><br></div>" for line in text.split("\n"))
    quote = "".join(f"<div>{line or '<br>'}</div>" for line in _plain(reminder).splitlines())
    body = (
        f'<html><body style="word-wrap: break-word;">{typed}<div><br><blockquote type="cite"><div>On Nov 24, '
        "2026, at 17:00, donebox &lt;donebox@mail.test&gt; wrote:</div><br>"
        f"{quote}</blockquote></div></body></html>"
    )
    return (_headers(reminder, who, "text/html") + body).encode()


CLIENTS = {
    "gmail plain": gmail_plain,
    "gmail html": gmail_html,
    "outlook plain": outlook_plain,
    "outlook html": outlook_html,
    "apple plain": apple_plain,
    "apple html": apple_html,
}


def remind(client, now) -> dict:
    """The reminders of ``now``'s day, by recipient's name."""
    from jobs.enqueue import enqueue_deliveries

    sent_before = len(client.sent)
    with session() as s:
        ids = remind_now(s, now=now, settings=get_settings())
    enqueue_deliveries(ids)
    drain()
    mails = [message_from_bytes(m.as_bytes(), policy=policy.default) for m in client.sent[sent_before:]]
    return {m["To"].split("@")[0]: m for m in mails}


def post(client, raw: bytes) -> None:
    """Post a reply through the inbound path; it must be processed."""
    assert client.post("/inbound/raw", content=raw, headers=AUTH).status_code == 202
    drain()
    with session() as s:
        row = s.execute(select(InboundMessage).order_by(InboundMessage.id.desc())).scalars().first()
        assert (row.state, row.error) == ("processed", ""), row.reply_text


def entries_of(day: date) -> list[tuple[str, str, int, str]]:
    with session() as s:
        rows = s.execute(select(Entry).where(Entry.day == day).order_by(Entry.id)).scalars()
        return [(e.text, e.kind, e.question, e.closed_as) for e in rows]


def test_questions_and_goals_go_round_the_loop_through_real_mail(db, sent):
    from app.web.factory import create_app
    from jobs.enqueue import enqueue_deliveries

    ada = make_team()
    with session() as s:
        team_id = s.get(Member, ada).team_id
        teams.update_team(s, team_id, now=FIXED_NOW, questions="standup")
    with TestClient(create_app()) as client:
        client.sent = sent
        day1 = remind(client, FIXED_NOW)
        text = _plain(day1["ada"])
        assert (
            "1. What did you get done today?\n2. What will you do next?\n3. Is anything blocking you?" in text
        )
        assert "goals from yesterday" not in text  # none yet

        # Ada keeps the numbered headings (Gmail, plain); Bob answers in order (Apple Mail)
        post(
            client,
            gmail_plain(
                day1["ada"],
                "ada",
                "1. What did you get done today?\n- Shipped the billing export\n\n"
                "2. What will you do next?\n- Write the migration docs\n- Call the bank\n\n"
                "3. Is anything blocking you?\nWaiting on legal",
            ),
        )
        post(client, apple_plain(day1["bob"], "bob", "Fixed the importer\n\nRotate the API keys\n\nNothing"))
        assert entries_of(DAY1) == [
            ("Shipped the billing export", "done", 0, ""),
            ("Write the migration docs", "goal", 1, ""),
            ("Call the bank", "goal", 1, ""),
            ("Waiting on legal", "blocker", 2, ""),
            ("Fixed the importer", "done", 0, ""),
            ("Rotate the API keys", "goal", 1, ""),
            ("Nothing", "blocker", 2, ""),
        ]

        day2 = remind(client, FIXED_NOW + timedelta(days=1))
        text = _plain(day2["ada"])
        assert "Your goals from yesterday:\n  1. Write the migration docs\n  2. Call the bank" in text
        assert "1. Rotate the API keys" in _plain(day2["bob"])

        # Ada closes one goal and carries the other, answering by labels (Outlook, HTML only)
        post(
            client,
            outlook_html(
                day2["ada"],
                "ada",
                "done 1\n2 -> tomorrow\n\nDone: wrote the migration docs\nNext: call the bank\n"
                "Blocked: none today",
            ),
        )
    assert entries_of(DAY1)[1:3] == [
        ("Write the migration docs", "goal", 1, "done"),
        ("Call the bank", "goal", 1, "carried"),
    ]
    assert ("Call the bank", "goal", 1, "") in entries_of(DAY2)  # carried: a goal of the reply's day again
    assert ("wrote the migration docs", "done", 0, "") in entries_of(DAY2)

    sent.clear()
    with session() as s:
        ids = digest_now(s, now=FIXED_NOW + timedelta(days=1), settings=get_settings(), day=DAY2)
    enqueue_deliveries(ids)
    drain()
    digest = next(m for m in sent if m["To"] == "bob@example.com")
    text = digest.get_body(("plain",)).get_content()
    ada_part = text[text.index("Ada") :]
    assert ada_part.index("What did you get done today?") < ada_part.index("wrote the migration docs")
    assert ada_part.index("What will you do next?") < ada_part.index("call the bank")
    # Bob's goal of day 1 is still open: carried; Ada's are closed or carried into day 2
    assert "CARRIED GOALS" in text and "Rotate the API keys" in text[text.index("CARRIED GOALS") :]
    assert "Write the migration docs" not in text[text.index("CARRIED GOALS") :]
    html = digest.get_body(("html",)).get_content()
    assert "Carried goals" in html and "Is anything blocking you?" in html


def test_a_team_with_the_default_question_gets_no_numbers_and_no_goals(db, sent):
    from app.web.factory import create_app

    make_team()
    with TestClient(create_app()) as client:
        client.sent = sent
        day1 = remind(client, FIXED_NOW)
        post(client, gmail_plain(day1["ada"], "ada", "- Shipped it\nGoal: write docs\n1 done"))
        assert entries_of(DAY1) == [
            ("Shipped it", "done", 0, ""),
            ("write docs", "goal", 0, ""),
            ("1 done", "done", 0, ""),
        ]
        day2 = remind(client, FIXED_NOW + timedelta(days=1))
    text = _plain(day2["ada"])
    assert "What did you get done today?\n\nReply to this email with a line for each thing you did." in text
    assert "goals" not in text and "1." not in text


@pytest.mark.parametrize("shape", CLIENTS)
def test_a_reply_in_each_clients_shape_lands_under_its_questions_and_closes_a_goal(db, sent, shape):
    from app.web.factory import create_app

    ada = make_team()
    with session() as s:
        team_id = s.get(Member, ada).team_id
        teams.update_team(s, team_id, now=FIXED_NOW, questions="standup")
        for text in ("Write the docs", "Call the bank"):
            s.add(Entry(team_id=team_id, member_id=ada, day=DAY1, text=text, kind="goal", question=1))
    answer = (
        "done 2\n✓ 7\n\n1. What did you get done today?\nWrote the docs\n\n2. What will you do next?\n"
        "Plan the launch\n\n3. Is anything blocking you?\nThe bank is closed"
    )
    with TestClient(create_app()) as client:
        client.sent = sent
        reminder = remind(client, FIXED_NOW + timedelta(days=1))["ada"]
        assert "1. Write the docs\n  2. Call the bank" in _plain(reminder)
        post(client, CLIENTS[shape](reminder, "ada", answer))
    assert entries_of(DAY2) == [
        ("Wrote the docs", "done", 0, ""),
        ("Plan the launch", "goal", 1, ""),
        ("The bank is closed", "blocker", 2, ""),
    ]
    assert [e[3] for e in entries_of(DAY1)] == ["", "done"]
    with session() as s:
        notes = s.execute(select(InboundMessage.notes)).scalar_one()
    assert "goal 7 not closed: the reminder of 2026-11-24 listed 2" in notes


def test_the_digest_keeps_answers_to_questions_the_team_no_longer_asks(db, sent):
    from jobs.enqueue import enqueue_deliveries

    ada = make_team()
    with session() as s:
        team_id = s.get(Member, ada).team_id
        teams.update_team(s, team_id, now=FIXED_NOW, questions="standup")
        s.add(Entry(team_id=team_id, member_id=ada, day=DAY1, text="Shipped it", kind="done", question=0))
        s.add(
            Entry(
                team_id=team_id, member_id=ada, day=DAY1, text="Waiting on legal", kind="blocker", question=2
            )
        )
        teams.update_team(s, team_id, now=FIXED_NOW, questions=["What did you ship?", "What is in your way?"])
    with session() as s:
        ids = digest_now(s, now=FIXED_NOW, settings=get_settings(), day=DAY1)
    enqueue_deliveries(ids)
    drain()
    text = next(m for m in sent if m["To"] == "bob@example.com").get_body(("plain",)).get_content()
    assert text.index("What did you ship?") < text.index("Shipped it")
    assert text.index("What is in your way?") < text.rindex("Waiting on legal")  # after the BLOCKERS box
