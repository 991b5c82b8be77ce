"""The check-in loop in one process: reminder -> reply -> entries -> digest."""

from datetime import date
from email import message_from_bytes, policy

from sqlalchemy import select
from starlette.testclient import TestClient

from app.checkins.outgoing import digest_now, remind_now
from app.checkins.schedules import schedule_member
from app.db import session
from app.models import Entry, InboundMessage, Member, Team
from app.settings import get_settings
from jobs.broker import drain
from tests.app.web.conftest import AUTH
from tests.conftest import FIXED_NOW


def make_team() -> int:
    """A UTC team with Ada and Bob; returns Ada's id."""
    with session() as s:
        t = Team(name="Loop team", timezone="UTC", workdays="1234567")
        s.add(t)
        s.flush()
        ids = []
        for name in ("Ada", "Bob"):
            m = Member(team_id=t.id, email=f"{name.lower()}@example.com", name=name)
            schedule_member(s, m, t, FIXED_NOW)
            s.add(m)
            s.flush()
            ids.append(m.id)
        return ids[0]


def reply_to(reminder, text: str) -> bytes:
    """What a mail client sends when Ada answers ``reminder`` above the quote."""
    quoted = "\n".join("> " + line for line in reminder.get_body(("plain",)).get_content().splitlines())
    return (
        f"From: Ada <ada@example.com>\r\nTo: {reminder['Reply-To']}\r\n"
        f"Subject: Re: {reminder['Subject']}\r\nIn-Reply-To: {reminder['Message-ID']}\r\n"
        f"Message-ID: <reply-{reminder['Message-ID'].strip('<>')}>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n\r\nOn Mon, Nov 23, 2026 at 17:00, donebox <donebox@mail.test> wrote:\r\n{quoted}\r\n"
    ).encode()


def test_a_reply_to_the_reminder_ends_up_in_the_next_digest(db, sent):
    from app.web.factory import create_app
    from jobs.enqueue import enqueue_deliveries

    make_team()
    settings = get_settings()
    with TestClient(create_app()) as client:
        with session() as s:
            ids = remind_now(s, now=FIXED_NOW, settings=settings)
        enqueue_deliveries(ids)  # after commit, as every producer does
        drain()
        reminders = [message_from_bytes(m.as_bytes(), policy=policy.default) for m in sent]
        assert sorted(m["To"] for m in reminders) == ["ada@example.com", "bob@example.com"]
        ada = next(m for m in reminders if m["To"] == "ada@example.com")

        r = client.post(
            "/inbound/raw",
            content=reply_to(ada, "- Shipped the billing export\n- Fixed #42 with @bob"),
            headers=AUTH,
        )
        assert r.status_code == 202
        drain()

    with session() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        assert row.state == "processed" and row.day == date(2026, 11, 23)
        assert "What did you get done today?" in row.quoted_text
        entries = [e.text for e in s.execute(select(Entry).order_by(Entry.id)).scalars()]
    assert entries == ["Shipped the billing export", "Fixed #42 with @bob"]

    sent.clear()
    with session() as s:
        ids = digest_now(s, now=FIXED_NOW, settings=settings, day=date(2026, 11, 23))
    enqueue_deliveries(ids)
    drain()
    digest = next(m for m in sent if m["To"] == "bob@example.com")
    text = digest.get_body(("plain",)).get_content()
    assert "Shipped the billing export" in text and "Fixed #42 with @bob" in text
    assert "What did you get done today?" not in text  # the quoted reminder is not news
    assert "No reply from: Bob" in text


def test_a_reply_with_a_forged_token_makes_no_entries(db, sent):
    from app.web.factory import create_app

    make_team()
    mail = (
        b"From: Mallory <m@example.com>\r\nTo: reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test\r\n"
        b"Subject: hi\r\nMessage-ID: <forged@x>\r\n\r\nI did everything\r\n"
    )
    with TestClient(create_app()) as client:
        client.post("/inbound/raw", content=mail, headers=AUTH)
        drain()
    with session() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        assert row.state == "unverified" and "bad reply token" in row.error
        assert s.execute(select(Entry)).first() is None


def test_an_out_of_office_reply_makes_no_entries(db, sent):
    from app.web.factory import create_app

    member_id = make_team()
    from app.checkins.reply_tokens import reply_address

    to = reply_address(get_settings().secret_key, "reply.test", member_id, date(2026, 11, 23))
    mail = (
        f"From: Ada <ada@example.com>\r\nTo: {to}\r\nAuto-Submitted: auto-replied\r\n"
        f"Subject: Out of office\r\nMessage-ID: <ooo@x>\r\n\r\nI am away until Monday\r\n"
    ).encode()
    with TestClient(create_app()) as client:
        client.post("/inbound/raw", content=mail, headers=AUTH)
        drain()
    with session() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        assert row.state == "ignored" and "Auto-Submitted" in row.error
        assert s.execute(select(Entry)).first() is None
        assert s.execute(select(Member).where(Member.id == member_id)).scalar_one()


def test_a_reply_that_pastes_the_reminder_without_quote_marks_is_cut_at_our_text(db, sent):
    from app.web.factory import create_app

    member_id = make_team()
    from app.checkins.reply_tokens import reply_address

    to = reply_address(get_settings().secret_key, "reply.test", member_id, date(2026, 11, 23))
    # some mobile clients quote with no ">" and no "On ... wrote:" line
    body = (
        "Reviewed the hiring plan\r\n\r\nHi Ada,\r\n\r\nWhat did you get done today?\r\n\r\n"
        "Reply to this email with a line for each thing you did. Start a line with\r\n"
        '"Goal:" for something you plan, or "Blocked:" for something in your way.\r\n'
    )
    mail = (
        f"From: Ada <ada@example.com>\r\nTo: {to}\r\nSubject: Re: hi\r\nMessage-ID: <paste@x>\r\n\r\n" + body
    ).encode()
    with TestClient(create_app()) as client:
        client.post("/inbound/raw", content=mail, headers=AUTH)
        drain()
    with session() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        entries = [e.text for e in s.execute(select(Entry)).scalars()]
    assert entries == ["Reviewed the hiring plan"]
    assert "What did you get done today?" in row.quoted_text
