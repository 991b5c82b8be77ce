"""Out-of-office replies become pauses, end to end through real mail: reminder -> auto-reply
posted through the inbound path -> a pause until the stated day, the undo email, "away until"
in the digest."""

from datetime import date
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

import jobs.actors
from app.checkins.outgoing import digest_now, remind_now
from app.checkins.schedules import due_times
from app.db import session
from app.models import Entry, InboundMessage, Member, MemberPause, OutboundMessage
from app.settings import get_settings
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.app.web.conftest import AUTH
from tests.conftest import FIXED_NOW  # Monday 23 November 2026, 12:00 UTC


def auto_reply(reminder, who: str, subject: str, body: str, headers: str = "") -> bytes:
    """What a mail server's out-of-office answers to ``reminder`` (to its Reply-To address)."""
    return (
        f"From: {who}\r\nTo: {reminder['Reply-To']}\r\nSubject: {subject}: {reminder['Subject']}\r\n"
        f"In-Reply-To: {reminder['Message-ID']}\r\nMessage-ID: <ooo-{reminder['Message-ID'].strip('<>')}>\r\n"
        f"{headers}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        f"\r\n{body}\r\n"
    ).encode()


@pytest.fixture
def fixed_clock(monkeypatch):
    """Processing on Monday 23 November 2026 (the workers' clock, as the reminders')."""
    monkeypatch.setattr(jobs.actors, "utcnow", lambda: FIXED_NOW)


def _reminders(sent) -> dict:
    settings = get_settings()
    with session() as s:
        ids = remind_now(s, now=FIXED_NOW, settings=settings)
    from jobs.enqueue import enqueue_deliveries  # after the app's import, as producers do

    enqueue_deliveries(ids)
    drain()
    mails = [message_from_bytes(m.as_bytes(), policy=policy.default) for m in sent]
    sent.clear()
    return {m["To"]: m for m in mails}


def test_an_out_of_office_in_english_and_german_pauses_until_the_stated_day(db, sent, fixed_clock):
    from app.web.factory import create_app

    make_team()
    reminders = _reminders(sent)
    english = auto_reply(
        reminders["ada@example.com"],
        "Ada <ada@example.com>",
        "Out of Office",
        "Hi, I am out of the office and back on 30 November. For anything urgent, ask Bob.",
        "Auto-Submitted: auto-replied\r\n",
    )
    german = auto_reply(
        reminders["bob@example.com"],
        "Bob <bob@example.com>",
        "Abwesenheitsnotiz",
        "Guten Tag, ich bin zurück am 2.12.2026 und beantworte Ihre Nachricht dann.",
        "X-Autoreply: yes\r\nContent-Language: de-DE\r\n",
    )
    with TestClient(create_app()) as client:
        for mail in (english, german):
            assert client.post("/inbound/raw", content=mail, headers=AUTH).status_code == 202
        drain()

    with session() as s:
        names = {m.id: m.name for m in s.execute(select(Member)).scalars()}
        pauses = {
            names[p.member_id]: (p.first_day, p.last_day) for p in s.execute(select(MemberPause)).scalars()
        }
        rows = list(s.execute(select(InboundMessage).order_by(InboundMessage.id)).scalars())
        assert s.execute(select(Entry)).first() is None  # an auto-reply is no entry
        bob = s.execute(select(Member).where(Member.name == "Bob")).scalar_one()
        assert due_times(s, bob.id)["reminder"].date() == date(
            2026, 12, 2
        )  # the pause moved the next reminder
    assert pauses == {
        "Ada": (date(2026, 11, 23), date(2026, 11, 29)),
        "Bob": (date(2026, 11, 23), date(2026, 12, 1)),
    }
    assert [r.state for r in rows] == ["ignored", "ignored"]
    assert "away until 2026-11-29" in rows[0].error and "Auto-Submitted" in rows[0].error

    notices = {m["To"]: message_from_bytes(m.as_bytes(), policy=policy.default) for m in sent}
    assert set(notices) == {"ada@example.com", "bob@example.com"}
    ada = notices["ada@example.com"]
    assert ada["X-Donebox-Kind"] == "away" and ada["Subject"] == "You are paused until Sunday 29 November"
    text = ada.get_body(("plain",)).get_content()
    team_id = _team_of(rows[0].member_id)
    assert f"http://donebox.test/teams/{team_id}/settings/me" in text and "Remove the pause" in text

    sent.clear()
    with session() as s:
        ids = digest_now(s, now=FIXED_NOW, settings=get_settings(), day=date(2026, 11, 23))
    from jobs.enqueue import enqueue_deliveries  # as above

    enqueue_deliveries(ids)
    drain()
    digest = next(m for m in sent if m["X-Donebox-Kind"] == "digest")
    body = digest.get_body(("plain",)).get_content()
    assert "Away: Ada (away until Sun 29 Nov), Bob (away until Tue 01 Dec)" in body
    assert "No reply from" not in body


def _team_of(member_id: int) -> int:
    with session() as s:
        return s.get(Member, member_id).team_id


def test_the_undo_is_the_settings_page_remove_button(db, sent, fixed_clock):
    from app.web.factory import create_app

    make_team()
    reminders = _reminders(sent)
    mail = auto_reply(
        reminders["ada@example.com"],
        "Ada <ada@example.com>",
        "Automatic reply",
        "Back on 25 November.",
        "Auto-Submitted: auto-replied\r\n",
    )
    with TestClient(create_app()) as client:
        client.post("/inbound/raw", content=mail, headers=AUTH)
        drain()
    with session() as s:
        pause = s.execute(select(MemberPause)).scalar_one()
        from app.checkins.schedules import remove_pause  # what the settings page's button calls

        assert remove_pause(s, pause.id, now=FIXED_NOW)
        assert s.execute(select(MemberPause)).first() is None


def test_an_auto_reply_with_no_date_makes_no_pause_and_says_so(db, sent, fixed_clock):
    from app.web.factory import create_app

    make_team()
    reminders = _reminders(sent)
    mail = auto_reply(
        reminders["ada@example.com"],
        "Ada <ada@example.com>",
        "Out of office",
        "I am out of the office with limited access to email.",
        "Auto-Submitted: auto-replied\r\n",
    )
    with TestClient(create_app()) as client:
        client.post("/inbound/raw", content=mail, headers=AUTH)
        client.post("/inbound/raw", content=mail.replace(b"<ooo-", b"<ooo2-"), headers=AUTH)
        drain()
    with session() as s:
        rows = list(s.execute(select(InboundMessage)).scalars())
        assert s.execute(select(MemberPause)).first() is None
        assert s.execute(select(OutboundMessage).where(OutboundMessage.kind == "away")).first() is None
    assert all(r.state == "ignored" and "no return date" in r.error for r in rows)
    assert not sent


def test_the_same_auto_reply_twice_pauses_once(db, sent, fixed_clock):
    from app.web.factory import create_app

    make_team()
    reminders = _reminders(sent)
    mail = auto_reply(
        reminders["ada@example.com"],
        "Ada <ada@example.com>",
        "Out of office",
        "Back on 30 November.",
        "Auto-Submitted: auto-replied\r\n",
    )
    with TestClient(create_app()) as client:
        client.post("/inbound/raw", content=mail, headers=AUTH)
        client.post("/inbound/raw", content=mail.replace(b"<ooo-", b"<ooo2-"), headers=AUTH)
        drain()
    with session() as s:
        assert len(s.execute(select(MemberPause)).all()) == 1
        assert len(s.execute(select(OutboundMessage).where(OutboundMessage.kind == "away")).all()) == 1
