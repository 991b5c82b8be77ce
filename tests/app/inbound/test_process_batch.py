"""process_many: a batch of stored messages processed in one transaction, as process_inbound_batch does."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import date

import pytest
from dramatiq.middleware import CurrentMessage
from sqlalchemy import select, update

import app.inbound.process
import jobs.actors
from app.checkins.reply_tokens import reply_address
from app.db import get_engine, session
from app.inbound.accept import accept
from app.inbound.process import Raced, _set_states, extract_reply, process_many, reset_for_reprocess
from app.models import Entry, InboundMessage, Member, OutboundMessage
from app.settings import get_settings
from jobs.actors import (
    INBOUND_BATCHES_AT_ONCE,
    INBOUND_TOP_UP,
    TakenAlong,
    process_inbound,
    process_inbound_batch,
)
from jobs.broker import drain
from tests.app.checkins.test_loop import make_team
from tests.conftest import FIXED_NOW, JSONLog, statements_seen

DAY = date(2026, 11, 23)
SENT_DAY = date(2026, 11, 20)


def mail(n: int, to: str, body: str, extra: str = "", sender: str = "Ada <ada@example.com>") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Re: What did you get done today?\r\n"
        f"Message-ID: <batch-{n}@example.com>\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def store(raw: bytes, key: str) -> int:
    with session() as s:
        return accept(s, provider="raw", raw=raw, key=key, now=FIXED_NOW)[0]


def sent_to(member_id: int, message_id: str) -> None:
    """A reminder we sent to ``member_id`` for SENT_DAY, with ``message_id``."""
    with session() as s:
        member = s.get(Member, member_id)
        s.add(
            OutboundMessage(
                idempotency_key=f"reminder:{member_id}:{SENT_DAY}",
                kind="reminder",
                team_id=member.team_id,
                member_id=member_id,
                to_addr=member.email,
                subject="What did you get done today?",
                template="reminder",
                context=json.dumps({"day": SENT_DAY.isoformat()}),
                message_id=message_id,
            )
        )


def rows(ids: list[int]) -> dict[int, tuple]:
    with session() as s:
        found = s.execute(
            select(InboundMessage.id, InboundMessage.state, InboundMessage.member_id, InboundMessage.day)
            .where(InboundMessage.id.in_(ids))
            .order_by(InboundMessage.id)
        ).all()
        return {iid: (state, member, day) for iid, state, member, day in found}


def entry_texts(iid: int) -> list[str]:
    with session() as s:
        return list(s.execute(select(Entry.text).where(Entry.inbound_id == iid).order_by(Entry.id)).scalars())


def mixed_batch() -> tuple[int, int, dict[str, int]]:
    """Ada, Bob, and one stored message per way a reply can end; (ada, bob, ids by name)."""
    ada = make_team()
    with session() as s:
        bob = s.execute(select(Member.id).where(Member.email == "bob@example.com")).scalar_one()
    secret = get_settings().secret_key
    token = reply_address(secret, "reply.test", ada, DAY)
    sent_to(bob, "<reminder-bob@mail.test>")
    auth = "Authentication-Results: mx.reply.test; spf=pass smtp.mailfrom=ada@example.com\r\n"
    ids = {
        "token": store(mail(1, token, "- Shipped the export #billing"), "k1"),
        "in_reply_to": store(
            mail(
                2,
                "team@reply.test",
                "- Reviewed the importer",
                "In-Reply-To: <reminder-bob@mail.test>\r\n",
                "Bob <bob@example.com>",
            ),
            "k2",
        ),
        "from": store(mail(3, "team@reply.test", "- Paired with @bob", auth), "k3"),
        "unverified": store(mail(4, "team@reply.test", "- Forged it"), "k4"),
        "ignored": store(mail(5, token, "I am away", "Auto-Submitted: auto-replied\r\n"), "k5"),
        "bad_token": store(mail(6, "reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test", "- x"), "k6"),
        "second_token": store(mail(7, token, "- Wrote the docs\r\n- Fixed the build"), "k7"),
    }
    return ada, bob, ids


def test_a_batch_ends_each_message_as_processing_it_alone_would(db):
    ada, bob, ids = mixed_batch()
    settings = replace(get_settings(), authserv_ids=("mx.reply.test",))  # believes the "from" mail's header
    with session() as s:
        states = process_many(s, [*ids.values(), 987654], now=FIXED_NOW, settings=settings)
    assert states[987654] == "missing"
    found = rows(list(ids.values()))
    assert found[ids["token"]] == ("processed", ada, DAY)
    assert found[ids["in_reply_to"]] == ("processed", bob, SENT_DAY)
    assert found[ids["from"]] == ("processed", ada, FIXED_NOW.date())
    assert found[ids["unverified"]][:2] == ("unverified", None)
    assert found[ids["ignored"]][0] == "ignored"
    assert found[ids["bad_token"]][0] == "unverified"
    assert found[ids["second_token"]] == ("processed", ada, DAY)
    assert {name: states[iid] for name, iid in ids.items()} == {
        name: found[iid][0] for name, iid in ids.items()
    }
    assert entry_texts(ids["token"]) == ["Shipped the export #billing"]
    assert entry_texts(ids["second_token"]) == ["Wrote the docs", "Fixed the build"]
    assert entry_texts(ids["unverified"]) == []
    with session() as s:  # run again: nothing changes, nothing is added twice
        again = process_many(s, list(ids.values()), now=FIXED_NOW, settings=settings)
    assert again == {iid: found[iid][0] for iid in ids.values()}
    assert entry_texts(ids["second_token"]) == ["Wrote the docs", "Fixed the build"]


@pytest.mark.parametrize("line", ["- Thing {i}", "- Thing {i} with @bob"])
def test_a_batch_costs_the_same_statements_whatever_its_size(db, line):
    """Also when an entry mentions someone, so that its notice needs the entries' ids (on SQLite,
    SQLAlchemy's INSERT .. RETURNING in the rows' order sent one statement a row)."""
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)

    def statements(n: int, first: int) -> int:
        ids = [store(mail(i, token, line.format(i=i)), f"s{i}") for i in range(first, first + n)]
        with statements_seen(get_engine()) as seen, session() as s:
            states = process_many(s, ids, now=FIXED_NOW, settings=get_settings())
        assert set(states.values()) == {"processed"}
        return len(seen)

    # claim; senders; the claims checked, states, the endpoints listening to the batch's teams (one
    # SELECT; a team without one gets no row), entries (+ a BEGIN for each of the 3 transactions);
    # a mention adds the largest entry id and the new ones (SQLite), and the notices
    assert statements(2, 0) == statements(40, 100) <= (9 if "@" not in line else 13)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_on_postgresql_a_batch_of_any_size_sends_the_same_statement_texts(db):
    """Texts psycopg converts once and prepares: the claim and its check bind the ids as one
    array, where an IN of one parameter an id made a text per batch size, re-parsed past 50."""
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)

    def sent(n: int, first: int) -> tuple[list[int], list[tuple[str, object]]]:
        ids = [store(mail(i, token, f"- Thing {i}"), f"s{i}") for i in range(first, first + n)]
        with statements_seen(get_engine()) as seen, session() as s:
            states = process_many(s, ids, now=FIXED_NOW, settings=get_settings())
        assert set(states.values()) == {"processed"}
        return ids, seen

    (_, small), (ids, large) = sent(2, 0), sent(60, 100)
    assert [st for st, _ in small] == [st for st, _ in large]
    for _, params in large:
        for one in params if isinstance(params, list | tuple) else [params]:  # executemany: a list
            assert len(one) <= 20
    assert [entry_texts(ids[0]), entry_texts(ids[-1])] == [["Thing 100"], ["Thing 159"]]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_on_postgresql_replies_of_many_members_are_looked_up_with_the_same_statement_texts(db):
    """find_senders binds a batch's member ids and Message-IDs as one array each: an IN of a
    parameter a member made a text per batch, re-parsed past 50 members."""
    from app.models import Team

    with session() as s:
        team = Team(name="Many", timezone="UTC", workdays="1234567")
        s.add(team)
        s.flush()
        people = [Member(team_id=team.id, email=f"m{i}@example.com", name=f"M{i}") for i in range(60)]
        s.add_all(people)
        s.flush()
        members = [(m.id, m.email) for m in people]

    def sent(group: list[tuple[int, str]]) -> tuple[list[int], list[str]]:
        ids = []
        for n, (mid, email) in enumerate(group):
            token = reply_address(get_settings().secret_key, "reply.test", mid, DAY)
            raw = mail(mid, token, f"- Thing of {mid}", f"References: <r{n}.{mid}@x>\r\n", f"M <{email}>")
            ids.append(store(raw, f"m{mid}"))
        with statements_seen(get_engine()) as seen, session() as s:
            states = process_many(s, ids, now=FIXED_NOW, settings=get_settings())
        assert set(states.values()) == {"processed"}
        return ids, [st for st, _ in seen]

    (_, few), (ids, many) = sent(members[:2]), sent(members[2:])
    assert few == many
    assert [entry_texts(i) for i in ids] == [[f"Thing of {mid}"] for mid, _ in members[2:]]
    assert [v[1] for v in rows(ids).values()] == [mid for mid, _ in members[2:]]


def test_a_message_that_cannot_be_processed_fails_alone_with_the_reason(db, monkeypatch):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    real = extract_reply

    def picky(email, **kw):
        if "boom" in (email.text or ""):
            raise ValueError("cannot read this reply")
        return real(email, **kw)

    monkeypatch.setattr(app.inbound.process, "extract_reply", picky)
    ids = [store(mail(i, token, body), f"f{i}") for i, body in enumerate(["- One", "- boom", "- Two"])]
    process_inbound_batch.fn(ids)
    assert [v[0] for v in rows(ids).values()] == ["processed", "failed", "processed"]
    with session() as s:
        failed = s.get(InboundMessage, ids[1])
    assert failed.error == "ValueError: cannot read this reply"
    assert entry_texts(ids[0]) == ["One"] and entry_texts(ids[1]) == []


def test_what_processing_logs_of_a_batch_carries_each_messages_inbound_id(db, monkeypatch):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    real = extract_reply

    def picky(email, **kw):
        if "boom" in (email.text or ""):
            raise ValueError(f"cannot read the reply of {email.from_addr}")
        return real(email, **kw)

    monkeypatch.setattr(app.inbound.process, "extract_reply", picky)
    ids = [store(mail(i, token, body), f"l{i}") for i, body in enumerate(["- One", "- boom"])]
    with JSONLog() as log:
        process_inbound_batch.fn(ids)
    lines = log.lines
    failed = next(x for x in lines if x["msg"] == f"inbound {ids[1]} failed")
    assert (
        failed["inbound_id"] == ids[1]
        and "ValueError: cannot read the reply of a***@example.com" in failed["exc"]
    )
    states = {x["inbound_id"]: x["msg"] for x in lines if x["logger"] == "donebox.jobs"}
    assert states == {ids[0]: f"inbound {ids[0]}: processed", ids[1]: f"inbound {ids[1]}: failed"}
    assert "ada@example.com" not in log.text


def test_a_process_runs_two_batches_at_once_whatever_its_threads(db, monkeypatch):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    ids = [store(mail(i, token, f"- Thing {i}"), f"c{i}") for i in range(16)]
    real, running, most, lock = jobs.actors._process, [0], [0], threading.Lock()
    together = threading.Event()  # two batches are in at once: then every thread has had its chance

    def counted(inbound_ids, top_up=0):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            if running[0] >= 2:
                together.set()
        try:
            together.wait(5)  # the first in waits for a second, however late the threads start
            time.sleep(0.05)  # and then long enough for the others to ask for their turn
            real(inbound_ids, top_up=top_up)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(jobs.actors, "_process", counted)
    threads = [
        threading.Thread(target=process_inbound_batch.fn, args=(ids[i : i + 2],)) for i in range(0, 16, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert INBOUND_BATCHES_AT_ONCE == 2 and most[0] == INBOUND_BATCHES_AT_ONCE  # 8 jobs, 8 threads
    assert [v[0] for v in rows(ids).values()] == ["processed"] * 16


def test_a_batch_job_tops_its_claim_up_to_its_databases_batch_size(db):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    size = INBOUND_TOP_UP[get_engine().dialect.name]
    assert size == {"postgresql": 256, "sqlite": 128}[get_engine().dialect.name]
    ids = [store(mail(i, token, f"- Thing {i}"), f"u{i}") for i in range(size + 2)]
    process_inbound_batch.fn(ids[:1])  # intake's group of one
    assert [v[0] for v in rows(ids).values()] == ["processed"] * size + ["received"] * 2


def test_a_batch_job_takes_along_the_next_never_tried_messages_and_their_own_jobs_find_them_done(db):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    ids = [store(mail(i, token, f"- Thing {i}"), f"t{i}") for i in range(6)]
    with session() as s:  # tried before: such a message goes alone, never along with others
        s.execute(InboundMessage.__table__.update().where(InboundMessage.id == ids[4]).values(attempts=1))
    process_inbound_batch.fn(ids[:2])  # intake's group of two
    assert {i: v[0] for i, v in rows(ids).items()} == {
        ids[0]: "processed",
        ids[1]: "processed",
        ids[2]: "processed",
        ids[3]: "processed",
        ids[4]: "received",
        ids[5]: "processed",
    }
    with session() as s:
        again = process_many(s, ids[2:4], now=FIXED_NOW, settings=get_settings(), top_up=64)
    assert again == {ids[2]: "processed", ids[3]: "processed"}  # their own job: nothing to do
    assert [entry_texts(i) for i in ids] == [
        ["Thing 0"],
        ["Thing 1"],
        ["Thing 2"],
        ["Thing 3"],
        [],
        ["Thing 5"],
    ]


def test_taken_along_skips_a_job_only_when_it_was_sent_before_the_claim_that_took_its_ids():
    t = TakenAlong()
    t.remember([5, 6], began_ms=100_000)
    before = 100_000 - TakenAlong.SKEW_MS - 1
    assert t.left([5, 6, 7], sent_ms=before) == [7]  # 5 and 6 were done by the claim
    assert t.left([5], sent_ms=before) == [5]  # forgotten once skipped: a second job runs
    t.remember([8], began_ms=100_000)
    assert t.left([8], sent_ms=100_000 - TakenAlong.SKEW_MS + 1) == [8]  # within the clocks' skew
    assert t.left([8], sent_ms=100_500) == [8]  # sent after the claim (a reprocess, the sweeper)
    t.MOST = 3
    t.remember(range(20, 30), began_ms=100_000)
    assert t.left(list(range(20, 30)), sent_ms=before) == list(range(20, 27))  # the newest 3 kept


def run_as_sent(ids: list[int], seconds_ago: float) -> None:
    """Run process_inbound_batch for ``ids`` as a broker message sent ``seconds_ago`` would."""
    message = process_inbound_batch.message(ids)
    message = message.copy(message_timestamp=int((time.time() - seconds_ago) * 1000))
    token = CurrentMessage._MESSAGE.set(message)
    try:
        process_inbound_batch.fn(ids)
    finally:
        CurrentMessage._MESSAGE.reset(token)


def test_a_job_whose_messages_another_job_took_along_skips_the_database_and_a_later_one_runs(db):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    ids = [store(mail(i, token, f"- Thing {i}"), f"s{i}") for i in range(4)]
    run_as_sent(ids[:2], seconds_ago=5)  # takes ids[2:] along
    assert [v[0] for v in rows(ids).values()] == ["processed"] * 4
    with statements_seen(get_engine()) as statements:
        run_as_sent(ids[3:], seconds_ago=5)  # intake's job for it, sent before that claim
        assert statements == []
        with session() as s:  # reprocessed by hand: a job sent now runs
            assert reset_for_reprocess(s, [ids[2]]) == [ids[2]]
        run_as_sent(ids[2:3], seconds_ago=0)
        assert statements
    assert [v[0] for v in rows(ids).values()] == ["processed"] * 4
    assert [entry_texts(i) for i in ids] == [["Thing 0"], ["Thing 1"], ["Thing 2"], ["Thing 3"]]
    with session() as s:
        assert s.get(InboundMessage, ids[2]).attempts == 1  # reset, then claimed once more


def test_a_top_up_fills_the_batch_to_its_size_with_the_lowest_ids_after_the_jobs_own(db):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    ids = [store(mail(i, token, f"- Thing {i}"), f"u{i}") for i in range(8)]
    taken: list[int] = []
    with session() as s:
        states = process_many(s, ids[1:3], now=FIXED_NOW, settings=get_settings(), top_up=4, taken=taken)
    # the two of its own, then the next two ids after them; the one before them is not its own
    assert taken == ids[1:5] and states == dict.fromkeys(ids[1:5], "processed")
    assert [v[0] for v in rows(ids).values()] == ["received", *["processed"] * 4, *["received"] * 3]


def test_states_are_written_to_the_claims_that_still_hold_and_a_lost_claim_fails_the_write(db):
    ada = make_team()
    ids = [store(mail(i, "x@reply.test", f"- Thing {i}"), f"w{i}") for i in range(4)]
    with session() as s:
        s.execute(
            update(InboundMessage).where(InboundMessage.id.in_(ids)).values(state="processing", attempts=1)
        )
    done = {"processed_at": FIXED_NOW, "error": ""}
    with session() as s:
        _set_states(
            s,
            [  # two sets of columns, NULLs, a date, a flag and bytes among them
                {"id": ids[0], "attempts": 1, "state": "processed", "member_id": ada, "day": DAY, **done}
                | {"reply_html": True, "cut_at": None, "raw": b"\x00fetched"},
                {"id": ids[1], "attempts": 1, "state": "processed", "member_id": ada, "day": DAY, **done}
                | {"reply_html": False, "cut_at": 3, "raw": b""},
                {"id": ids[2], "attempts": 1, "state": "ignored", **done, "error": "an auto-reply"},
            ],
        )
    with session() as s:
        got = {m.id: m for m in s.execute(select(InboundMessage).where(InboundMessage.id.in_(ids))).scalars()}
    assert [(got[i].state, got[i].member_id, got[i].day) for i in ids] == [
        ("processed", ada, DAY),
        ("processed", ada, DAY),
        ("ignored", None, None),
        ("processing", None, None),
    ]
    assert [(got[i].reply_html, got[i].cut_at, got[i].raw) for i in ids[:2]] == [
        (True, None, b"\x00fetched"),
        (False, 3, b""),
    ]
    assert got[ids[2]].error == "an auto-reply" and got[ids[2]].processed_at is not None
    # a claim that ran out: the row is processing again, under another worker's attempt
    with session() as s:
        s.execute(
            update(InboundMessage).where(InboundMessage.id == ids[2]).values(state="processing", attempts=2)
        )
    with pytest.raises(Raced), session() as s:
        _set_states(
            s,
            [
                {"id": ids[3], "attempts": 1, "state": "ignored"},
                {"id": ids[2], "attempts": 1, "state": "failed"},
            ],
        )
    assert [rows(ids)[i][0] for i in ids[2:]] == ["processing", "processing"]  # the write failed whole


@pytest.mark.parametrize("own", [3, 1], ids=["its-own-three", "one-taking-two-along"])
def test_when_the_batch_transaction_fails_each_message_is_processed_in_a_job_of_its_own(db, monkeypatch, own):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    real = _set_states

    def no_batches(s, changes):
        if len(changes) > 1:
            raise RuntimeError("the batch statement failed")
        return real(s, changes)

    monkeypatch.setattr(app.inbound.process, "_set_states", no_batches)
    ids = [store(mail(i, token, f"- Thing {i}"), f"b{i}") for i in range(3)]
    sent_alone: list[int] = []
    send = process_inbound.send
    # held back until checked: the embedded broker's workers would otherwise start them at once
    monkeypatch.setattr(process_inbound, "send", sent_alone.append)
    with JSONLog() as log:
        process_inbound_batch.fn(ids[:own])  # a group of one takes the other two along
    assert [v[0] for v in rows(ids).values()] == ["received"] * 3  # released, those taken along too
    assert sent_alone == ids  # one job each
    (failed,) = [x for x in log.lines if "the batch statement failed" in x["msg"]]
    assert failed["msg"].startswith(f"inbound {ids}: RuntimeError")
    monkeypatch.setattr(process_inbound, "send", send)
    for iid in sent_alone:
        send(iid)
    drain()
    assert [v[0] for v in rows(ids).values()] == ["processed"] * 3
    assert [entry_texts(i) for i in ids] == [["Thing 0"], ["Thing 1"], ["Thing 2"]]
