"""The reply window: a reply to day D's reminder counts for D, even after midnight; replies add up."""

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from starlette.testclient import TestClient

from app.checkins.reply_tokens import reply_address
from app.db import session
from app.inbound.accept import accept
from app.inbound.process import process
from app.models import Entry, InboundMessage, Member, OutboundMessage
from app.settings import get_settings
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.app.web.conftest import AUTH
from tests.conftest import FIXED_NOW

DAY = date(2026, 11, 20)  # a Friday: every run of this test is after that day's local midnight


def reply(member_id: int, day: date, body: str, n: int) -> bytes:
    to = reply_address(get_settings().secret_key, "reply.test", member_id, day)
    return (
        f"From: Ada <ada@example.com>\r\nTo: {to}\r\nSubject: Re: What did you get done today?\r\n"
        f"Message-ID: <reply-{n}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def entries() -> list[tuple[date, str]]:
    with session() as s:
        return [(e.day, e.text) for e in s.execute(select(Entry).order_by(Entry.id)).scalars()]


def test_a_reply_after_midnight_counts_for_the_reminders_day_and_a_second_reply_adds(db, sent):
    from app.web.factory import create_app

    ada = make_team()
    with TestClient(create_app()) as client:
        r = client.post("/inbound/raw", content=reply(ada, DAY, "- Fixed the login bug", 1), headers=AUTH)
        assert r.status_code == 202
        drain()
        assert entries() == [(DAY, "Fixed the login bug")]  # processed days later: still day D
        r = client.post("/inbound/raw", content=reply(ada, DAY, "- Also: reviewed two PRs", 2), headers=AUTH)
        assert r.status_code == 202
        drain()
    assert entries() == [(DAY, "Fixed the login bug"), (DAY, "Also: reviewed two PRs")]
    with session() as s:
        states = s.execute(select(InboundMessage.state, InboundMessage.day)).all()
    assert sorted(states) == [("processed", DAY), ("processed", DAY)]


def test_processing_at_00_40_the_next_local_day_files_the_entries_under_the_reminders_day(db, sent):
    ada = make_team()
    with session() as s:
        iid, _ = accept(
            s, provider="raw", raw=reply(ada, DAY, "- Late night deploy", 3), key="k3", now=datetime.now(UTC)
        )
    just_after_midnight = datetime(2026, 11, 21, 0, 40, tzinfo=UTC)  # the team is on UTC
    with session() as s:
        assert process(s, iid, now=just_after_midnight, settings=get_settings()) == "processed"
    assert entries() == [(DAY, "Late night deploy")]


def test_a_duplicate_delivery_of_the_same_reply_does_not_add_twice(db, sent):
    from app.web.factory import create_app

    ada = make_team()
    mail = reply(ada, DAY, "- One thing", 4)
    with TestClient(create_app()) as client:
        assert client.post("/inbound/raw", content=mail, headers=AUTH).status_code == 202
        assert client.post("/inbound/raw", content=mail, headers=AUTH).json()["duplicate"] is True
        drain()
    assert entries() == [(DAY, "One thing")]
    with session() as s:
        assert s.get(Member, ada).name == "Ada"


def a_reply_to_our_reminder(member_id: int, day: date) -> int:
    """A reminder we sent ``member_id`` for ``day``, and a reply naming it only by In-Reply-To."""
    with session() as s:
        s.add(
            OutboundMessage(
                idempotency_key=f"reminder:{member_id}:{day}",
                kind="reminder",
                state="sent",
                to_addr="ada@example.com",
                member_id=member_id,
                message_id=f"<reminder-{day}@mail.test>",
                context=json.dumps({"day": day.isoformat()}),
            )
        )
    mail = (
        f"From: Ada <ada@example.com>\r\nTo: team@reply.test\r\nSubject: Re: today\r\n"
        f"In-Reply-To: <reminder-{day}@mail.test>\r\nMessage-ID: <irt-{day}@example.com>\r\n\r\n- Did it\r\n"
    ).encode()
    with session() as s:
        iid, _ = accept(s, provider="raw", raw=mail, key=f"irt-{day}", now=datetime.now(UTC))
    return iid


def test_in_reply_to_our_reminder_counts_within_the_window_and_not_after(db):
    ada = make_team()
    day = date(2026, 11, 20)
    fresh, stale = a_reply_to_our_reminder(ada, day), a_reply_to_our_reminder(ada, day - timedelta(days=1))
    thirty_days_on = datetime.combine(day + timedelta(days=30), time(12), UTC)
    settings = replace(get_settings(), reply_window_days=30)
    with session() as s:
        assert process(s, fresh, now=thirty_days_on, settings=settings) == "processed"
    with session() as s:
        assert process(s, stale, now=thirty_days_on, settings=settings) == "unverified"
        row = s.get(InboundMessage, stale)
        assert row.error == "In-Reply-To our message: reply address for 2026-11-19 expired after 30 days"
    assert entries() == [(day, "Did it")]


def test_a_reply_address_for_a_day_that_has_not_come_is_refused(db):
    ada = make_team()
    later = FIXED_NOW.date() + timedelta(days=5)  # only someone holding SECRET_KEY could make this
    with session() as s:
        iid, _ = accept(
            s, provider="raw", raw=reply(ada, later, "- Tomorrow's work", 9), key="k9", now=FIXED_NOW
        )
    with session() as s:
        assert process(s, iid, now=FIXED_NOW, settings=get_settings()) == "unverified"
        assert s.get(InboundMessage, iid).error == f"reply address for {later} is for a day that has not come"
    assert entries() == []
