"""What one reply creates and what one digest shows are bounded (issue 12, item 7), both databases."""

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app.checkins import entries
from app.checkins.outgoing import create_digest
from app.db import session
from app.models import Entry, InboundMessage, Member
from app.relay.pipeline import deliver
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from parsers.entries import EntryDraft
from tests.conftest import FIXED_NOW

DAY = date(2026, 11, 23)


def member(email: str) -> Member:
    with session() as s:
        return s.execute(select(Member).where(Member.email == email)).scalar_one()


def stored(inbound_id: int | None = None) -> list[Entry]:
    with session() as s:
        return list(
            s.execute(select(Entry).where(Entry.inbound_id == inbound_id).order_by(Entry.id)).scalars()
        )


def inbound_row() -> int:
    with session() as s:
        row = InboundMessage(provider="raw", dedupe_key="k1", raw=b"x", state="processed")
        s.add(row)
        s.flush()
        return row.id


def test_a_reply_makes_at_most_max_entries_and_long_lines_are_cut_with_a_note(team):
    bob, iid = member("bob@example.com"), inbound_row()
    drafts = [EntryDraft("x" * 20_000_000)] + [EntryDraft(f"line {i}") for i in range(500_000)]
    with session() as s:
        n = entries.add_many(s, [entries.Reply(team.id, bob.id, DAY, iid, drafts)], now=FIXED_NOW)
    assert n == 50
    made = stored(iid)
    assert len(made) == 50 and made[1].text == "line 0" and made[-1].text == "line 48"
    assert len(made[0].text) == 2000 and made[0].text.endswith("… (cut)")
    with session() as s:
        notes = s.get(InboundMessage, iid).notes
    assert "the reply made 500001 entries, the first 50 are stored (MAX_ENTRIES_PER_REPLY)" in notes
    assert "1 entry cut at 2000 characters (MAX_ENTRY_CHARS)" in notes


def test_the_limits_are_settings_and_a_reply_within_them_gets_no_note(team):
    from dataclasses import replace

    bob, iid = member("bob@example.com"), inbound_row()
    tight = replace(get_settings(), max_entries_per_reply=3, max_entry_chars=100)
    with session() as s:
        entries.add_many(
            s,
            [entries.Reply(team.id, bob.id, DAY, iid, [EntryDraft("y" * 150)] + [EntryDraft("z")] * 5)],
            now=FIXED_NOW,
            settings=tight,
        )
        entries.add_many(s, [entries.Reply(team.id, bob.id, DAY, None, [EntryDraft("fine")])], now=FIXED_NOW)
        notes = s.get(InboundMessage, iid).notes
    made = stored(iid)
    assert [len(e.text) for e in made] == [100, 1, 1] and made[0].text.endswith("(cut)")
    assert "the first 3 are stored" in notes and "cut at 100 characters" in notes
    assert [e.text for e in stored(None)] == ["fine"]


def test_a_form_or_api_post_with_too_many_entries_is_refused_and_stores_nothing(team):
    bob = member("bob@example.com")
    with session() as s, pytest.raises(entries.EntryError, match="at most 50 entries at once, not 51"):
        entries.add(s, bob, DAY, "\n".join(f"- item {i}" for i in range(51)), "done", now=FIXED_NOW)
    with session() as s:
        assert (
            len(entries.add(s, bob, DAY, "\n".join(f"- item {i}" for i in range(50)), "done", now=FIXED_NOW))
            == 50
        )


def old_flood(team, day: date = DAY, n: int = 100_000) -> None:
    """Rows written before the limits: ``n`` entries of Bob's (every tenth a blocker) and one of
    1,000,000 characters, inserted directly."""
    bob = member("bob@example.com")
    rows = [
        {
            "team_id": team.id,
            "member_id": bob.id,
            "day": day,
            "text": f"old entry {i}",
            "kind": "blocker" if i % 10 == 0 else "done",
            "tags": "",
            "mentions": "",
            "created_at": FIXED_NOW,
        }
        for i in range(n)
    ]
    rows[1]["text"] = "h" * 1_000_000
    with session() as s:
        s.connection().execute(Entry.__table__.insert(), rows)
        assert s.execute(select(func.count()).select_from(Entry)).scalar_one() == n


def test_a_digest_of_a_day_with_100000_entries_stays_small_and_says_how_many_more(team):
    old_flood(team)
    ada = member("ada@example.com")
    with session() as s:
        from app.models import Team

        mid, _ = create_digest(s, ada, s.get(Team, team.id), DAY, now=FIXED_NOW, settings=get_settings())
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=FIXED_NOW + timedelta(minutes=1)) == "sent"
    size = len(t.sent[0].as_bytes())
    assert size < 200_000, size
    text = t.sent[0].get_body(("plain",)).get_content()
    assert "BLOCKERS (10000)" in text and "and 9970 more" in text  # 30 blockers listed
    assert "and 99970 more" in text  # 30 entries listed
    assert "h" * 1993 + "… (cut)" in text and "h" * 2001 not in text


def test_the_weekly_digest_counts_every_entry_and_lists_a_bounded_few(team):
    from app.checkins.digests import weekly_context
    from app.models import OutboundMessage, Team

    old_flood(team, n=5_000)
    with session() as s:
        msg = OutboundMessage(team_id=team.id)
        ctx = weekly_context(s, msg, {"last": DAY.isoformat()}, get_settings())
        assert ctx["entry_count"] == 5_000 and ctx["blocker_count"] == 500
        (g,) = ctx["groups"]
        assert len(g.entries) == 30 and g.more == 4_970 and len(g.blockers) == 30
        assert ctx["per_day"] == [(DAY, 5_000)]
        assert s.get(Team, team.id) is not None
