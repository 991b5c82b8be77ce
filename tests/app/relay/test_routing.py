import random
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.db import session
from app.errors import TransientSendError
from app.models import Member, Route, Sender, TeamRelay
from app.relay import routing
from app.relay.pipeline import deliver
from app.relay.routing import Breaker, RelayConfig, SenderInfo, TeamPlan, candidates, pick
from app.relay.transports import close_all
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from tests.app.relay.transports import smtp_server
from tests.conftest import FIXED_NOW


def config(senders, teams=None, routes=()):
    return RelayConfig(
        {s.name: s for s in senders},
        teams or {},
        tuple((t, d, tuple(n.split(","))) for t, d, n in routes),
    )


A, B, C = (
    SenderInfo("a", "memory:", 3),
    SenderInfo("b", "memory:", 1),
    SenderInfo("c", "memory:", 1, enabled=False),
)


def test_the_most_specific_route_wins_and_a_teams_own_route_beats_a_global_one():
    cfg = config(
        [A, B],
        routes=[(None, "*.gov", "a"), (None, "irs.gov", "b"), (7, "*.gov", "b"), (None, "hotmail.com", "b")],
    )
    assert candidates(cfg, 1, "irs.gov")[0] == ("b",)  # exact beats wildcard
    assert candidates(cfg, 1, "a.b.gov")[0] == ("a",)
    assert candidates(cfg, 7, "nasa.gov")[0] == ("b",)  # the team's wildcard beats the global one
    assert candidates(cfg, 1, "gov.uk")[0] == ("a", "b")  # no route: every enabled sender
    assert candidates(cfg, 1, "HOTMAIL.com")[0] == ("b",)


def test_a_team_list_is_used_in_order_and_disabled_senders_never_are():
    cfg = config([A, B, C], teams={5: TeamPlan(("c", "b", "a"), "failover")})
    assert candidates(cfg, 5, "example.com") == (("b", "a"), "failover")


def test_spread_is_weighted_random_among_healthy_senders():
    cfg = config([A, B])
    rng = random.Random(1)
    counts = Counter(pick(cfg, Breaker(3, 60), 1, "example.com", rng=rng).name for _ in range(4000))
    assert 0.70 < counts["a"] / 4000 < 0.80
    br = Breaker(1, 60)
    br.failure("a", "example.com", connection=True)
    assert {pick(cfg, br, 1, "example.com", rng=rng).name for _ in range(50)} == {"b"}


def test_failover_takes_the_first_healthy_and_probes_after_the_cooldown():
    cfg = config([A, B], teams={1: TeamPlan(("a", "b"), "failover")})
    br = Breaker(2, 60)
    assert pick(cfg, br, 1, "x.com").name == "a"
    br.failure("a", "x.com", connection=True, now=100)
    assert pick(cfg, br, 1, "x.com").name == "a"  # one failure is not enough
    br.failure("a", "x.com", connection=True, now=100)
    assert not br.allow("a", "x.com", now=159)
    assert br.allow("a", "x.com", now=161)  # the probe
    assert not br.allow("a", "x.com", now=162)  # only one probe at a time
    assert br.success("a", "x.com") == ""  # the whole sender's circuit closed
    assert br.allow("a", "x.com", now=163)
    assert br.success("a", "x.com") is None  # none was open


def test_a_block_for_one_domain_routes_only_that_domain_around_the_sender():
    cfg = config([A, B], teams={1: TeamPlan(("a", "b"), "failover")})
    br = Breaker(2, 60)
    for _ in range(2):
        br.failure("a", "hotmail.com", connection=False)
    assert pick(cfg, br, 1, "hotmail.com").name == "b"
    assert pick(cfg, br, 1, "example.com").name == "a"
    assert br.success("a", "hotmail.com") == "hotmail.com"
    assert pick(cfg, br, 1, "hotmail.com").name == "a"


def test_no_healthy_sender_is_none():
    cfg = config([A], teams={1: TeamPlan(("a",), "spread")})
    br = Breaker(1, 60)
    br.failure("a", "x.com", connection=True)
    assert pick(cfg, br, 1, "x.com") is None


# ---------------------------------------------------------------- through the pipeline, real SMTP servers


@pytest.fixture
def servers():
    started = [smtp_server.start(), smtp_server.start()]
    yield started
    close_all()  # QUIT pooled connections before the servers go
    for c in started:
        c.stop()


def add_senders(team, rows, strategy="failover", routes=()):
    with session() as s:
        for name, url in rows:
            s.add(Sender(name=name, url=url))
        s.add(TeamRelay(team_id=team.id, senders=",".join(n for n, _ in rows), strategy=strategy))
        for domain, names in routes:
            s.add(Route(domain=domain, senders=names))


def smtp_url(c):
    return f"smtp://{c.hostname}:{c.port}?tls=none&timeout=5"


def message_to(team, addr):
    from app.relay import outbox

    with session() as s:
        member = s.execute(select(Member).where(Member.team_id == team.id)).scalars().first()
        mid, _ = outbox.create(
            s,
            now=FIXED_NOW,
            idempotency_key=f"t:{addr}",
            kind="reminder",
            team_id=team.id,
            member_id=member.id,
            to_addr=addr,
            subject="Hello",
            template="reminder",
            context={"day": "2026-11-23"},
            message_id=outbox.new_message_id("mail.test"),
        )
    return mid


def row(mid):
    from app.models import OutboundMessage

    with session() as s:
        return s.get(OutboundMessage, mid)


def test_a_sender_that_is_down_fails_over_to_the_next_in_the_same_attempt(team, servers):
    from tests.app.relay.transports.smtp_server import free_port

    add_senders(
        team, [("down", f"smtp://127.0.0.1:{free_port()}?tls=none&timeout=2"), ("up", smtp_url(servers[0]))]
    )
    for i in range(4):
        mid = message_to(team, f"u{i}@example.com")
        assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent", row(mid).error
        assert row(mid).sender == "up" and "queued as ABC123" not in row(mid).error
    assert len(servers[0].handler.envelopes) == 4
    assert not routing.breaker(get_settings()).healthy("down", "example.com")


def test_a_domain_block_goes_around_the_sender_for_that_domain_only(team, servers):
    servers[0].handler.blocked_domains.add("hotmail.com")
    add_senders(team, [("first", smtp_url(servers[0])), ("second", smtp_url(servers[1]))])
    for i in range(4):
        assert (
            deliver(message_to(team, f"h{i}@hotmail.com"), transport=MemoryTransport(), now=FIXED_NOW)
            == "sent"
        )
    mid = message_to(team, "ada@example.com")
    assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    assert row(mid).sender == "first"
    assert [e.rcpt_tos[0] for e in servers[1].handler.envelopes] == [f"h{i}@hotmail.com" for i in range(4)]


def test_a_route_overrides_the_team_list(team, servers):
    add_senders(
        team,
        [("first", smtp_url(servers[0])), ("second", smtp_url(servers[1]))],
        routes=[("*.gov", "second")],
    )
    assert deliver(message_to(team, "a@irs.gov"), transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    assert deliver(message_to(team, "a@example.com"), transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    assert [e.rcpt_tos[0] for e in servers[1].handler.envelopes] == ["a@irs.gov"]
    assert [e.rcpt_tos[0] for e in servers[0].handler.envelopes] == ["a@example.com"]


def test_when_every_sender_is_down_the_message_is_deferred_not_lost(team, monkeypatch):
    """... and due again when the sender's circuit lets a probe through, not after a fixed minute."""
    from tests.app.relay.transports.smtp_server import free_port

    monkeypatch.setenv("BREAKER_COOLDOWN_S", "5")
    get_settings.cache_clear()
    add_senders(team, [("down", f"smtp://127.0.0.1:{free_port()}?tls=none&timeout=2")])
    mid = message_to(team, "a@example.com")
    assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "deferred"
    assert row(mid).state == "deferred" and "down" in row(mid).error
    assert 5 <= (row(mid).next_attempt_at - FIXED_NOW).total_seconds() <= 10  # the first backoff on 5 s


def test_a_bad_recipient_is_not_retried_through_another_sender(team, servers):
    add_senders(team, [("first", smtp_url(servers[0])), ("second", smtp_url(servers[1]))])
    mid = message_to(team, "nouser@example.com")
    assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "bounced"
    assert servers[1].handler.sessions == set()


def test_spread_uses_every_sender(team, tmp_path):
    add_senders(team, [("m1", f"maildir:{tmp_path / 'm1'}"), ("m2", f"maildir:{tmp_path / 'm2'}")], "spread")
    used = Counter()
    for i in range(30):
        mid = message_to(team, f"s{i}@example.com")
        assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent"
        used[row(mid).sender] += 1
    assert set(used) == {"m1", "m2"}
    assert len(list((tmp_path / "m1" / "new").iterdir())) == used["m1"]


def test_configuration_is_cached_not_read_per_message(team, tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_CONFIG_TTL_S", "3600")
    from tests.conftest import reset_caches

    reset_caches()
    add_senders(team, [("m1", f"maildir:{tmp_path / 'm1'}")])
    deliver(message_to(team, "a@example.com"), transport=MemoryTransport(), now=FIXED_NOW)
    calls = []
    monkeypatch.setattr(routing, "load_config", lambda: calls.append(1))
    mid = message_to(team, "b@example.com")
    assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent" and calls == []


# ---------------------------------------------------------------- a sender back: its deferred mail wakes

LATER = FIXED_NOW + timedelta(hours=2)  # a retry time grown by the attempts a long outage cost
BACK = FIXED_NOW + timedelta(minutes=10)  # when the probe gets through


def defer_until(ids, when, error=None):
    """The rows as a long outage would leave them: deferred, their next retry hours away."""
    from app.models import OutboundMessage as M

    values = {"state": "deferred", "next_attempt_at": when} | ({"error": error} if error else {})
    with session() as s:
        s.execute(update(M).where(M.id.in_(ids)).values(**values))


def _swept(ids):
    from app.relay import outbox

    with session() as s:
        return set(outbox.sweep(s, now=BACK, lease_s=60)) & set(ids)


def _breaker_env(monkeypatch):
    from tests.conftest import reset_caches

    monkeypatch.setenv("BREAKER_FAILURES", "1")
    monkeypatch.setenv("BREAKER_COOLDOWN_S", "1")
    reset_caches()


def test_the_probe_that_gets_through_wakes_the_mail_the_senders_outage_deferred(team, monkeypatch):
    """Not after the backoff its failed attempts grew: the next sweep queues it. Mail deferred for
    another reason (the recipient's server said "try later") keeps its own time."""
    from tests.app.relay.transports.smtp_server import free_port

    _breaker_env(monkeypatch)
    port = free_port()
    add_senders(team, [("relay", f"smtp://127.0.0.1:{port}?tls=none&timeout=2")])
    failed, unrouted, elsewhere, busy = (
        message_to(team, a) for a in ("a@example.com", "b@example.com", "c@example.org", "d@example.com")
    )
    for mid in (failed, unrouted, elsewhere, busy):
        assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "deferred"
    assert row(failed).error.startswith("relay: ")  # refused: the circuit opened
    assert row(unrouted).error == "no healthy sender for example.com"
    assert row(elsewhere).error == "no healthy sender for example.org"
    defer_until([failed, unrouted, elsewhere, busy], LATER)
    defer_until([busy], LATER, error="451 4.3.0 mailbox busy, try later")
    assert _swept([failed, unrouted, elsewhere, busy]) == set()

    server = smtp_server.start(port=port)
    try:
        time.sleep(1.1)  # the cooldown: the next attempt is the probe
        probe = message_to(team, "e@example.com")
        assert deliver(probe, transport=MemoryTransport(), now=BACK) == "sent"
        assert {mid: row(mid).next_attempt_at for mid in (failed, unrouted, elsewhere, busy)} == {
            failed: BACK,
            unrouted: BACK,
            elsewhere: BACK,
            busy: LATER,
        }
        assert _swept([failed, unrouted, elsewhere, busy]) == {failed, unrouted, elsewhere}
        for mid in (failed, unrouted, elsewhere):
            assert deliver(mid, transport=MemoryTransport(), now=BACK) == "sent"
        assert sorted(e.rcpt_tos[0] for e in server.handler.envelopes) == [
            "a@example.com",
            "b@example.com",
            "c@example.org",
            "e@example.com",
        ]
    finally:
        close_all()
        server.stop()


def test_a_domains_circuit_closing_wakes_only_the_mail_to_that_domain(team, servers, monkeypatch):
    _breaker_env(monkeypatch)
    servers[0].handler.blocked_domains.add("hotmail.com")
    add_senders(team, [("first", smtp_url(servers[0]))])
    blocked, unrouted = message_to(team, "h1@hotmail.com"), message_to(team, "h2@Hotmail.com")
    for mid in (blocked, unrouted):
        assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "deferred"
    assert (
        row(blocked).error.startswith("first: ")
        and row(unrouted).error == "no healthy sender for hotmail.com"
    )
    # deferred meanwhile while another domain's circuit was open, and by the same sender for another domain
    other_unrouted, other_blocked = message_to(team, "a@example.com"), message_to(team, "b@example.com")
    for mid in (other_unrouted, other_blocked):
        assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    defer_until([other_unrouted], LATER, error="no healthy sender for example.com")
    defer_until([other_blocked], LATER, error="first: 550 5.7.1 blocked")
    defer_until([blocked, unrouted], LATER)

    servers[0].handler.blocked_domains.clear()
    time.sleep(1.1)
    assert deliver(message_to(team, "h3@hotmail.com"), transport=MemoryTransport(), now=BACK) == "sent"
    assert _swept([blocked, unrouted, other_unrouted, other_blocked]) == {blocked, unrouted}


def test_mail_deferred_as_another_threads_probe_got_through_is_due_at_once(team, monkeypatch):
    """The race the probe's wake alone would lose: an attempt that found no healthy sender, whose
    outcome is written after the circuit closed (and after the wake's UPDATE)."""
    from tests.app.relay.transports.smtp_server import free_port

    _breaker_env(monkeypatch)
    add_senders(team, [("relay", f"smtp://127.0.0.1:{free_port()}?tls=none&timeout=2")])
    first = message_to(team, "a@example.com")
    assert deliver(first, transport=MemoryTransport(), now=FIXED_NOW) == "deferred"  # the circuit opens
    defer_until([first], LATER)
    breaker, real = routing.breaker(get_settings()), routing.pick

    def pick_as_the_probe_gets_through(*args, **kwargs):
        chosen = real(*args, **kwargs)
        if chosen is None:
            breaker.success("relay", "example.com")  # another thread's probe, meanwhile
        return chosen

    monkeypatch.setattr(routing, "pick", pick_as_the_probe_gets_through)
    mid = message_to(team, "b@example.com")
    assert deliver(mid, transport=MemoryTransport(), now=BACK) == "deferred"
    assert row(mid).error == "no healthy sender for example.com"
    assert row(mid).next_attempt_at == BACK
    assert row(first).next_attempt_at == LATER  # deferred before: the probe's own wake is for that one


class Unreachable(MemoryTransport):
    """MAIL_TRANSPORT that cannot be reached while ``down``; counts the tries."""

    def __init__(self):
        super().__init__()
        self.down, self.tries = True, 0

    def send(self, message):
        self.tries += 1
        if self.down:
            raise TransientSendError("cannot connect to relay.test:587: refused", connection=True)
        return super().send(message)


def test_mail_transport_without_senders_is_behind_the_breaker_too(team, monkeypatch):
    """With no Sender row, MAIL_TRANSPORT is the one sender: once its circuit is open, mail is
    deferred without trying it (no connection timeout each), and its probe wakes that mail."""
    _breaker_env(monkeypatch)
    transport = Unreachable()
    failed, unrouted, busy = (
        message_to(team, a) for a in ("a@example.com", "b@example.com", "c@example.com")
    )
    for mid in (failed, unrouted, busy):
        assert deliver(mid, transport=transport, now=FIXED_NOW) == "deferred"
    assert transport.tries == 1  # the circuit opened at the first failure (BREAKER_FAILURES=1)
    assert row(failed).error == "default: cannot connect to relay.test:587: refused"
    assert row(failed).sender == "" and row(unrouted).error == "no healthy sender for example.com"
    defer_until([failed, unrouted, busy], LATER)
    defer_until([busy], LATER, error="451 4.3.0 mailbox busy, try later")
    assert routing.breaker(get_settings()).open_circuits()[0][:2] == ("default", "")

    transport.down = False
    time.sleep(1.1)
    assert deliver(message_to(team, "d@example.com"), transport=transport, now=BACK) == "sent"
    assert _swept([failed, unrouted, busy]) == {failed, unrouted}
    assert routing.breaker(get_settings()).open_circuits() == []


def test_mail_transports_refusals_are_the_messages_outcome_not_the_breakers(team, monkeypatch):
    from app.errors import PermanentSendError

    _breaker_env(monkeypatch)

    class Refusing(MemoryTransport):
        def send(self, message):
            raise PermanentSendError("550 5.7.1 blocked", smtp_code=550, block=True)

    mid = message_to(team, "a@example.com")
    assert deliver(mid, transport=Refusing(), now=FIXED_NOW) == "failed"
    assert routing.breaker(get_settings()).open_circuits() == []
