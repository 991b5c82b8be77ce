"""Replies to the digest become comments, end to end through real mail: digest (each reader's own
digest+ Reply-To) -> a reply quoting an entry, posted through the inbound path -> a comment on that
entry, its author notified, the day page and the next digest show it."""

from datetime import UTC, date, datetime
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

import jobs.actors
from app.checkins.outgoing import digest_now
from app.checkins.reply_tokens import digest_reply_address, verify_digest_token, verify_reply_token
from app.db import session
from app.models import Comment, Entry, InboundMessage, Member
from app.settings import get_settings
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.app.web.conftest import AUTH, sign_in
from tests.app.web.conftest import client as client  # the web app fixture, for these tests too

DAY = date(2026, 11, 23)
NEXT_MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # the digest of the 23rd is read, and answered


@pytest.fixture
def next_morning(monkeypatch):
    monkeypatch.setattr(jobs.actors, "utcnow", lambda: NEXT_MORNING)


def _setup() -> dict:
    """Ada's and Bob's entries of DAY; the names' member ids and the entries' ids by text."""
    ada_id = make_team()
    with session() as s:
        ada = s.get(Member, ada_id)
        bob = s.execute(select(Member).where(Member.name == "Bob")).scalar_one()
        for who, text in (
            (ada, "Shipped the billing export"),
            (ada, "Reviewed the hiring plan"),
            (bob, "Fixed #42"),
        ):
            s.add(Entry(team_id=ada.team_id, member_id=who.id, day=DAY, text=text))
        s.flush()
        ids = {"Ada": ada.id, "Bob": bob.id, "team": ada.team_id}
        ids |= {e.text: e.id for e in s.execute(select(Entry)).scalars()}
        return ids


def _digests(sent, day=DAY, now=NEXT_MORNING) -> dict:
    from jobs.enqueue import enqueue_deliveries  # the app's modules first, as the producers do

    sent.clear()
    with session() as s:
        ids = digest_now(s, now=now, settings=get_settings(), day=day)
    enqueue_deliveries(ids)
    drain()
    found = {m["To"]: message_from_bytes(m.as_bytes(), policy=policy.default) for m in sent}
    sent.clear()
    return found


def _reply(digest, who: str, body: str) -> bytes:
    return (
        f"From: {who}\r\nTo: {digest['Reply-To']}\r\nSubject: Re: {digest['Subject']}\r\n"
        f"In-Reply-To: {digest['Message-ID']}\r\n"
        f"Message-ID: <re-{len(body)}-{digest['Message-ID'][1:]}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def _quoted(digest) -> str:
    return "\r\n".join("> " + line for line in digest.get_body(("plain",)).get_content().splitlines())


def test_every_reader_gets_their_own_signed_digest_address(db, sent):
    ids = _setup()
    digests = _digests(sent)
    secret = get_settings().secret_key
    for name, addr in (("Ada", "ada@example.com"), ("Bob", "bob@example.com")):
        reply_to = digests[addr]["Reply-To"]
        assert reply_to == digest_reply_address(secret, "reply.test", ids[name], DAY)
        token = reply_to.split("+", 1)[1].split("@")[0]
        assert verify_digest_token(secret, token) == (ids[name], DAY)
        assert verify_reply_token(secret, token) is None  # a digest token is no reminder token
    assert "Reply to this email to comment" in digests["bob@example.com"].get_body(("plain",)).get_content()


def test_a_reply_quoting_an_entry_is_a_comment_on_it_shown_everywhere(db, sent, next_morning, client):
    ids = _setup()
    bob_digest = _digests(sent)["bob@example.com"]
    quoted = _quoted(bob_digest).split("\r\n")
    at = next(i for i, line in enumerate(quoted) if "Shipped the billing export" in line)
    body = (
        "On Tue, Nov 24, 2026 at 08:00, donebox <donebox@mail.test> wrote:\r\n"
        + "\r\n".join(quoted[: at + 1])
        + "\r\nGreat, which customers asked for it?\r\n\r\n"
        + "\r\n".join(quoted[at + 1 :])
    )
    r = client.post("/inbound/raw", content=_reply(bob_digest, "Bob <bob@example.com>", body), headers=AUTH)
    assert r.status_code == 202
    drain()

    with session() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        comment = s.execute(select(Comment)).scalar_one()
        assert s.execute(select(Entry).where(Entry.inbound_id == row.id)).first() is None  # no entries
    assert row.state == "processed" and "a reply to the digest of 2026-11-23" in row.notes
    assert row.reply_text.strip() == "Great, which customers asked for it?"
    assert (comment.entry_id, comment.member_id, comment.author_id) == (
        ids["Shipped the billing export"],
        None,
        ids["Bob"],
    )
    assert comment.day == DAY and comment.text == "Great, which customers asked for it?"

    notice = next(m for m in sent if m["X-Donebox-Kind"] == "comment")  # to the entry's author
    assert notice["To"] == "ada@example.com"
    assert notice["Subject"] == "Bob commented on your entry of Monday 23 November"
    text = notice.get_body(("plain",)).get_content()
    assert "Great, which customers asked for it?" in text and '"Shipped the billing export"' in text

    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/teams/{ids['team']}?day=2026-11-23")
    assert page.status_code == 200
    assert "Comments" in page.text and "Great, which customers asked for it?" in page.text
    assert "<q>Shipped the billing export</q>" in page.text

    digest = _digests(sent, day=date(2026, 11, 24), now=datetime(2026, 11, 25, 8, tzinfo=UTC))[
        "ada@example.com"
    ]
    plain = digest.get_body(("plain",)).get_content()
    assert "COMMENTS (1)" in plain
    assert 'Bob on "Shipped the billing export": Great, which customers asked for it?' in plain
    html = digest.get_body(("html",)).get_content()
    assert "Great, which customers asked for it?" in html


def test_a_reply_naming_a_member_or_nobody(db, sent, next_morning, client):
    ids = _setup()
    digests = _digests(sent)
    named = _reply(
        digests["ada@example.com"],
        "Ada <ada@example.com>",
        "Nice fix @bob!\r\n\r\n" + _quoted(digests["ada@example.com"]),
    )
    nobody = _reply(
        digests["bob@example.com"],
        "Bob <bob@example.com>",
        "Good day, team.\r\n\r\n" + _quoted(digests["bob@example.com"]),
    )
    for mail in (named, nobody):
        assert client.post("/inbound/raw", content=mail, headers=AUTH).status_code == 202
    drain()
    with session() as s:
        found = {c.text: (c.entry_id, c.member_id, c.author_id) for c in s.execute(select(Comment)).scalars()}
    assert found == {
        "Nice fix @bob!": (None, ids["Bob"], ids["Ada"]),
        "Good day, team.": (None, None, ids["Bob"]),
    }
    notices = [m for m in sent if m["X-Donebox-Kind"] == "comment"]
    assert [m["To"] for m in notices] == ["bob@example.com"]  # a comment on the day notifies nobody


def test_a_forged_digest_address_makes_no_comment(db, sent, next_morning, client):
    _setup()
    mail = (
        b"From: Mallory <m@example.com>\r\nTo: digest+1-20261123-aaaaaaaaaaaaaaaa@reply.test\r\n"
        b"Subject: Re: digest\r\nMessage-ID: <forged-digest@x>\r\n\r\nNice\r\n"
    )
    client.post("/inbound/raw", content=mail, headers=AUTH)
    drain()
    with session() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        assert row.state == "unverified" and "bad digest reply token" in row.error
        assert s.execute(select(Comment)).first() is None
