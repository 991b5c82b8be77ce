import logging
from datetime import timedelta

import pytest
from sqlalchemy import event, orm, select

from app import logs
from app.db import session
from app.errors import PermanentSendError, TransientSendError
from app.models import OutboundMessage, Suppression
from app.relay import domains, outbox, render, suppressions
from app.relay.pipeline import CLAIM_BATCH, deliver, deliver_many
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from tests.conftest import FIXED_NOW, JSONLog, statements_seen

NOW = FIXED_NOW


class Failing:
    """A transport that raises what it is given."""

    name = "failing"

    def __init__(self, exc):
        self.exc = exc

    def send(self, message):
        raise self.exc


def reminder_for(member_email="ada@example.com"):
    from app.checkins.outgoing import create_reminder
    from app.models import Member, Team

    with session() as s:
        m = s.execute(select(Member).where(Member.email == member_email)).scalar_one()
        t = s.get(Team, m.team_id)
        mid, _ = create_reminder(s, m, t, NOW.date(), now=NOW, settings=get_settings())
    return mid


def row(mid):
    with session() as s:
        return s.get(OutboundMessage, mid)


def test_a_reminder_is_rendered_with_a_signed_reply_address_and_sent(team):
    mid = reminder_for()
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "sent"
    msg = t.sent[0]
    assert msg["To"] == "ada@example.com"
    assert msg["Reply-To"].startswith("reply+") and msg["Reply-To"].endswith("@reply.test")
    assert msg["Message-ID"] == row(mid).message_id
    assert "What did you get done today?" in msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert 'style="' in html and "<style>" not in html  # CSS inlined
    assert row(mid).state == "sent" and row(mid).sent_at == NOW


def test_a_message_is_delivered_once_even_if_its_job_runs_twice(team):
    mid = reminder_for()
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "sent"
    assert deliver(mid, transport=t, now=NOW) == "not-claimed"
    assert len(t.sent) == 1


def test_a_suppressed_address_is_never_sent_to(team):
    with session() as s:
        suppressions.add(s, "ada@example.com", "bounce", now=NOW)
    mid = reminder_for()
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "suppressed"
    assert t.sent == [] and "bounce" in row(mid).error


def test_a_transient_failure_defers_with_backoff_and_keeps_the_message_id(team):
    mid = reminder_for()
    first_id = row(mid).message_id
    assert (
        deliver(mid, transport=Failing(TransientSendError("421 try later", retry_in_s=30)), now=NOW)
        == "deferred"
    )
    r = row(mid)
    assert r.error == "421 try later" and r.next_attempt_at >= NOW + timedelta(seconds=30)
    with session() as s:
        assert outbox.sweep(s, now=r.next_attempt_at, lease_s=60) == [mid]
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=r.next_attempt_at) == "sent"
    assert t.sent[0]["Message-ID"] == first_id and row(mid).attempts == 2


def test_a_retry_that_would_land_after_the_reminders_day_fails_instead(team):
    mid = reminder_for()
    late = row(mid).expires_at - timedelta(seconds=10)
    assert deliver(mid, transport=Failing(TransientSendError("busy", retry_in_s=60)), now=late) == "failed"
    assert row(mid).error.startswith("gave up")


@pytest.mark.parametrize("code, final", [(550, "bounced"), (554, "failed")])
def test_a_permanent_failure_is_final(team, code, final):
    mid = reminder_for()
    assert deliver(mid, transport=Failing(PermanentSendError(f"{code} no", smtp_code=code)), now=NOW) == final
    assert row(mid).state == final
    # a bad address (550) goes on the suppression list, like a bounce a provider reports later
    with session() as s:
        reasons = list(
            s.execute(select(Suppression.reason).where(Suppression.email == "ada@example.com")).scalars()
        )
    assert reasons == (["bounce"] if final == "bounced" else [])


class RefusedAfterAWhile:
    """A transport that takes its time: ``before`` lands on the suppression list meanwhile (an
    unsubscribe, a complaint, an operator), then the server refuses the address (5.1.1)."""

    name = "refusing"

    def __init__(self, before):
        self.before = before

    def send(self, message):
        with session() as s:
            suppressions.add(s, message.rcpt_to, self.before, detail="meanwhile", now=NOW)
        raise PermanentSendError("550 5.1.1 no such user", smtp_code=550, enhanced="5.1.1")


@pytest.mark.parametrize(
    ("before", "after"),
    [("unsubscribe", "bounce"), ("bounce", "bounce"), ("complaint", "complaint"), ("manual", "manual")],
)
def test_a_5_1_x_refusal_suppresses_the_address_as_a_bounce_under_the_precedence_rule(team, before, after):
    mid = reminder_for()
    assert deliver(mid, transport=RefusedAfterAWhile(before), now=NOW) == "bounced"
    with session() as s:
        sup = suppressions.lookup(s, "ada@example.com")
    assert sup.reason == after
    if after == "bounce" and before != "bounce":
        assert "5.1.1" in sup.detail and f"(message {mid})" in sup.detail


def test_a_kind_nothing_registered_waits_deferred_and_a_registered_builder_renders_it(team, monkeypatch):
    def api_kind(kind, key):
        with session() as s:
            return outbox.create(
                s,
                now=NOW,
                idempotency_key=key,
                kind=kind,
                team_id=team.id,
                to_addr="ada@example.com",
                subject="Hi",
                template="api",
                context={"text": "stored"},
                message_id=outbox.new_message_id("mail.test"),
            )[0]

    mid = api_kind("newsletter", "n1")
    assert deliver(mid, transport=MemoryTransport(), now=NOW) == "deferred"
    assert "no context builder is registered for messages of kind 'newsletter'" in row(mid).error
    monkeypatch.setattr(render, "_CONTEXTS", dict(render._CONTEXTS))
    render.register_context("newsletter", lambda s, m, stored, settings: {"text": "built", "html": ""})
    t = MemoryTransport()
    assert deliver(api_kind("newsletter", "n2"), transport=t, now=NOW) == "sent"
    assert t.sent[0].get_body(("plain",)).get_content().strip() == "built"


def test_a_subject_with_a_line_break_is_never_emitted(team):
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=NOW,
            idempotency_key="inj",
            kind="reminder",
            team_id=team.id,
            member_id=1,
            to_addr="ada@example.com",
            subject="Hi\r\nBcc: victim@example.com",
            template="reminder",
            context={"day": "2026-11-23"},
            message_id=outbox.new_message_id("mail.test"),
        )
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "failed"
    assert t.sent == [] and "line break" in row(mid).error


def test_an_unexpected_error_in_a_step_defers_instead_of_losing_the_message(team):
    class Exploding:
        def send(self, message):
            raise RuntimeError("disk on fire")

    mid = reminder_for()
    assert deliver(mid, transport=Exploding(), now=NOW) == "deferred"
    assert "disk on fire" in row(mid).error


def test_a_teams_digest_is_rendered_once_for_all_recipients_and_reminders_each_time(team, monkeypatch):
    from datetime import date

    from app.checkins.outgoing import create_digest
    from app.models import Member, Team
    from app.relay import render

    calls = []
    real = render.render_parts
    monkeypatch.setattr(render, "render_parts", lambda *a: calls.append(a[0]) or real(*a))
    with session() as s:
        t = s.get(Team, team.id)
        ids = [
            create_digest(s, m, t, date(2026, 11, 20), now=NOW, settings=get_settings())[0]
            for m in s.execute(select(Member)).scalars()
        ]
    t = MemoryTransport()
    for mid in ids:
        assert deliver(mid, transport=t, now=NOW) == "sent"
    deliver(reminder_for(), transport=t, now=NOW)
    deliver(reminder_for("bob@example.com"), transport=t, now=NOW)
    assert calls == ["digest", "reminder", "reminder"]
    assert len({m["Message-ID"] for m in t.sent}) == 5 and len({m["To"] for m in t.sent[:3]}) == 3


def test_a_teams_tracked_digest_finds_where_its_tokens_go_once_and_each_recipient_gets_their_own(
    team, monkeypatch
):
    from datetime import date

    from app.checkins.outgoing import create_digest
    from app.checkins.teams import update_team
    from app.models import Member, Team
    from app.relay import tracking

    plans = []
    real = tracking.plan_of
    monkeypatch.setattr(tracking, "plan_of", lambda *a: plans.append(a) or real(*a))
    # only the shared render may keep the plan: tracking's own few are not asked
    monkeypatch.setattr(tracking, "_plan", lambda html, base_url: tracking.plan_of(html, base_url))
    with session() as s:
        update_team(s, team.id, now=NOW, tracking=True)
        t = s.get(Team, team.id)
        ids = [
            create_digest(s, m, t, date(2026, 11, 20), now=NOW, settings=get_settings())[0]
            for m in s.execute(select(Member)).scalars()
        ]
    t = MemoryTransport()
    assert deliver_many(ids, transport=t, now=NOW) == dict.fromkeys(ids, "sent")
    assert len(plans) == 1 and len(t.sent) == len(ids) == 3
    pixels = set()
    for mid, m in zip(ids, t.sent, strict=True):
        html = m.get_body(("html",)).get_content()
        (pixel,) = [p.split('"')[0] for p in html.split("/t/o/")[1:]]
        assert tracking.verify_token(get_settings().secret_key, pixel, "o") == tracking.Token(mid, "o", None)
        pixels.add(pixel)
    assert len(pixels) == 3


def test_tracked_reminders_get_their_pixel_without_an_html_parse_each(team, monkeypatch):
    # a reminder has no link: its pixel goes in before the body's end (tracking.linkless_plan)
    from selectolax.lexbor import LexborHTMLParser

    from app.checkins.outgoing import create_reminder
    from app.checkins.teams import update_team
    from app.models import Member, Team
    from app.relay import tracking

    monkeypatch.setattr(tracking, "plan_of", lambda *a: pytest.fail("a reminder's HTML was parsed"))
    with session() as s:
        update_team(s, team.id, now=NOW, tracking=True)
        t = s.get(Team, team.id)
        ids = [
            create_reminder(s, m, t, NOW.date(), now=NOW, settings=get_settings())[0]
            for m in s.execute(select(Member)).scalars()
        ]
    t = MemoryTransport()
    assert deliver_many(ids, transport=t, now=NOW) == dict.fromkeys(ids, "sent")
    for mid, m in zip(ids, t.sent, strict=True):
        last = LexborHTMLParser(m.get_body(("html",)).get_content()).body.last_child
        pixel = last.attributes["src"].split("/t/o/")[1]
        assert tracking.verify_token(get_settings().secret_key, pixel, "o") == tracking.Token(mid, "o", None)


def api_message(team, to, key):
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=NOW,
            idempotency_key=key,
            kind="api",
            team_id=team.id,
            to_addr=to,
            subject=f"Note {key}",
            template="api",
            context={"text": f"hello {key}", "html": ""},
            message_id=outbox.new_message_id("mail.test"),
        )
    return mid


class PerRecipient(MemoryTransport):
    """Accepts every message except those to addresses mapped to an exception."""

    def __init__(self, failures):
        super().__init__()
        self.failures = failures

    def send(self, message):
        if message.rcpt_to in self.failures:
            raise self.failures[message.rcpt_to]
        return super().send(message)


def test_a_batch_is_claimed_together_and_each_message_ends_its_own_way(team):
    from app.models import MessageEvent

    with session() as s:
        suppressions.add(s, "gone@example.com", "complaint", now=NOW)
    ok, gone, cancelled, busy, done = (
        api_message(team, f"{name}@example.com", name) for name in ("ok", "gone", "cancelled", "busy", "done")
    )
    with session() as s:  # cancelled after it was enqueued, before its batch runs
        assert outbox.transition(s, cancelled, "cancelled", expected="queued", now=NOW)
    assert deliver(done, transport=MemoryTransport(), now=NOW) == "sent"  # a job that ran twice
    t = PerRecipient({"busy@example.com": TransientSendError("451 try later", retry_in_s=30)})
    states = deliver_many([ok, gone, cancelled, busy, done, 999_999], transport=t, now=NOW)
    assert states == {
        ok: "sent",
        gone: "suppressed",
        cancelled: "not-claimed",
        busy: "deferred",
        done: "not-claimed",
        999_999: "not-claimed",
    }
    assert [m["To"] for m in t.sent] == ["ok@example.com"]
    assert row(busy).next_attempt_at >= NOW + timedelta(seconds=30) and row(busy).lease_until is None
    assert "complaint" in row(gone).error and row(cancelled).state == "cancelled"
    with session() as s:
        events = s.execute(select(MessageEvent.message_id, MessageEvent.from_state, MessageEvent.kind)).all()
    timeline = {mid: [(f, k) for m, f, k in events if m == mid] for mid in (ok, gone, cancelled, busy, done)}
    claimed = [("", "queued"), ("queued", "sending")]
    assert timeline[ok] == timeline[done] == claimed + [("sending", "sent")]
    assert timeline[gone] == claimed + [("sending", "suppressed")]
    assert timeline[busy] == claimed + [("sending", "deferred")]
    assert timeline[cancelled] == [("", "queued"), ("queued", "cancelled")]


@pytest.mark.parametrize("slots", [1, CLAIM_BATCH])
def test_a_batch_is_claimed_in_one_statement_and_its_outcomes_recorded_in_one_on_postgresql(
    team, monkeypatch, slots
):
    """With as many send slots as a batch has messages, the batch's outcomes wait and go in one
    statement; with one slot, each is written as soon as its message is sent."""
    import psycopg

    from app.db import get_engine
    from app.relay import routing

    monkeypatch.setenv("SEND_SLOTS", str(slots))
    get_settings.cache_clear()
    ids = [api_message(team, f"r{i}@example.com", f"r{i}") for i in range(CLAIM_BATCH)]
    routing.config_cache(get_settings()).get()  # senders and routes: read once per RELAY_CONFIG_TTL_S
    domains.signing.get("mail.test", get_settings())  # the From domain's keys: once per dkim.CACHE_S
    real = psycopg.Connection.execute  # what goes to psycopg as it is (the outcome), counted too
    begun = []  # the transactions the batch's sessions began (bookkeeping; no BEGIN in autocommit)

    def began(s, *_):
        begun.append(s)

    event.listen(orm.Session, "after_begin", began)
    try:
        with statements_seen(get_engine()) as seen:
            monkeypatch.setattr(
                psycopg.Connection,
                "execute",
                lambda c, q, *a, **k: seen.append((q, a)) or real(c, q, *a, **k),
            )
            states = deliver_many(ids, transport=MemoryTransport(), now=NOW)
    finally:
        event.remove(orm.Session, "after_begin", began)
    statements = [q.split()[0].upper() for q, _ in seen]
    assert set(states.values()) == {"sent"}
    # PostgreSQL: the claim (with its events), the suppression check, then the outcomes (one
    # statement per message, or one for the batch), in autocommit (no BEGIN/COMMIT round trips),
    # without waiting for the WAL flush and with each statement's one plan
    if get_engine().dialect.name == "postgresql":
        outcomes = ["WITH"] * (CLAIM_BATCH if slots == 1 else 1)
        assert statements == ["SET", "WITH", "SELECT"] + outcomes + ["RESET"]
        if slots != 1:
            q, args = seen[3]
            assert "unnest" in q and len(args[0]["id"]) == CLAIM_BATCH
        assert len(begun) == 1  # the claim's; an outcome, one statement in autocommit, begins none
        with get_engine().connect() as conn:  # the pool's connections are as they were again
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"
    else:  # SQLite: the claim is one UPDATE and one multi-row INSERT of events, then a transaction
        # each (its event, the webhooks its team's endpoints want: a SELECT that finds none here, then
        # the bytes sent: SQLite has no statement writing two tables, and a statement there is a
        # call in the process, not a round trip)
        each = ["SELECT", "UPDATE", "INSERT", "SELECT", "INSERT"]
        if slots == 1:
            assert statements == ["BEGIN", "UPDATE", "INSERT", "SELECT"] + ["BEGIN", *each] * CLAIM_BATCH
        else:  # the batch's outcomes in one transaction
            assert statements == ["BEGIN", "UPDATE", "INSERT", "SELECT", "BEGIN"] + each * CLAIM_BATCH


@pytest.mark.parametrize("slots", [1, 3, 20])
def test_a_process_never_has_more_messages_sent_and_unrecorded_than_its_send_slots(team, monkeypatch, slots):
    """What a kill -9 can duplicate: messages a transport accepted whose ``sent`` is not committed."""
    import time

    from app.models import OutboundMessage

    monkeypatch.setenv("SEND_SLOTS", str(slots))
    get_settings.cache_clear()
    ids = [api_message(team, f"p{i}@example.com", f"p{i}") for i in range(24)]
    accepted, unrecorded_at_send = [], []

    class Watching(MemoryTransport):
        def send(self, message):
            with session() as s:
                unrecorded = s.execute(
                    select(OutboundMessage.id).where(
                        OutboundMessage.id.in_(accepted), OutboundMessage.state == "sending"
                    )
                ).all()
            unrecorded_at_send.append(len(unrecorded))
            time.sleep(0.005)  # widen the window between acceptance and record
            result = super().send(message)
            accepted.append(message.outbound_id)
            return result

    t = Watching()
    run_in_threads([ids[i::4] for i in range(4)], t)
    assert len(t.sent) == 24 and max(unrecorded_at_send) <= slots - 1  # the one being sent aside


def run_in_threads(batches, transport):
    """``deliver_many`` of each batch in a thread of its own, started together; {id: state}."""
    import threading

    states = {}

    def run(ids):
        states.update(deliver_many(ids, transport=transport, now=NOW))

    threads = [threading.Thread(target=run, args=(ids,)) for ids in batches]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return states


def test_a_process_works_on_at_most_batches_at_once_of_its_threads_batches(team, monkeypatch):
    """Four threads, a batch each: the signing step waits until more than BATCHES_AT_ONCE batches
    are in it (or 0.3 s), and never more than that many are."""
    import threading

    import app.relay.pipeline as pipeline

    cond, working, most = threading.Condition(), [0], [0]
    real = pipeline.sign

    def sign(d):
        with cond:
            working[0] += 1
            most[0] = max(most[0], working[0])
            cond.notify_all()
            cond.wait_for(lambda: working[0] > pipeline.BATCHES_AT_ONCE, timeout=0.3)
            working[0] -= 1
        return real(d)

    monkeypatch.setattr(pipeline, "STEPS", tuple(sign if f is real else f for f in pipeline.STEPS))
    batches = [[api_message(team, f"w{i}@example.com", f"w{i}")] for i in range(4)]
    states = run_in_threads(batches, MemoryTransport())
    assert set(states.values()) == {"sent"} and len(states) == 4
    assert most[0] == pipeline.BATCHES_AT_ONCE == 2


def test_a_batch_waiting_on_its_server_gives_its_turn_to_another(team):
    """Four threads' sends meet in the transport: each batch waits there without its turn (holding
    it, only BATCHES_AT_ONCE of them could get there, and the meeting would time out)."""
    import threading

    meet = threading.Barrier(4, timeout=10)

    class Meeting(MemoryTransport):
        def send(self, message):
            meet.wait()
            return super().send(message)

    batches = [[api_message(team, f"s{i}@example.com", f"s{i}")] for i in range(4)]
    t = Meeting()
    states = run_in_threads(batches, t)
    assert set(states.values()) == {"sent"} and len(t.sent) == 4


def test_a_batch_waiting_on_its_senders_rate_limit_gives_its_turn_to_another(team, monkeypatch, tmp_path):
    """As above, with the four meeting where a routed sender's rate limit makes them wait."""
    import threading

    import app.relay.pipeline as pipeline
    from app.models import Sender, TeamRelay

    with session() as s:
        s.add(Sender(name="limited", url=f"maildir:{tmp_path / 'box'}", rate_per_s=1000))
        s.add(TeamRelay(team_id=team.id, senders="limited", strategy="failover"))
    meet = threading.Barrier(4, timeout=10)
    real = pipeline.limits.wait_turn

    def wait_turn(settings, sender):
        meet.wait()
        real(settings, sender)

    monkeypatch.setattr(pipeline.limits, "wait_turn", wait_turn)
    batches = [[api_message(team, f"r{i}@example.com", f"r{i}")] for i in range(4)]
    states = run_in_threads(batches, MemoryTransport())
    assert set(states.values()) == {"sent"}
    assert len(list((tmp_path / "box" / "new").iterdir())) == 4


def test_the_outcomes_of_every_threads_batch_wait_together_and_go_in_one_write(team, monkeypatch):
    """Two threads' batches of two, four send slots, each round of sends together: when the last
    slot is taken, one write carries the outcomes of both batches (a thread's own would be two),
    and each batch ends only once its outcomes are written, whichever thread wrote them."""
    import threading

    import app.relay.pipeline as pipeline
    from app.relay import outbox

    monkeypatch.setenv("SEND_SLOTS", "4")
    get_settings.cache_clear()
    monkeypatch.setattr(pipeline, "_clock", lambda: 0.0)  # no outcome waits past OUTCOME_WAIT_S
    real, written = outbox.finish_many, []
    monkeypatch.setattr(
        pipeline.outbox,
        "finish_many",
        lambda s, fs: written.append([f.message_id for f in fs]) or real(s, fs),
    )
    together = threading.Barrier(2, timeout=10)

    class InRounds(MemoryTransport):
        def send(self, message):
            together.wait()  # each thread's n-th send goes with the other's
            return super().send(message)

    batches = [[api_message(team, f"{c}{i}@example.com", f"{c}{i}") for i in range(2)] for c in "ab"]
    t = InRounds()
    states = run_in_threads(batches, t)
    assert len(t.sent) == 4 and set(states.values()) == {"sent"}
    assert sorted(sum(written, [])) == sorted(sum(batches, []))  # each once
    assert set(written[0]) >= {batches[0][0], batches[1][0]}  # the first round's of both batches
    assert {row(mid).state for mid in sum(batches, [])} == {"sent"}


def test_when_a_write_of_every_threads_outcomes_fails_only_the_writers_batch_ends(team, monkeypatch):
    """As above, the first write carries both batches' outcomes, and fails (then the database is
    back): each is written again; the thread that wrote sends nothing more, the other goes on with
    its batch, and every slot is given back."""
    import threading

    from sqlalchemy.exc import OperationalError

    import app.relay.pipeline as pipeline
    from app.relay import outbox, slots

    monkeypatch.setenv("SEND_SLOTS", "4")
    get_settings.cache_clear()
    monkeypatch.setattr(pipeline, "_clock", lambda: 0.0)
    monkeypatch.setattr(pipeline, "RECORD_RETRY_S", 0.05)
    real, written = outbox.finish_many, []
    gone = OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))

    def finish_many(s, fs):
        written.append([f.message_id for f in fs])
        if len(written) == 1:
            raise gone
        return real(s, fs)

    monkeypatch.setattr(pipeline.outbox, "finish_many", finish_many)
    together, rounds = threading.Barrier(2, timeout=10), []

    class InRounds(MemoryTransport):
        def send(self, message):
            if len(rounds) < 4:  # the first two rounds go together
                rounds.append(message.outbound_id)
                together.wait()
            return super().send(message)

    batches = [[api_message(team, f"{c}{i}@example.com", f"{c}{i}") for i in range(3)] for c in "ab"]
    t, states, raised = InRounds(), {}, {}

    def run(n, ids):
        try:
            states.update(deliver_many(ids, transport=t, now=NOW))
        except OperationalError as e:
            raised[n] = e

    threads = [threading.Thread(target=run, args=(n, ids)) for n, ids in enumerate(batches)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(raised) == 1 and set(written[0]) >= {batches[0][0], batches[1][0]}
    writer, other = batches[next(iter(raised))], batches[1 - next(iter(raised))]
    assert {mid: states[mid] for mid in other} == dict.fromkeys(other, "sent")
    assert [row(mid).state for mid in writer] == ["sent", "sent", "sending"]  # the third: unsent
    assert sorted(m["To"] for m in t.sent) == sorted(
        f"{c}{i}@example.com"
        for c, ids in zip("ab", batches, strict=True)
        for i in range(3)
        if ids[i] != writer[2]
    )
    held = slots.send_slots(get_settings())
    assert held.free == 4


def test_an_outcome_waits_to_be_written_with_others_about_a_second_at_most(team, monkeypatch):
    """A slow sender (0.4 s a message on the pipeline's clock): the first four outcomes are written
    together once the first has waited a second, the fifth at the end of the batch."""
    import app.relay.pipeline as pipeline
    from app.relay import outbox

    clock = [0.0]
    monkeypatch.setattr(pipeline, "_clock", lambda: clock[0])
    real, written = outbox.finish_many, []
    monkeypatch.setattr(
        pipeline.outbox,
        "finish_many",
        lambda s, fs: written.append([f.message_id for f in fs]) or real(s, fs),
    )

    class Slow(MemoryTransport):
        def send(self, message):
            clock[0] += 0.4
            return super().send(message)

    ids = [api_message(team, f"w{i}@example.com", f"w{i}") for i in range(5)]
    assert set(deliver_many(ids, transport=Slow()).values()) == {"sent"}
    assert written == [ids[:4], ids[4:]]


def test_a_message_whose_lease_is_half_gone_before_its_turn_is_given_back_not_sent(team, monkeypatch):
    """The pipeline's clock is the test's: the slow sender moves it 1.1 s on, past half of a 2 s lease."""
    import app.relay.pipeline as pipeline

    monkeypatch.setenv("LEASE_S", "2")
    get_settings.cache_clear()
    first, second = api_message(team, "a@example.com", "a"), api_message(team, "b@example.com", "b")
    clock = [pipeline.utcnow()]
    monkeypatch.setattr(pipeline, "utcnow", lambda: clock[0])

    class Slow(MemoryTransport):
        def send(self, message):
            clock[0] += timedelta(seconds=1.1)
            return super().send(message)

    t = Slow()
    assert deliver_many([first, second], transport=t) == {first: "sent", second: "deferred"}
    assert [m["To"] for m in t.sent] == ["a@example.com"]
    r = row(second)
    assert r.next_attempt_at <= r.updated_at and "lease" in r.error  # due at once: the sweeper requeues it


@pytest.mark.parametrize("slots", [1, 2])
@pytest.mark.parametrize("back", [True, False], ids=["database-back", "database-gone"])
def test_an_outcome_the_database_could_not_take_is_written_again_while_the_claim_holds(
    team, monkeypatch, back, slots
):
    """The database goes away after the transport accepted messages (a PostgreSQL restart): the
    worker writes their outcomes on new connections, or gives up before the lease's margin; the
    batch ends there, so no further message goes out unrecorded. With one send slot that is the
    first message; with two, the first two, whose outcomes waited to be written together."""
    from sqlalchemy.exc import OperationalError

    import app.relay.pipeline as pipeline

    monkeypatch.setenv("LEASE_S", "3")
    monkeypatch.setenv("SEND_SLOTS", str(slots))
    get_settings.cache_clear()
    monkeypatch.setattr(pipeline, "RECORD_RETRY_S", 0.1)
    ids = [api_message(team, f"{c}@example.com", c) for c in "abc"]
    sent = ids[:slots]
    real_record, calls = pipeline.record, []
    gone = OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))

    def finish_many(s, outcomes):  # the outcomes' write, once no slot is left
        calls.append([o.message_id for o in outcomes])
        raise gone

    def record(s, d, outcome):  # each written again on a new connection
        calls.append(d.message.id)
        if not back:
            raise gone
        return real_record(s, d, outcome)

    monkeypatch.setattr(pipeline.outbox, "finish_many", finish_many)
    monkeypatch.setattr(pipeline, "record", record)
    t = MemoryTransport()
    with pytest.raises(OperationalError):
        deliver_many(ids, transport=t)
    assert [m["To"] for m in t.sent] == [f"{c}@example.com" for c in "abc"[:slots]]  # none more
    assert calls[0] == sent and set(calls[1:]) == set(sent) and len(calls) >= 1 + slots
    for mid in sent:  # gone: the sweeper sends them again
        assert row(mid).state == ("sent" if back else "sending")
    for mid in ids[slots:]:  # claimed, not sent: the sweeper gives them back after the lease
        assert row(mid).state == "sending"


def test_when_the_outcomes_written_for_a_slot_fail_the_batch_ends_before_its_next_send(team, monkeypatch):
    """Another thread may take the last slot while this one's outcomes wait (here: the slots seem
    to have one free, so the first outcome waits); needing a slot, the thread writes them, and when
    that fails, it sends nothing more."""
    from sqlalchemy.exc import OperationalError

    import app.relay.pipeline as pipeline
    from app.relay import slots

    monkeypatch.setenv("LEASE_S", "2")
    monkeypatch.setenv("SEND_SLOTS", "1")
    get_settings.cache_clear()
    monkeypatch.setattr(pipeline, "RECORD_RETRY_S", 0.1)
    monkeypatch.setattr(slots.Slots, "free", property(lambda self: 1))
    gone = OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))

    def fail(*a, **k):
        raise gone

    monkeypatch.setattr(pipeline.outbox, "finish_many", fail)
    monkeypatch.setattr(pipeline, "record", fail)
    ids = [api_message(team, f"{c}@example.com", c) for c in "abc"]
    t = MemoryTransport()
    with pytest.raises(OperationalError):  # a fixed clock: no lease runs half out to end it
        deliver_many(ids, transport=t, now=NOW)
    assert [m["To"] for m in t.sent] == ["a@example.com"]
    assert [row(mid).state for mid in ids] == ["sending"] * 3  # the sweeper's, after the lease
    held = slots.send_slots(get_settings())
    assert held.acquire(blocking=False)  # every slot given back
    held.release()


def test_with_no_sender_and_no_mail_transport_a_message_waits_deferred_never_pretends_sent(team):
    from app.relay.routing import NO_SENDER
    from app.relay.transports import get_transport
    from app.settings import load

    settings = load({"DONEBOX_ENV": "production", "SECRET_KEY": "0123456789abcdef" * 4})
    assert settings.mail_transport == "none" and get_transport(settings) is None
    mid = reminder_for()
    assert deliver(mid, transport=None, now=NOW) == "deferred"
    assert row(mid).state == "deferred" and row(mid).error == NO_SENDER and row(mid).sent_at is None


class Talkative(MemoryTransport):
    """A memory transport that logs as it sends, as a real one might deep inside a step."""

    def send(self, message):
        logging.getLogger("donebox.test").info("handing over to ada@example.com")
        return super().send(message)


def test_what_a_delivery_logs_carries_the_message_and_team_ids(team):
    with JSONLog() as log:
        mid = reminder_for()
        assert deliver(mid, transport=Talkative(), now=NOW) == "sent"
        assert deliver(
            reminder_for("bob@example.com"), transport=Failing(TransientSendError("421 x")), now=NOW
        )
    lines = log.lines
    ours = [(x["msg"], x.get("message_id"), x.get("team_id")) for x in lines if "message_id" in x]
    assert ours == [
        ("handing over to a***@example.com", mid, team.id),
        (f"message {mid}: sent", mid, team.id),
        (f"message {mid + 1}: deferred (421 x)", mid + 1, team.id),
    ]
    assert logs.current() == {}  # nothing left bound after the batch
