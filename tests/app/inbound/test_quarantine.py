"""Claims, leases, attempts and quarantine: a message whose processing never finishes delays only itself."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
from dramatiq.middleware import TimeLimitExceeded
from sqlalchemy import event, text, update

import app.inbound.process
from app.checkins.reply_tokens import reply_address
from app.db import make_engine, session
from app.inbound.process import claim, process_many, processing_lease, reset_for_reprocess, sweep
from app.models import InboundMessage
from app.settings import get_settings
from jobs.actors import process_inbound, process_inbound_batch
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.app.inbound.test_process_batch import entry_texts, mail, store
from tests.conftest import FIXED_NOW

DAY = date(2026, 11, 23)
POISON = "- poison"  # a reply body the tests' parser stalls on


def replies(n: int, first: int = 0, poison_at: int | None = None) -> list[int]:
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    return [
        store(mail(i, token, POISON if i == poison_at else f"- Thing {i}"), f"q{i}")
        for i in range(first, first + n)
    ]


def row(iid: int) -> InboundMessage:
    with session() as s:
        return s.get(InboundMessage, iid)


def write_elsewhere(iid: int) -> None:
    """Write the row from a connection of its own that gives up after half a second if it is locked."""
    engine = make_engine(get_settings().database_url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA busy_timeout=500")
            else:
                conn.exec_driver_sql("SET lock_timeout = '500ms'")
            conn.execute(
                update(InboundMessage).where(InboundMessage.id == iid).values(payload_type="touched")
            )
            conn.commit()
    finally:
        engine.dispose()


def test_a_claim_takes_received_rows_once_with_an_attempt_and_a_lease(db):
    ids = replies(3)
    settings = get_settings()
    with session() as s:
        first = claim(s, ids[:2], now=FIXED_NOW, settings=settings)
    with session() as s:
        second = claim(s, ids, now=FIXED_NOW, settings=settings)
    assert [r.id for r in first] == ids[:2] and [r.attempts for r in first] == [1, 1]
    assert [r.id for r in second] == ids[2:]  # the claimed two are skipped
    held = row(ids[0])
    assert held.state == "processing" and held.lease_until == FIXED_NOW + processing_lease(settings)


def test_parsing_and_extraction_run_outside_any_transaction_or_lock(db, monkeypatch):
    ids = replies(2)
    real_load, real_extract = app.inbound.process.load_email, app.inbound.process.extract_reply
    seen = []

    def load(r, *raw):
        write_elsewhere(r.id)  # fails (locked) if the claim's transaction were still open
        seen.append("parse")
        return real_load(r, *raw)

    def extract(email, **kw):
        write_elsewhere(ids[0])
        seen.append("extract")
        return real_extract(email, **kw)

    monkeypatch.setattr(app.inbound.process, "load_email", load)
    monkeypatch.setattr(app.inbound.process, "extract_reply", extract)
    with session() as s:
        states = process_many(s, ids, now=FIXED_NOW, settings=get_settings())
    assert states == dict.fromkeys(ids, "processed") and seen.count("parse") == seen.count("extract") == 2
    assert row(ids[0]).payload_type == "touched"  # written while the batch was being worked on


def test_a_worker_whose_claim_was_taken_over_writes_nothing(db, monkeypatch):
    (iid,) = replies(1)
    settings = get_settings()
    real = app.inbound.process.load_email
    later = FIXED_NOW + processing_lease(settings) + timedelta(seconds=1)

    def slow(r, *raw):
        if r.attempts == 1:  # the first worker stalls: its lease runs out, a second one does the work
            with session() as s:
                assert sweep(s, now=later, settings=settings) == ([], [iid])
            with session() as s:
                assert process_many(s, [iid], now=later, settings=settings) == {iid: "processed"}
        return real(r, *raw)

    monkeypatch.setattr(app.inbound.process, "load_email", slow)
    with session() as s:
        states = process_many(s, [iid], now=FIXED_NOW, settings=settings)
    assert states == {iid: "processed"}  # what the row says: the late worker wrote nothing
    assert entry_texts(iid) == ["Thing 0"]  # once
    assert row(iid).attempts == 2 and row(iid).processed_at == later


@pytest.fixture
def stalling_parser(monkeypatch):
    """The parser stalls on POISON (in small sleeps, so a time limit can interrupt it) and the
    inbound actors get a one-second time limit; yields the order messages were finished in."""
    real = app.inbound.process.load_email
    calls = []

    def load(r, *raw):
        email = real(r, *raw)
        if POISON in (email.text or ""):
            calls.append(("stall", r.id))
            deadline = time.monotonic() + 60  # far past the limit; bounded so a broken test ends
            while time.monotonic() < deadline:
                time.sleep(0.02)
        return email

    monkeypatch.setattr(app.inbound.process, "load_email", load)
    for actor in (process_inbound, process_inbound_batch):
        monkeypatch.setitem(actor.options, "time_limit", 1000)
    yield calls


def test_a_batch_that_runs_out_of_time_is_retried_alone_and_only_the_poison_is_quarantined(
    db, stalling_parser
):
    ids = replies(4, poison_at=1)
    poison = ids[1]
    process_inbound_batch.send(ids)
    drain()
    assert {iid: row(iid).state for iid in ids} == {
        ids[0]: "processed",
        poison: "quarantined",
        ids[2]: "processed",
        ids[3]: "processed",
    }
    held = row(poison)
    assert held.attempts == get_settings().inbound_max_attempts == 3  # the batch, then twice alone
    assert "quarantined after 3 attempts" in held.error and "ran out of time" in held.error
    assert held.lease_until is None and entry_texts(poison) == []
    assert [entry_texts(i) for i in ids if i != poison] == [["Thing 0"], ["Thing 2"], ["Thing 3"]]
    assert stalling_parser == [("stall", poison)] * 3
    with session() as s:  # the sweeper leaves it alone, however late
        assert sweep(s, now=FIXED_NOW + timedelta(days=30), settings=get_settings()) == ([], [])


def test_a_job_that_keeps_crashing_is_quarantined_after_the_attempts(db, monkeypatch):
    (iid,) = replies(1)
    crashes = []

    def broken(s, emails, settings):
        crashes.append(1)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(app.inbound.process, "find_senders", broken)
    process_inbound.send(iid)
    drain()
    held = row(iid)
    assert held.state == "quarantined" and len(crashes) == held.attempts == 3
    assert held.error == "quarantined after 3 attempts: RuntimeError: the database went away"


def test_the_sweeper_takes_back_expired_claims_and_quarantines_after_the_attempts(db):
    ids = replies(2)
    settings = get_settings()
    lease = processing_lease(settings)
    now = FIXED_NOW
    with session() as s:  # the rows' broker messages were lost: enqueued again once per lease
        assert sweep(s, now=now, settings=settings) == ([], [])  # too young
        now += timedelta(seconds=settings.lease_s + 1)
        assert sweep(s, now=now, settings=settings) == (ids, [])
        assert sweep(s, now=now + timedelta(seconds=settings.tick_s), settings=settings) == ([], [])
    for attempt in range(1, 4):  # a worker claims them and dies, three times
        with session() as s:
            assert [r.attempts for r in claim(s, ids, now=now, settings=settings)] == [attempt] * 2
            assert sweep(s, now=now + lease, settings=settings) == ([], [])  # still held
        now += lease + timedelta(seconds=1)
        with session() as s:
            assert sweep(s, now=now, settings=settings) == ([], ids if attempt < 3 else [])
    assert {row(i).state for i in ids} == {"quarantined"}
    assert "did not finish within its lease" in row(ids[0]).error


def test_reprocessing_a_quarantined_message_starts_its_attempts_again(db, stalling_parser):
    (iid,) = replies(1, poison_at=0)
    process_inbound.send(iid)
    drain()
    assert row(iid).state == "quarantined"
    stalling_parser.clear()
    with session() as s:
        s.execute(
            update(InboundMessage).where(InboundMessage.id == iid).values(raw=mail(0, "x@y", "- fixed"))
        )
    with session() as s:
        assert reset_for_reprocess(s, [iid]) == [iid]
    fresh = row(iid)
    assert (fresh.state, fresh.attempts, fresh.error, fresh.lease_until) == ("received", 0, "", None)
    with session() as s:
        assert process_many(s, [iid], now=FIXED_NOW, settings=get_settings()) == {iid: "unverified"}
    assert row(iid).attempts == 1


def test_the_reprocess_command_takes_quarantined_messages(db, capsys):
    from app.cli import main

    ids = replies(2)
    with session() as s:
        s.execute(update(InboundMessage).values(state="quarantined", attempts=3, error="quarantined after 3"))
    assert main(["inbound", "reprocess", "--quarantined"]) == 0
    assert "2 inbound messages reprocessed" in capsys.readouterr().out
    assert {row(i).state for i in ids} == {"processed"} and entry_texts(ids[1]) == ["Thing 1"]


def test_a_session_interrupted_by_a_time_limit_discards_its_connection(db):
    invalidated = []

    def on_invalidate(*args):
        invalidated.append(args)

    event.listen(db, "invalidate", on_invalidate)
    try:
        with pytest.raises(TimeLimitExceeded):
            with session() as s:
                s.execute(text("SELECT 1"))
                raise TimeLimitExceeded()
        assert len(invalidated) == 1
        with pytest.raises(RuntimeError):
            with session() as s:
                s.execute(text("SELECT 1"))
                raise RuntimeError("an ordinary error is rolled back, the connection kept")
        assert len(invalidated) == 1
        with session() as s:
            assert s.execute(text("SELECT 1")).scalar() == 1
    finally:
        event.remove(db, "invalidate", on_invalidate)
