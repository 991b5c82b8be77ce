"""Mentions and blockers: recorded with their entries, sent by the tick once an hour is over, one email
per member and hour; blockers stay open until resolved by a reply and come back in reminders."""

from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy

from sqlalchemy import select
from starlette.testclient import TestClient

from app.checkins.entries import Reply, add_many
from app.checkins.outgoing import remind_now
from app.checkins.schedules import add_pause
from app.db import session
from app.models import Entry, Member, Notice, OutboundMessage, Team, utcnow
from app.relay import suppressions
from app.settings import get_settings
from jobs.broker import drain
from jobs.enqueue import enqueue_deliveries
from jobs.scheduler import tick
from parsers.entries import split_entries
from tests.app.checkins.test_loop import reply_to
from tests.app.web.conftest import AUTH
from tests.conftest import FIXED_NOW

DAY = date(2026, 11, 23)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def crew() -> dict[str, int]:
    """A UTC team: Ada (admin), Bob Smith, Carol, Dave and Cleo (admin); {first name: member id}."""
    with session() as s:
        t = Team(name="Crew", timezone="UTC", workdays="1234567", created_at=FIXED_NOW)
        s.add(t)
        s.flush()
        ids = {}
        for name, email, role in (
            ("Ada", "ada@example.com", "admin"),
            ("Bob Smith", "bob.smith@example.com", "member"),
            ("Carol", "carol@example.com", "member"),
            ("Dave", "dave@example.com", "member"),
            ("Cleo", "cleo@example.com", "admin"),
        ):
            m = Member(team_id=t.id, email=email, name=name, role=role, created_at=FIXED_NOW)
            s.add(m)
            s.flush()
            ids[name.split()[0]] = m.id
        return ids


def write(ids: dict[str, int], who: str, text: str, at: datetime) -> None:
    """``who``'s reply of DAY, stored by the entry writer at ``at`` (as processing a reply does)."""
    with session() as s:
        team_id = s.get(Member, ids[who]).team_id
        add_many(s, [Reply(team_id, ids[who], DAY, None, split_entries(text))], now=at)


def delivered(at: datetime) -> dict[str, list[str]]:
    """Tick at ``at``, deliver, and return {recipient: [text bodies]} of what went out."""
    from app.relay.transports import _MEMORY

    _MEMORY.sent.clear()
    tick(now=at, settings=get_settings())
    drain()
    out: dict[str, list[str]] = {}
    for m in _MEMORY.sent:
        msg = message_from_bytes(m.as_bytes(), policy=policy.default)
        body = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        out.setdefault(msg["To"], []).append(f"{msg['Subject']}\n{body}")
    return out


def test_mentions_are_sent_once_an_hour_is_over_one_email_per_member_and_hour(db, sent):
    ids = crew()
    write(ids, "Ada", "Paired with @bob.smith on the export", utc(2026, 11, 23, 10, 5))
    write(
        ids,
        "Carol",
        "Reviewed @BOBSMITH's change with @ada\nAsked @carol and @nobody",
        utc(2026, 11, 23, 10, 40),
    )
    write(ids, "Bob", "Thanks @bob.smith (me) and @Ada", utc(2026, 11, 23, 10, 59))
    write(ids, "Ada", "Merged it, @bob.smith", utc(2026, 11, 23, 11, 10))
    with session() as s:  # who hears of what: handles are the email's local part or the name unspaced
        told = sorted(s.execute(select(Notice.kind, Notice.member_id, Notice.hour)).all())
    assert told == sorted(
        [("mention", ids["Bob"], utc(2026, 11, 23, 10))] * 2
        + [("mention", ids["Ada"], utc(2026, 11, 23, 10))] * 2
        + [("mention", ids["Bob"], utc(2026, 11, 23, 11))]
    )  # Carol and Bob never hear of their own mention; @nobody is nobody
    assert delivered(utc(2026, 11, 23, 10, 59, 59)) == {}  # the hour is not over
    first = delivered(utc(2026, 11, 23, 11, 0, 5))
    assert sorted(first) == ["ada@example.com", "bob.smith@example.com"]
    (bob,) = first["bob.smith@example.com"]
    assert bob.startswith("Crew: you were mentioned 2 times")
    assert "Ada (Mon 23 Nov): Paired with @bob.smith on the export" in bob
    assert "Carol (Mon 23 Nov): Reviewed @BOBSMITH's change with @ada" in bob
    assert "Merged it" not in bob  # 11:10: the next hour's email
    assert delivered(utc(2026, 11, 23, 11, 30)) == {}
    second = delivered(utc(2026, 11, 23, 12, 0))
    assert (
        list(second) == ["bob.smith@example.com"]
        and "Merged it, @bob.smith" in second["bob.smith@example.com"][0]
    )
    assert delivered(utc(2026, 11, 23, 13, 0)) == {}  # each hour's email once
    with session() as s:
        keys = sorted(
            s.execute(
                select(OutboundMessage.idempotency_key).where(OutboundMessage.kind == "mention")
            ).scalars()
        )
    assert keys == [
        f"mention:{ids['Ada']}:2026-11-23T10",
        f"mention:{ids['Bob']}:2026-11-23T10",
        f"mention:{ids['Bob']}:2026-11-23T11",
    ]


def test_a_paused_or_unsubscribed_member_is_not_told(db, sent):
    ids = crew()
    with session() as s:
        add_pause(s, ids["Carol"], DAY, DAY, now=FIXED_NOW)
        suppressions.add(s, "dave@example.com", "unsubscribe", now=FIXED_NOW)
    write(ids, "Ada", "Handed over to @carol and @dave and @bob.smith", utc(2026, 11, 23, 10, 5))
    out = delivered(utc(2026, 11, 23, 11, 0))
    assert list(out) == ["bob.smith@example.com"]
    with session() as s:
        outcomes = dict(s.execute(select(Notice.member_id, Notice.outcome)).all())
        dave = s.execute(
            select(OutboundMessage.state).where(OutboundMessage.to_addr == "dave@example.com")
        ).scalar_one()
    assert outcomes == {ids["Carol"]: "paused", ids["Dave"]: "sent", ids["Bob"]: "sent"}
    assert dave == "suppressed"  # the relay's list: their unsubscribe holds for every check-in mail


def test_a_blocker_tells_the_admins_is_resolved_by_an_unblocked_reply_and_comes_back_until_then(db, sent):
    from app.web.factory import create_app

    ids = crew()
    settings = get_settings()
    with TestClient(create_app()) as client:
        with session() as s:
            made = remind_now(s, now=FIXED_NOW, settings=settings)
        enqueue_deliveries(made)
        drain()
        reminders = {m["To"]: message_from_bytes(m.as_bytes(), policy=policy.default) for m in sent}
        sent.clear()
        mail = reply_to(
            reminders["bob.smith@example.com"], "- Wrote the importer\n- Blocked: waiting on the API key"
        )
        mail = mail.replace(b"From: Ada <ada@example.com>", b"From: Bob <bob.smith@example.com>")
        assert client.post("/inbound/raw", content=mail, headers=AUTH).status_code == 202
        drain()
        assert sent == []  # nothing is sent from reply processing
        with session() as s:
            blocker = s.execute(select(Entry).where(Entry.kind == "blocker")).scalar_one()
        assert blocker.text == "waiting on the API key" and blocker.resolved_at is None

        out = delivered(blocker.created_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        assert sorted(out) == ["ada@example.com", "cleo@example.com"]  # the admins, not its author
        assert "Bob Smith (Mon 23 Nov): waiting on the API key" in out["ada@example.com"][0]

        # reminders made more than a day later list it; the author's, not anyone else's
        later = blocker.created_at + timedelta(days=1, minutes=1)
        sent.clear()
        with session() as s:
            made = remind_now(s, now=later, settings=settings)
        enqueue_deliveries(made)
        drain()
        texts = {m["To"]: m.get_body(("plain",)).get_content().replace("\r\n", "\n") for m in sent}
        assert "Still blocked:\n- waiting on the API key (since Mon 23 Nov)" in texts["bob.smith@example.com"]
        assert "Still blocked" not in texts["ada@example.com"]

        # Bob answers that reminder: "unblocked" resolves his open blocker
        reminder = message_from_bytes(
            next(m for m in sent if m["To"] == "bob.smith@example.com").as_bytes(), policy=policy.default
        )
        mail = reply_to(reminder, "Unblocked: the key came\n- Finished the importer")
        mail = mail.replace(b"From: Ada <ada@example.com>", b"From: Bob <bob.smith@example.com>")
        assert client.post("/inbound/raw", content=mail, headers=AUTH).status_code == 202
        drain()
        with session() as s:
            blocker = s.get(Entry, blocker.id)
        assert blocker.resolved_at is not None and blocker.resolved_by == ids["Bob"]

        sent.clear()
        with session() as s:
            made = remind_now(s, now=later + timedelta(days=1), settings=settings)
        enqueue_deliveries(made)
        drain()
        bob = next(m for m in sent if m["To"] == "bob.smith@example.com").get_body(("plain",)).get_content()
        assert "Still blocked" not in bob


def test_nothing_is_recorded_for_plain_entries_and_a_blocker_of_an_admin_tells_the_other_admin(db):
    ids = crew()
    write(ids, "Carol", "Shipped #search", utc(2026, 11, 23, 9))
    write(ids, "Ada", "Blocked: no staging database", utc(2026, 11, 23, 9))
    with session() as s:
        assert s.execute(select(Notice.kind, Notice.member_id)).all() == [("blocker", ids["Cleo"])]
        assert utcnow() > FIXED_NOW


def test_the_pause_that_holds_a_mention_back_is_the_members_local_day_across_zones_and_dst(db, sent):
    """Mentions are batched by UTC hour; whether the member is paused is asked of their own day when
    the hour's email is made: Tokyo is already on the next day, New York's day of the March change
    starts at 05:00 UTC and its hour after 02:00 does not exist."""
    ids = crew()
    with session() as s:
        for name, tz in (("Bob", "Asia/Tokyo"), ("Carol", "America/New_York"), ("Dave", "America/New_York")):
            s.get(Member, ids[name]).timezone = tz
        s.flush()
        add_pause(s, ids["Bob"], date(2026, 3, 8), date(2026, 3, 8), now=FIXED_NOW)  # Tokyo's Sunday
        add_pause(s, ids["Carol"], date(2026, 3, 8), date(2026, 3, 8), now=FIXED_NOW)  # New York's Sunday
        add_pause(s, ids["Dave"], date(2026, 3, 7), date(2026, 3, 7), now=FIXED_NOW)  # New York's Saturday
    # Saturday 7 March 15:10 UTC: Sunday 00:10 in Tokyo, Saturday 10:10 in New York
    write(ids, "Ada", "Thanks @bob.smith @carol @dave", utc(2026, 3, 7, 15, 10))
    assert delivered(utc(2026, 3, 7, 16, 0)) == {"carol@example.com": [AnyText()]}
    # Sunday 8 March 06:30 UTC: 01:30 EST; the email goes at 07:00 UTC, 03:00 EDT, still Sunday
    write(ids, "Ada", "And @carol @dave again", utc(2026, 3, 8, 6, 30))
    assert list(delivered(utc(2026, 3, 8, 7, 0))) == ["dave@example.com"]
    with session() as s:
        outcomes = sorted(s.execute(select(Notice.member_id, Notice.hour, Notice.outcome)).all())
    assert outcomes == sorted(
        [
            (ids["Bob"], utc(2026, 3, 7, 15), "paused"),
            (ids["Carol"], utc(2026, 3, 7, 15), "sent"),
            (ids["Dave"], utc(2026, 3, 7, 15), "paused"),
            (ids["Carol"], utc(2026, 3, 8, 6), "paused"),
            (ids["Dave"], utc(2026, 3, 8, 6), "sent"),
        ]
    )


class AnyText:
    """Equal to any text (the body is checked in the other tests)."""

    def __eq__(self, other):
        return isinstance(other, str)


def test_a_mention_deleted_before_its_hours_email_is_not_sent(db, sent):
    ids = crew()
    write(ids, "Ada", "Ask @carol", utc(2026, 11, 23, 10, 5))
    write(ids, "Ada", "Ask @dave", utc(2026, 11, 23, 10, 6))
    with session() as s:
        s.delete(s.execute(select(Entry).where(Entry.text == "Ask @carol")).scalar_one())
    assert list(delivered(utc(2026, 11, 23, 11, 0))) == ["dave@example.com"]
    with session() as s:
        assert dict(s.execute(select(Notice.member_id, Notice.outcome)).all()) == {
            ids["Carol"]: "gone",
            ids["Dave"]: "sent",
        }


def test_a_named_blocker_owner_hears_of_blockers_instead_of_the_admins_until_they_leave_the_team(db, sent):
    from app.checkins import notices, teams

    ids = crew()
    with session() as s:
        team_id = s.get(Member, ids["Dave"]).team_id
        teams.update_team(s, team_id, now=FIXED_NOW, blocker_owner=ids["Dave"])
    write(ids, "Bob", "Blocked: waiting on the API key", utc(2026, 11, 23, 10, 5))
    write(ids, "Dave", "Blocked: the owner's own blocker", utc(2026, 11, 23, 10, 10))
    out = delivered(utc(2026, 11, 23, 11, 0, 5))
    # Bob's blocker goes to its owner, not the admins; the owner's own goes to the admins
    assert sorted(out) == ["ada@example.com", "cleo@example.com", "dave@example.com"]
    (dave,) = out["dave@example.com"]
    assert dave.startswith("Crew: a blocker reported")
    assert "Bob Smith (Mon 23 Nov): waiting on the API key" in dave and "own blocker" not in dave
    assert "the owner's own blocker" in out["ada@example.com"][0]
    assert "waiting on the API key" not in out["ada@example.com"][0]

    with session() as s:  # the owner resolves blockers as an admin does; another member may not
        bobs = s.execute(select(Entry.id).where(Entry.text == "waiting on the API key")).scalar_one()
        try:
            notices.resolve(s, team_id, bobs, by=ids["Carol"], admin=False, now=FIXED_NOW)
            raise AssertionError("Carol resolved a blocker that is not hers")
        except notices.NoticeError as e:
            assert "blocker owner" in str(e)
        e = notices.resolve(s, team_id, bobs, by=ids["Dave"], admin=False, now=FIXED_NOW)
        assert e.resolved_by == ids["Dave"]

    with session() as s:  # the owner leaves the team: the admins hear of blockers again
        teams.remove_member(s, ids["Dave"])
        assert teams.current(s, team_id)["blocker_owner"] is None
    write(ids, "Carol", "Blocked: no staging database", utc(2026, 11, 23, 12, 5))
    out = delivered(utc(2026, 11, 23, 13, 0, 5))
    assert sorted(out) == ["ada@example.com", "cleo@example.com"]
    assert "Carol (Mon 23 Nov): no staging database" in out["cleo@example.com"][0]


def test_a_blocker_owner_who_is_not_a_member_of_the_team_is_refused_with_a_reason(db):
    from app.checkins import teams

    ids = crew()
    with session() as s:
        team_id = s.get(Member, ids["Ada"]).team_id
        other = Team(name="Other", timezone="UTC", created_at=FIXED_NOW)
        s.add(other)
        s.flush()
        stranger = Member(team_id=other.id, email="eve@example.com", role="admin", created_at=FIXED_NOW)
        s.add(stranger)
        s.flush()
        stranger_id = stranger.id
    with session() as s:
        teams.remove_member(s, ids["Carol"])
    for bad in (stranger_id, ids["Carol"], 2**40, -1, True, "3"):
        with session() as s:
            try:
                teams.update_team(s, team_id, now=FIXED_NOW, blocker_owner=bad)
                raise AssertionError(f"{bad!r} was taken as the blocker owner")
            except teams.TeamError as e:
                assert e.field == "blocker_owner" and "blocker_owner" in str(e), bad
    with session() as s:
        assert teams.current(s, team_id)["blocker_owner"] is None
        teams.update_team(s, team_id, now=FIXED_NOW, blocker_owner=ids["Bob"])
        assert teams.current(s, team_id)["blocker_owner"] == ids["Bob"]
        teams.update_team(s, team_id, now=FIXED_NOW, blocker_owner=0)  # 0: the admins again
        assert teams.current(s, team_id)["blocker_owner"] is None


def test_replies_stored_together_tell_each_member_of_the_entry_that_named_them(db):
    """One add_many of many replies (as processing a batch does): each notice points at the entry
    that mentions its member, whatever the number of entries before it in the statement."""
    ids = crew()
    with session() as s:
        team_id = s.get(Member, ids["Ada"]).team_id
        replies = [
            Reply(team_id, ids[who], DAY, None, split_entries(text))
            for who, text in (
                ("Ada", "Shipped the export\nWrote the docs"),
                ("Carol", "Paired with @dave on the importer\nReviewed #42"),
                ("Dave", "Blocked: waiting on the keys\nFixed the build"),
                ("Bob", "Tidied up\nAsked @carol about the release\nDeployed"),
            )
        ]
        assert add_many(s, replies, now=utc(2026, 11, 23, 10, 5)) == 9
    with session() as s:
        told = {
            (n.kind, n.member_id, e.text)
            for n, e in s.execute(select(Notice, Entry).join(Entry, Entry.id == Notice.entry_id)).all()
        }
        assert s.execute(select(Notice)).scalars().all() and len(told) == len(s.execute(select(Notice)).all())
    assert {(kind, who, text) for kind, who, text in told if kind == "mention"} == {
        ("mention", ids["Dave"], "Paired with @dave on the importer"),
        ("mention", ids["Carol"], "Asked @carol about the release"),
    }
    assert {text for kind, _, text in told if kind == "blocker"} == {"waiting on the keys"}
