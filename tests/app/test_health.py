"""`donebox doctor` (app.health): a healthy setup passes every check, then each broken piece fails
its own line with what to fix: an unmigrated database, a Redis nobody answers, an SMTP sender
refusing AUTH, a domain without SPF, a provider's secret missing in production."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import health
from app.cli import main
from app.db import session
from app.models import InboundMessage, MessageEvent, OutboundMessage, Sender
from app.relay import domains
from app.settings import get_settings
from tests.app.relay.test_domains import publish
from tests.app.relay.transports import smtp_server
from tests.conftest import FIXED_NOW, REDIS_URL, need, reachable, reset_caches


@pytest.fixture
def smtp(tmp_path):
    """A local SMTP server that takes AUTH app / s3cret after STARTTLS; ``.ca`` its certificate."""
    cert = smtp_server.make_cert(tmp_path)
    c = smtp_server.start(tls="starttls", cert=cert, users={"app": "s3cret"})
    c.ca = cert[0]
    yield c
    c.stop()


def sender(c, password="s3cret", name="smtp1") -> None:
    url = f"smtp://app:{password}@{c.hostname}:{c.port}?tls=starttls&ca={c.ca}&timeout=5"
    with session() as s:
        s.add(Sender(name=name, url=url))


@pytest.fixture
def healthy(db, env, local_dns, smtp):
    """Every piece in place: Redis, a sender that answers, a domain with its records, MX records."""
    if not reachable(REDIS_URL, 6379):
        need("Redis", f"nothing answers at {REDIS_URL}")
    env.setenv("REDIS_URL", REDIS_URL)
    env.setenv("REPLY_DOMAIN", "reply.example.net")
    env.setenv("INBOUND_DOMAINS", "in.example.net")
    reset_caches()
    sender(smtp)
    with session() as s:
        did = domains.add(s, "example.org", None, get_settings(), now=FIXED_NOW).id
    publish(local_dns, did)
    local_dns.records[("reply.example.net", "MX")] = ["10 mx.sendgrid.net"]
    local_dns.records[("in.example.net", "MX")] = ["10 mxa.mailgun.org"]
    return local_dns


def doctor(capsys) -> tuple[int, list[str]]:
    rc = main(["doctor"])
    return rc, capsys.readouterr().out.splitlines()


def line(lines: list[str], name: str) -> str:
    return next(x for x in lines if x.split(" ", 1)[1].lstrip().startswith(name + ":"))


def test_a_healthy_setup_passes_every_check_one_line_each(healthy, capsys):
    rc, lines = doctor(capsys)
    assert rc == 0, "\n".join(lines)
    assert all(x.startswith("ok ") for x in lines), "\n".join(lines)
    names = [x[5:].split(":", 1)[0] for x in lines]
    assert names[:3] == ["database", "broker", "sender smtp1"]
    assert {
        "domain example.org",
        "mx reply.example.net",
        "mx in.example.net",
        "inbound sendgrid",
        "clock",
    } <= set(names)
    assert "migrated to 0" in line(lines, "database")
    assert "answers PING" in line(lines, "broker")
    assert "EHLO answered" in line(lines, "sender smtp1") and "AUTH accepted" in line(lines, "sender smtp1")
    assert "spf" in line(lines, "domain example.org") and "dmarc" in line(lines, "domain example.org")
    assert "mx.sendgrid.net" in line(lines, "mx reply.example.net")
    assert "INBOUND_RAW_TOKEN is set" in line(lines, "inbound raw")
    clock = line(lines, "clock")
    assert (
        ("SQLite" in clock)
        if get_settings().database_url.startswith("sqlite")
        else ("database server" in clock)
    )


def test_an_unmigrated_database_fails_and_says_run_migrate(env, local_dns, tmp_path, capsys):
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    reset_caches()
    rc, lines = doctor(capsys)
    assert rc == 1
    db_line = line(lines, "database")
    assert db_line.startswith("FAIL") and "at no migration; missing" in db_line
    assert "-> fix: run `donebox migrate`" in db_line
    assert line(lines, "senders").startswith("FAIL senders: not checked: the database is not ready")


def test_a_database_behind_by_one_head_names_it(env, local_dns, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    from app.migrate import upgrade

    upgrade(url, "0027_comments")
    env.setenv("DATABASE_URL", url)
    reset_caches()
    rc, lines = doctor(capsys)
    assert rc == 1
    missing = line(lines, "database").split("missing ", 1)[1].split(" -> ")[0].split(", ")
    assert "0028_participation_summary" in missing and "0027_comments" not in missing


def test_a_database_nobody_answers_fails(env, local_dns, capsys):
    env.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{smtp_server.free_port()}/nothing")
    reset_caches()
    rc, lines = doctor(capsys)
    assert rc == 1 and line(lines, "database").startswith("FAIL database: cannot connect: OperationalError")


def test_a_redis_nobody_answers_fails_the_broker(healthy, env, capsys):
    port = smtp_server.free_port()  # closed: nothing listens
    env.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    reset_caches()
    rc, lines = doctor(capsys)
    assert rc == 1
    broker = line(lines, "broker")
    assert broker.startswith(f"FAIL broker: Redis at 127.0.0.1:{port} does not answer: ConnectionError")
    assert "-> fix: start Redis or correct REDIS_URL" in broker and "hunter2" not in broker
    assert [x for x in lines if x.startswith("FAIL")] == [broker]


def test_the_embedded_broker_is_ok_with_a_note(env):
    [c] = health.broker(get_settings())
    assert c.status == "ok" and c.detail.startswith("embedded (in memory)") and "REDIS_URL" in c.detail


def test_an_smtp_sender_refusing_auth_fails_with_what_to_fix(healthy, smtp, capsys):
    sender(smtp, password="wrong", name="smtp2")
    rc, lines = doctor(capsys)
    assert rc == 1
    bad = line(lines, "sender smtp2")
    assert bad.startswith("FAIL sender smtp2: 535") and "AUTH refused" in bad
    assert "-> fix: correct the user and password" in bad
    assert line(lines, "sender smtp1").startswith("ok ")
    assert smtp.handler.envelopes == []  # nothing was sent to find out


def test_no_sender_answering_fails_the_senders_line_too(db, env, capsys):
    with session() as s:
        s.add(Sender(name="gone", url=f"smtp://127.0.0.1:{smtp_server.free_port()}?tls=none&timeout=2"))
    checks = health.senders(get_settings())
    assert [c.status for c in checks] == ["fail", "fail"]
    assert "cannot connect to 127.0.0.1" in checks[0].detail
    assert checks[1].detail == "no enabled sender answers: no mail can leave"


def test_an_api_sender_is_asked_for_a_connection_only_and_says_so(db, env):
    closed = smtp_server.free_port()
    listener = socket.create_server(("127.0.0.1", 0))  # something listens (and is closed by the test)
    port = listener.getsockname()[1]
    with session() as s:
        s.add(Sender(name="sg", url=f"sendgrid+http://SG.key@127.0.0.1:{port}"))
        s.add(Sender(name="sg-down", url=f"sendgrid+http://SG.key@127.0.0.1:{closed}"))
        s.add(Sender(name="sg-nokey", url=f"sendgrid+http://127.0.0.1:{port}"))
    with listener:
        checks = {c.name: c for c in health.senders(get_settings())}
    assert checks["sender sg"].status == "ok"
    assert checks["sender sg"].detail == (
        f"the API at 127.0.0.1:{port} accepts connections (the key is checked only by a send)"
    )
    assert checks["sender sg-down"].status == "fail" and "cannot connect" in checks["sender sg-down"].detail
    assert checks["sender sg-nokey"].status == "fail" and checks["sender sg-nokey"].fix.startswith(
        "put the API key in its URL"
    )
    assert "senders" not in checks  # one answers


def test_production_with_no_sender_fails(db, env):
    env.setenv("DONEBOX_ENV", "production")
    env.delenv("MAIL_TRANSPORT")
    reset_caches()
    [c] = health.senders(get_settings())
    assert c.status == "fail" and "donebox sender add" in c.fix


def test_a_domain_whose_dns_lacks_spf_fails_and_nothing_is_stored(healthy, capsys):
    del healthy.records[("example.org", "TXT")]
    rc, lines = doctor(capsys)
    assert rc == 1
    bad = line(lines, "domain example.org")
    assert bad.startswith("FAIL domain example.org: spf missing (no v=spf1 record)")
    assert "-> fix: publish what `donebox domain records example.org` prints" in bad
    with session() as s:
        row = domains.named(s, "example.org")
        assert row.checks in ("", "{}", None) and row.checked_at is None  # the doctor only reports


def test_a_reply_domain_without_mx_fails(healthy, capsys):
    del healthy.records[("in.example.net", "MX")]
    rc, lines = doctor(capsys)
    assert rc == 1
    assert line(lines, "mx in.example.net").startswith("FAIL mx in.example.net: no MX record")


def inbound_from(provider: str) -> None:
    with session() as s:
        s.add(InboundMessage(provider=provider, dedupe_key=f"k-{provider}", raw=b"x", received_at=FIXED_NOW))


def test_a_provider_that_sent_mail_without_its_secret_fails_in_production_and_warns_in_development(
    healthy, env, capsys
):
    inbound_from("sendgrid")
    rc, lines = doctor(capsys)
    assert rc == 0  # development: a warning
    dev = line(lines, "inbound sendgrid")
    assert (
        dev.startswith("warn inbound sendgrid: SENDGRID_INBOUND_AUTH is unset") and "unauthenticated" in dev
    )
    env.setenv("DONEBOX_ENV", "production")
    reset_caches()
    rc, lines = doctor(capsys)
    assert rc == 1
    prod = line(lines, "inbound sendgrid")
    assert prod.startswith("FAIL inbound sendgrid: mail came this way but SENDGRID_INBOUND_AUTH is unset")
    assert prod.endswith("-> fix: set SENDGRID_INBOUND_AUTH")
    assert line(lines, "inbound mailgun").startswith("ok   inbound mailgun: not configured")
    env.setenv("SENDGRID_INBOUND_AUTH", "sendgrid:a-long-enough-password")
    reset_caches()
    rc, lines = doctor(capsys)
    assert (
        rc == 0 and line(lines, "inbound sendgrid") == "ok   inbound sendgrid: SENDGRID_INBOUND_AUTH is set"
    )


def test_the_clock_is_compared_with_the_database_servers(db, env):
    [c] = health.clock(get_settings(), wall=lambda: time.time() - 45)
    if db.dialect.name == "sqlite":
        assert c.status == "ok" and "cannot be checked on SQLite" in c.detail
    else:
        assert c.status == "fail" and c.detail.startswith("45.") and "behind the database server" in c.detail
        assert "NTP" in c.fix


# ---------------------------------------------------------------- what the page adds


def test_the_retry_horizons_say_when_each_providers_mail_is_lost():
    said = dict(health.retry_horizons(FIXED_NOW))
    assert said["sendgrid"] == (
        "If donebox stops answering now, SendGrid retries for 3 days: "
        "its mail is lost from 2026-11-26 12:00 UTC."
    )
    assert "Mailgun retries for 8 hours: its mail is lost from 2026-11-23 20:00 UTC" in said["mailgun"]
    assert (
        "Postmark retries for about 10.5 hours: its mail is lost from 2026-11-23 22:30 UTC"
        in said["postmark"]
    )


def messages(
    s, from_addr: str, n: int, *, complained: int = 0, kind: str = "delivered", at=FIXED_NOW
) -> None:
    for i in range(n):
        m = OutboundMessage(
            idempotency_key=f"{from_addr}-{kind}-{i}-{at.isoformat()}",
            kind="api",
            to_addr=f"r{i}@example.com",
            message_id=f"<{i}.{from_addr}.{at.timestamp()}@t>",
            from_addr=from_addr,
            state="delivered",
        )
        s.add(m)
        s.flush()
        s.add(MessageEvent(message_id=m.id, kind="sent", created_at=at))
        if kind == "delivered":
            s.add(MessageEvent(message_id=m.id, kind="delivered", created_at=at))
        if i < complained:
            s.add(MessageEvent(message_id=m.id, kind="complained", created_at=at))


def test_complaint_rates_per_sending_domain_against_the_gmail_and_yahoo_lines(db, env):
    with session() as s:
        messages(s, "news@a.example.org", 1000, complained=1)  # 0.1%: at the line, not over it
        messages(s, "App <hi@b.example.org>", 500, complained=1)  # 0.2%: warn
        messages(s, "", 250, complained=1, kind="sent")  # MAIL_FROM's, 0.4% of sent: fail
        messages(s, "old@c.example.org", 10, complained=10, at=FIXED_NOW - timedelta(days=8))  # outside
    with session() as s:
        rates = {c.domain: c for c in health.complaint_rates(s, get_settings(), FIXED_NOW)}
    assert set(rates) == {"a.example.org", "b.example.org", "mail.test"}
    a, b, own = rates["a.example.org"], rates["b.example.org"], rates["mail.test"]
    assert (a.complaints, a.base, a.base_kind, a.status) == (1, 1000, "delivered", "ok")
    assert (b.complaints, b.base, b.rate, b.status) == (1, 500, 0.002, "warn")
    assert (own.complaints, own.base, own.base_kind, own.rate, own.status) == (1, 250, "sent", 0.004, "fail")


def test_the_oldest_inbound_message_waiting(db, env):
    with session() as s:
        for i, (state, age) in enumerate((("processed", 50), ("received", 30), ("processing", 10))):
            s.add(
                InboundMessage(
                    provider="raw",
                    dedupe_key=f"k{i}",
                    raw=b"x",
                    state=state,
                    received_at=FIXED_NOW - timedelta(minutes=age),
                )
            )
    with session() as s:
        w = health.oldest_inbound(s, FIXED_NOW)
        first = s.execute(select(InboundMessage.id).where(InboundMessage.state == "received")).scalar_one()
    assert (w.id, w.age) == (first, timedelta(minutes=30))


def test_open_circuits_are_listed_with_the_time_to_their_probe():
    from app.relay.routing import Breaker

    b = Breaker(2, 60)
    b.failure("smtp1", "example.com", connection=True, now=100.0)
    b.failure("smtp1", "example.com", connection=True, now=100.0)
    b.failure("smtp2", "hotmail.com", connection=False, now=100.0)
    assert b.open_circuits(now=110.0) == [("smtp1", "", 50.0)]
