"""Pass-through mode: a queue that falls behind sends bulk mail untracked until it catches up."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from app.checkins.outgoing import checkin_row
from app.db import get_engine, session
from app.models import Member, MessageEvent, OutboundMessage, PassThrough, Team
from app.relay import outbox, passthrough
from app.relay.pipeline import deliver_many
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from jobs.scheduler import tick
from tests.conftest import FIXED_NOW, query_plan, statements_seen

NOW = FIXED_NOW
LEASE = timedelta(hours=2)  # long: the tick's sweeper leaves these rows to the test
PAGE = '<p>Hello</p><p><a href="https://example.com/report">the report</a></p>'


def api_row(key: str, *, at=NOW, batch_id: str | None = None) -> int:
    """A tracked API message queued at ``at`` (of a batch, or a single transactional one)."""
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=at,
            idempotency_key=f"api:{key}",
            kind="api",
            to_addr=f"{key}@example.com",
            subject="Hello",
            template="api",
            context={"text": "Hello", "html": PAGE, "_track": True},
            message_id=outbox.new_message_id("mail.test"),
            batch_id=batch_id,
            lease_until=at + LEASE,
        )
    return mid


def digest_row(at=NOW) -> int:
    """Ada's digest of the day, tracked (her team said so when it was made)."""
    with session() as s:
        ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
        t = s.get(Team, ada.team_id)
        row = checkin_row("digest", ada, t, "UTC", NOW.date(), outbox.new_message_id("mail.test"), track=True)
        mid, _ = outbox.create(s, now=at, lease_until=at + LEASE, **row)
    return mid


def state() -> PassThrough:
    with session() as s:
        return passthrough.current(s)


def kinds(mid: int) -> list[str]:
    with session() as s:
        return [e.kind for e in outbox.events(s, mid)]


def html_of(sent_message) -> str:
    return sent_message.get_body(("html",)).get_content()


def send(ids, at):
    t = MemoryTransport()
    states = deliver_many(ids, transport=t, now=at)
    return states, {m["To"]: m for m in t.sent}


def test_a_backlog_switches_pass_through_on_bulk_goes_untracked_and_it_switches_off_once_drained(team):
    digest, batch_a, batch_b, single = (
        digest_row(),
        api_row("a", batch_id="nl-1"),
        api_row("b", batch_id="nl-1"),
        api_row("single"),
    )
    settings = get_settings()
    assert settings.pass_through_after_s == 300
    assert tick(now=NOW + timedelta(minutes=4), settings=settings)["pass_through"] == []
    assert (state().active, state().oldest_wait_s) == (False, 240)

    assert tick(now=NOW + timedelta(minutes=6), settings=settings)["pass_through"] == ["on"]
    on = state()
    assert (on.active, on.changed_at, on.switched_on, on.oldest_wait_s, on.threshold_s) == (
        True,
        NOW + timedelta(minutes=6),
        1,
        360,
        300,
    )
    states, out = send([digest, batch_a, single], NOW + timedelta(minutes=6))
    assert set(states.values()) == {"sent"}
    # bulk: neither the pixel nor rewritten links, the List-Unsubscribe headers kept, and said so
    for mid, to in ((digest, "ada@example.com"), (batch_a, "a@example.com")):
        assert "/t/o/" not in html_of(out[to]) and "/t/c/" not in html_of(out[to])
        assert out[to]["List-Unsubscribe"]
        assert kinds(mid)[-2:] == ["pass_through", "sent"]
    assert "https://example.com/report" in html_of(out["a@example.com"])
    # one transactional message is sent as its producer asked
    assert "/t/o/" in html_of(out["single@example.com"]) and "/t/c/" in html_of(out["single@example.com"])
    assert "pass_through" not in kinds(single)
    assert state().passed == 2

    # the queue catches up: below the threshold but above half of it, it stays on (no flapping)
    later = api_row("later", at=NOW + timedelta(minutes=7), batch_id="nl-2")
    assert send([batch_b], NOW + timedelta(minutes=8))[0] == {batch_b: "sent"}
    assert tick(now=NOW + timedelta(minutes=10), settings=settings)["pass_through"] == []
    assert (state().active, state().oldest_wait_s) == (True, 180)
    assert send([later], NOW + timedelta(minutes=10))[0] == {later: "sent"}
    assert tick(now=NOW + timedelta(minutes=11), settings=settings)["pass_through"] == ["off"]
    off = state()
    assert (off.active, off.changed_at, off.oldest_wait_s) == (False, NOW + timedelta(minutes=11), None)
    assert (off.switched_on, off.passed) == (1, 4)

    # tracked again
    after = api_row("after", at=NOW + timedelta(minutes=11), batch_id="nl-3")
    _, out = send([after], NOW + timedelta(minutes=11))
    assert "/t/o/" in html_of(out["after@example.com"]) and "pass_through" not in kinds(after)
    with session() as s:
        noted = s.execute(select(MessageEvent.message_id).where(MessageEvent.kind == "pass_through"))
        assert sorted(noted.scalars()) == sorted([digest, batch_a, batch_b, later])


def test_the_operator_overrides_the_automatic_mode_and_auto_hands_it_back(db):
    settings = get_settings()
    waiting = api_row("waiting", batch_id="nl-1")
    with session() as s:
        passthrough.set_mode(s, "off", by="ops@example.com", now=NOW, settings=settings)
    assert tick(now=NOW + timedelta(minutes=10), settings=settings)["pass_through"] == []
    assert (state().active, state().oldest_wait_s, state().switched_on) == (False, 600, 0)

    assert send([waiting], NOW + timedelta(minutes=10))[0] == {waiting: "sent"}
    assert "pass_through" not in kinds(waiting)  # off: tracked, however late
    with session() as s:  # on with nothing waiting: at once, without a tick
        row = passthrough.set_mode(
            s, "on", by="ops@example.com", now=NOW + timedelta(minutes=11), settings=settings
        )
        assert (row.mode, row.active, row.mode_by) == ("on", True, "ops@example.com")
    assert tick(now=NOW + timedelta(minutes=12), settings=settings)["pass_through"] == []
    assert (state().active, state().switched_on) == (True, 1)
    fresh = api_row("fresh", at=NOW + timedelta(minutes=12), batch_id="nl-2")
    assert send([fresh], NOW + timedelta(minutes=12))[0] == {fresh: "sent"}
    assert "pass_through" in kinds(fresh)

    with session() as s:  # auto with an empty queue: off again at once
        assert not passthrough.set_mode(
            s, "auto", by="cli", now=NOW + timedelta(minutes=13), settings=settings
        ).active
    api_row("stuck", at=NOW + timedelta(minutes=13), batch_id="nl-3")  # then a backlog: on by itself
    assert tick(now=NOW + timedelta(minutes=19), settings=settings)["pass_through"] == ["on"]
    assert state().switched_on == 2 and state().mode == "auto"


def test_with_a_threshold_of_zero_it_never_switches_itself_on(env, db):
    env.setenv("PASS_THROUGH_AFTER_S", "0")
    get_settings.cache_clear()
    api_row("old", batch_id="nl-1")
    assert tick(now=NOW + timedelta(days=1), settings=get_settings())["pass_through"] == []
    assert (state().active, state().oldest_wait_s, state().threshold_s) == (False, 86400, 0)


def test_a_mode_that_is_not_auto_on_or_off_is_refused_by_name(db):
    with session() as s, pytest.raises(passthrough.RequestError, match="mode must be one of auto, on, off"):
        passthrough.set_mode(s, "sometimes", by="cli", now=NOW, settings=get_settings())


def test_only_waiting_messages_count_not_scheduled_ones_nor_retries_still_ahead(db):
    with session() as s:
        outbox.create(
            s,
            now=NOW,
            idempotency_key="later",
            kind="api",
            to_addr="x@example.com",
            template="api",
            message_id="<later@mail.test>",
            state="scheduled",
            send_at=NOW + timedelta(days=1),
        )
    retry = api_row("retry")
    with session() as s:
        outbox.claim(s, retry, now=NOW, lease_s=60)
        outbox.finish(s, retry, "deferred", now=NOW, next_attempt_at=NOW + timedelta(hours=1))
        assert outbox.oldest_due(s, now=NOW + timedelta(minutes=30)) is None
        assert outbox.oldest_due(s, now=NOW + timedelta(hours=2)) == NOW + timedelta(hours=1)
    api_row("newer", at=NOW + timedelta(hours=1, minutes=30))
    with session() as s:
        assert outbox.oldest_due(s, now=NOW + timedelta(hours=2)) == NOW + timedelta(hours=1)
        assert outbox.oldest_due(s, now=NOW + timedelta(hours=1, minutes=40)) == NOW + timedelta(hours=1)
        outbox.sweep(s, now=NOW + timedelta(hours=2), lease_s=60)  # the retry is queued again
        assert outbox.oldest_due(s, now=NOW + timedelta(hours=2)) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "kind, batch_id, bulk",
    [
        ("digest", None, True),
        ("reminder", None, True),
        ("api", "nl-1", True),
        ("api", None, False),
        ("signin", None, False),
        ("invite", None, False),
    ],
)
def test_bulk_mail_is_reminders_digests_and_batches(kind, batch_id, bulk):
    assert passthrough.is_bulk(SimpleNamespace(kind=kind, batch_id=batch_id)) is bulk


def test_workers_read_the_state_through_a_short_cache(db, monkeypatch):
    clock = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(passthrough.time, "monotonic", lambda: clock.t)
    settings = get_settings()
    assert passthrough.is_active(settings) is False
    with session() as s:  # another process switches it on
        passthrough._locked(s)
        s.execute(update(PassThrough).values(active=True))
    assert passthrough.is_active(settings) is False
    clock.t += passthrough.CACHE_S + 0.1
    assert passthrough.is_active(settings) is True


def test_the_oldest_waiting_look_up_reads_the_due_index(db):
    with session() as s:
        rows = [
            {
                "idempotency_key": f"k{i}",
                "kind": "api",
                "team_id": None,
                "member_id": None,
                "to_addr": f"r{i}@example.com",
                "subject": "",
                "template": "api",
                "context": "{}",
                "message_id": f"<{i}@mail.test>",
                "expires_at": None,
            }
            for i in range(3000)
        ]
        ids = outbox.create_many(s, rows, now=NOW, lease_until=NOW + LEASE)
        s.execute(update(OutboundMessage).where(OutboundMessage.id.in_(ids[:2900])).values(state="sent"))
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE outboundmessage")
    with statements_seen(engine) as seen:
        with session() as s:
            assert outbox.oldest_due(s, now=NOW + timedelta(minutes=1)) == NOW
    (statement, parameters) = [q for q in seen if "min(" in q[0]][0]
    plan = query_plan(engine, statement, parameters)
    assert plan.count("ix_outbound_due") == 2, plan


def test_two_schedulers_ticking_at_once_count_one_switch(db):
    import threading

    api_row("old", batch_id="nl-1")
    settings, results = get_settings(), []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(tick(now=NOW + timedelta(minutes=6), settings=settings)["pass_through"])

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[], ["on"]]
    assert (state().active, state().switched_on) == (True, 1)


def test_a_composed_batch_message_goes_out_untracked_with_its_parts_intact_while_on(db):
    """The composed path (SMTP, the full API) asks pass-through too: bulk is untracked and said so."""
    import json

    from app.relay import composed
    from tests.app.relay.composed_samples import INVOICE_LINK, as_bytes, invoice, payloads, tiny_pdf

    with session() as s:
        passthrough.set_mode(s, "on", by="ops@example.com", now=NOW, settings=get_settings())
        body_id = composed.store(s, as_bytes(invoice()), now=NOW)
        ids = [
            outbox.create(
                s,
                now=NOW,
                idempotency_key=f"api:{body_id}:{to}",
                kind="api",
                to_addr=to,
                subject="Invoice 42",
                context=json.dumps({"_track": True}),
                message_id=outbox.new_message_id("mail.test"),
                body_id=body_id,
                from_addr="billing@app.example",
                batch_id=batch,
                lease_until=NOW + LEASE,
            )[0]
            for to, batch in (("bulk@example.com", "nl-9"), ("single@example.com", None))
        ]
    t = MemoryTransport()
    assert set(deliver_many(ids, transport=t, now=NOW).values()) == {"sent"}
    assert len(t.sent) == 2
    bulk, single = ids
    assert kinds(bulk)[-2:] == ["pass_through", "sent"] and "pass_through" not in kinds(single)
    with session() as s:
        sent = {mid: outbox.content(s, mid) for mid in ids}
    assert b"/t/o/" not in sent[bulk] and INVOICE_LINK.encode() in sent[bulk]
    assert b"/t/o/" in sent[single]
    assert payloads(sent[bulk], "application/pdf") == [tiny_pdf()]
