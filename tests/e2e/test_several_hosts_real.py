"""docs/deploy.md's "Several machines", simulated: two web, two worker and two scheduler hosts,
each a network namespace with its own address and its own environment, on one PostgreSQL and
one Redis, carry a day of check-ins of 1,000 members in ten teams and five time zones: every
reminder, entry and digest exactly once.

Time is driven the way an operator can: the members' reminders are due when the hosts start (the
long-running schedulers make them on the real clock), and the next morning's digests are made by
`donebox scheduler --once --now` at that morning's instant, on both scheduler hosts at once."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from urllib.parse import urlparse

import psycopg
import pytest

from app.checkins.times import local_date, local_instant, zone
from tests.app.relay.transports import smtp_server
from tests.conftest import reset_caches
from tests.deploy.files import fill, setting_names
from tests.e2e.conftest import DONEBOX, http, wait_until
from tests.e2e.netns import Forwarder, Network

pytestmark = pytest.mark.e2e

HOSTS = ("web-a", "web-b", "worker-a", "worker-b", "scheduler-a", "scheduler-b")
# five of these six zones are used: one whose day ends within minutes is left out (its reminders
# would expire, at its midnight, before they are sent)
ZONES = (
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/Sao_Paulo",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Brisbane",
)
TEAMS_PER_ZONE, TEAM_SIZE = 2, 100
MEMBERS = 5 * TEAMS_PER_ZONE * TEAM_SIZE
SECRET_KEY = "4f1c0b9e7a2d5c8e3b6a1f0d9c8b7a6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a"
RAW_TOKEN = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"
WEB_PORT = 8000  # every web host its own address, so the same port on each


class Arrivals(smtp_server.Recorder):
    """The sink also keeps which host each message came from (the SMTP client's address)."""

    def __init__(self):
        super().__init__()
        self.peers: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.peers.append(session.peer[0])
        return await super().handle_DATA(server, session, envelope)


def host_env(tmp_path, host: str, database_url: str, redis_url: str) -> dict:
    """What a host's processes see: the deploy env file filled in as on every machine (the same
    secrets and URLs), with the host's own VAR_DIR, and nothing of the test's own settings."""
    filled = fill(
        SECRET_KEY=SECRET_KEY,
        INBOUND_RAW_TOKEN=RAW_TOKEN,
        METRICS_TOKEN="0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        VAR_DIR=str(tmp_path / host / "var"),
        TICK_S="1",
    )
    outside = {k: v for k, v in os.environ.items() if k not in setting_names() and not k.startswith("TEST_")}
    tuning = {
        # the digests' tick runs at the next morning's 09:00 while the workers live today: leases
        # longer than that jump keep its sweeper from taking back, as lost, what they are sending
        "LEASE_S": str(3 * 24 * 3600),
        # batches of 50 members, so that two schedulers ticking at once take turns, not all or none
        "SCHEDULE_BATCH": "50",
    }
    return outside | filled | tuning | {"PYTHONUNBUFFERED": "1"}


def via(url: str, host: str, port: int) -> str:
    """``url`` with its address replaced: where a host reaches the service."""
    u = urlparse(url)
    netloc = (u.netloc.rpartition("@")[0] + "@" if "@" in u.netloc else "") + f"{host}:{port}"
    return u._replace(netloc=netloc).geturl()


def usable_zones(due: datetime, now: datetime) -> list[str]:
    """Five zones in which the day of ``due`` does not end in the next ten minutes."""
    ends = {tz: local_instant(local_date(due, tz) + timedelta(days=1), time(0), zone(tz)) for tz in ZONES}
    return [tz for tz in ZONES if ends[tz] - now > timedelta(minutes=10)][:5]


def seed(now: datetime) -> dict[str, tuple[str, date]]:
    """The teams and members, written straight into the database: each member's reminder of the
    team's day came a minute ago, the digest of that day is due at 09:00 the next morning, and the
    next day is a day off (so a tick at the digest's hour makes digests only). Each member's email
    -> (team name, the team's day)."""
    from app.checkins.schedules import set_due
    from app.db import session
    from app.models import Member, Team

    due = now - timedelta(minutes=1)
    members = {}
    with session() as s:
        for tz in usable_zones(due, now):
            day = local_date(due, tz)
            off = str((day + timedelta(days=1)).isoweekday())
            digest_at = local_instant(day + timedelta(days=1), time(9, 0), zone(tz))
            for letter in "AB"[:TEAMS_PER_ZONE]:
                name = f"{tz.rpartition('/')[2].replace('_', ' ')} {letter}"
                team = Team(
                    name=name,
                    timezone=tz,
                    workdays="".join(d for d in "1234567" if d != off),
                    digest_workdays="1234567",
                )
                s.add(team)
                s.flush()
                for i in range(TEAM_SIZE):
                    email = f"{name.lower().replace(' ', '-')}-{i}@example.com"
                    m = Member(team_id=team.id, email=email, name=f"{name} {i}")
                    s.add(m)
                    s.flush()
                    set_due(s, "reminder", [(m.id, due)])
                    set_due(s, "digest", [(m.id, digest_at)])
                    members[email] = (name, day)
    assert len(members) == MEMBERS
    return members


def headers(envelope):
    """The header of a message the relay received (its body is not parsed)."""
    return BytesHeaderParser().parsebytes(envelope.content)


def reply_to(reminder, n: int) -> bytes:
    """A member's answer to the reminder, addressed to its signed reply address."""
    who = reminder["To"]
    return (
        f"From: {who}\r\nTo: {reminder['Reply-To']}\r\nSubject: Re: {reminder['Subject']}\r\n"
        f"In-Reply-To: {reminder['Message-ID']}\r\nMessage-ID: <reply-{n}@example.com>\r\n\r\n"
        f"Shipped change {n} for {who}\r\nReviewed the plan of {who}\r\n"
    ).encode()


def test_two_hosts_of_each_process_carry_a_day_of_1000_members_exactly_once(
    tmp_path, procs, fresh_pg, redis_url, env
):
    with ExitStack() as teardown:  # the processes first, then the relay, forwarders and network
        net = Network(list(HOSTS))
        teardown.callback(net.close)
        # PostgreSQL and Redis listen on 127.0.0.1: the hosts reach them through the bridge
        pg_port, redis_port = urlparse(fresh_pg).port or 5432, urlparse(redis_url).port or 6379
        forward = Forwarder(net.gateway, pg_port, redis_port)
        teardown.callback(forward.close)
        sink = smtp_server.start(hostname=net.gateway, handler=Arrivals())
        teardown.callback(sink.stop)
        teardown.callback(procs.stop)
        shared = (
            via(fresh_pg, net.gateway, forward.ports[pg_port]),
            via(redis_url, net.gateway, forward.ports[redis_port]),
        )
        envs = {h: host_env(tmp_path, h, *shared) for h in HOSTS}

        def on(host: str, *args: str) -> list[str]:
            """``donebox ARGS`` on ``host``."""
            return [*net.wrap(host), *DONEBOX, *args]

        # once, from one machine: the schema and the sender (the SMTP relay on the bridge)
        for args in (["migrate"], ["sender", "add", "relay", f"smtp://{net.gateway}:{sink.port}?tls=none"]):
            done = subprocess.run(
                on("scheduler-a", *args),
                env=envs["scheduler-a"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
        env.setenv("DATABASE_URL", fresh_pg)  # the test's own connection: on this machine's loopback
        reset_caches()
        members = seed(datetime.now(UTC))

        for h in HOSTS:
            role = h.partition("-")[0]
            args = {
                "web": ["web", "--host", net.address[h], "--port", str(WEB_PORT), "--workers", "1"],
                "worker": ["worker", "--processes", "1", "--threads", "8"],
                "scheduler": ["scheduler"],
            }[role]
            procs.start(args, envs[h], prefix=net.wrap(h))
        webs = [f"http://{net.address[h]}:{WEB_PORT}" for h in ("web-a", "web-b")]
        for base in webs:
            wait_until(lambda base=base: http("GET", f"{base}/healthz")[0] == 200, 60, f"{base} to serve")

        # the schedulers made the reminders, the workers sent them
        wait_until(lambda: len(sink.handler.envelopes) >= MEMBERS, 90, "1,000 reminders at the relay", 1)
        reminders = [h for h in map(headers, sink.handler.envelopes) if h["X-Donebox-Kind"] == "reminder"]
        assert len(reminders) == MEMBERS

        # every member answers through one of the two web hosts, in turn
        def post(n_reminder):
            n, reminder = n_reminder
            return http(
                "POST",
                f"{webs[n % 2]}/inbound/raw",
                reply_to(reminder, n),
                {"Authorization": f"Bearer {RAW_TOKEN}", "Content-Type": "message/rfc822"},
            )[0]

        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(post, enumerate(reminders)))
        assert statuses == {202: MEMBERS}

        def count(sql: str):
            with psycopg.connect(fresh_pg) as conn:
                return conn.execute(sql).fetchall()

        wait_until(
            lambda: (
                count("SELECT count(*) FROM inboundmessage WHERE state IN ('received', 'processing')")
                == [(0,)]
            ),
            90,
            "the workers to process every reply",
            1,
        )
        assert count("SELECT state, count(*) FROM inboundmessage GROUP BY 1") == [("processed", MEMBERS)]

        # the next morning's digest hour, on both scheduler hosts at once
        (latest,) = count("SELECT max(at) FROM memberdue WHERE kind = 'digest'")[0]
        tomorrow = (latest + timedelta(seconds=1)).isoformat()
        ticks = [
            subprocess.Popen(
                on(h, "scheduler", "--once", "--now", tomorrow),
                env=envs[h],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for h in ("scheduler-a", "scheduler-b")
        ]
        made = []
        for tick in ticks:
            out, err = tick.communicate(timeout=120)
            assert tick.returncode == 0, err
            made.append(dict(kv.split("=") for kv in out.split()))
        assert sum(int(m["created"]) for m in made) == MEMBERS, made  # disjoint members, one digest each

        wait_until(lambda: len(sink.handler.envelopes) >= 2 * MEMBERS, 90, "1,000 digests at the relay", 1)
        unsent = "SELECT count(*) FROM outboundmessage WHERE state IN ('queued', 'deferred', 'sending')"
        wait_until(lambda: count(unsent) == [(0,)], 30, "no outbox row left to send")

    # the relay: each member one reminder and one digest, nothing else, no Message-ID twice
    envelopes = sink.handler.envelopes
    heads = [headers(e) for e in envelopes]
    assert len(envelopes) == 2 * MEMBERS
    got = Counter((tuple(e.rcpt_tos), h["X-Donebox-Kind"]) for e, h in zip(envelopes, heads, strict=True))
    assert got == {((m,), kind): 1 for m in members for kind in ("reminder", "digest")}
    ids = Counter(h["Message-ID"] for h in heads)
    assert len(ids) == 2 * MEMBERS and ids.most_common(1)[0][1] == 1
    # both worker hosts sent, and only they did
    by_peer = Counter(sink.handler.peers)
    assert set(by_peer) == {net.address["worker-a"], net.address["worker-b"]}, by_peer

    # the database: 2,000 rows, all sent; each reply one processed message and one entry set of
    # two lines on the member's day
    assert count("SELECT kind, state, count(*) FROM outboundmessage GROUP BY 1, 2 ORDER BY 1") == [
        ("digest", "sent", MEMBERS),
        ("reminder", "sent", MEMBERS),
    ]
    entries = count(
        "SELECT m.email, count(*), count(DISTINCT e.inbound_id), min(e.day), max(e.day), "
        "string_agg(e.text, '|' ORDER BY e.id) FROM entry e JOIN member m ON m.id = e.member_id GROUP BY 1"
    )
    assert len(entries) == MEMBERS
    for email, n, inbound, first, last, texts in entries:
        day = members[email][1]
        assert (n, inbound, first, last) == (2, 1, day, day), email
        assert texts.endswith(f"for {email}|Reviewed the plan of {email}"), texts
    assert count("SELECT count(*), count(DISTINCT member_id) FROM inboundmessage")[0] == (MEMBERS, MEMBERS)

    # each team's first member's digest tells the whole team's day
    firsts = [
        message_from_bytes(e.content, policy=policy.default)
        for e, h in zip(envelopes, heads, strict=True)
        if h["X-Donebox-Kind"] == "digest" and h["To"].endswith("-0@example.com")
    ]
    assert len(firsts) == len({team for team, _ in members.values()})
    for digest in firsts:
        team = members[digest["To"]][0]
        text = digest.get_body(("plain",)).get_content()
        mates = [m for m, (t, _) in members.items() if t == team]
        assert all(f"Reviewed the plan of {m}" in text for m in mates), team
