"""Processing messages that share a Message-ID and envelope recipient: another mail reusing it makes
its own entries and is linked; the same mail delivered again (another provider id) makes none."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.db import session
from app.inbound.accept import accept_many, item
from app.inbound.process import process, process_many, reset_for_reprocess
from app.models import Entry, InboundMessage
from app.settings import get_settings
from parsers.providers import PROVIDERS, Keys, Payload
from tests.app.checkins.test_loop import make_team
from tests.app.inbound.test_reply_window import reply
from tests.conftest import FIXED_NOW

DAY = date(2026, 11, 23)


def store(raw: bytes, provider_id: str = "") -> int:
    """Accept ``raw`` as a webhook would; with ``provider_id``, as a provider that names its mail."""
    keys = PROVIDERS["raw"].keys(Payload(raw, "message/rfc822"))
    if provider_id:  # a provider's own id is the dedupe key (Postmark's MessageID, SES's messageId)
        keys = Keys(provider_id, keys.message_id, keys.envelope_to, raw, fingerprint=keys.fingerprint)
    with session() as s:
        ((iid, duplicate),) = accept_many(s.connection(), [item("raw", keys)], now=FIXED_NOW)
        s.commit()
    assert duplicate is False
    return iid


def row(iid: int) -> InboundMessage:
    with session() as s:
        return s.get(InboundMessage, iid)


def entries(iid: int) -> list[str]:
    with session() as s:
        return list(s.execute(select(Entry.text).where(Entry.inbound_id == iid).order_by(Entry.id)).scalars())


def run(*ids: int) -> dict[int, str]:
    with session() as s:
        return process_many(s, list(ids), now=FIXED_NOW, settings=get_settings())


def test_a_reused_message_id_with_another_reply_makes_its_own_entries_and_is_linked(db):
    ada = make_team()
    one = store(reply(ada, DAY, "- Shipped the export", 1))
    two = store(reply(ada, DAY, "- Fixed the importer", 1))  # the same Message-ID, another reply
    assert run(one) == {one: "processed"} and run(two) == {two: "processed"}
    assert entries(one) == ["Shipped the export"] and entries(two) == ["Fixed the importer"]
    linked = row(two)
    assert linked.same_message_id_as == one and row(one).same_message_id_as is None
    assert linked.notes.splitlines()[0] == f"same Message-ID as inbound message {one}, different content"


def test_the_same_reply_delivered_again_under_another_provider_id_makes_no_entries_twice(db):
    ada = make_team()
    mail = reply(ada, DAY, "- Shipped the export", 1)
    # the sender's server handed it over twice: the second copy has another trace field on top
    again = b"Received: from relay2.example.net by mx; Mon, 23 Nov 2026 17:00:09 +0000\r\n" + mail
    one, two = store(mail, "pm-1"), store(again, "pm-2")
    assert run(one, two) == {one: "processed", two: "ignored"}  # in one batch, too
    assert entries(one) == ["Shipped the export"] and entries(two) == []
    second = row(two)
    assert second.same_message_id_as == one
    assert second.error == f"same Message-ID and content as inbound message {one}: a second delivery"
    with session() as s:  # reprocessing decides the same
        reset_for_reprocess(s, [two])
        s.commit()
    with session() as s:
        assert process(s, two, now=FIXED_NOW, settings=get_settings()) == "ignored"
    assert entries(two) == [] and row(two).same_message_id_as == one


def test_other_content_under_another_provider_id_is_processed_and_linked_to_the_first(db):
    ada = make_team()
    one = store(reply(ada, DAY, "- Shipped the export", 1), "pm-1")
    two = store(reply(ada, DAY, "- Fixed the importer", 1), "pm-2")
    three = store(reply(ada, DAY, "- Fixed the importer", 1), "pm-3")  # the second one again
    assert run(one, two, three) == {one: "processed", two: "processed", three: "ignored"}
    assert entries(two) == ["Fixed the importer"] and entries(three) == []
    assert [row(i).same_message_id_as for i in (one, two, three)] == [None, one, one]
    assert row(three).error == f"same Message-ID and content as inbound message {two}: a second delivery"
