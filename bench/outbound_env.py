"""Helpers of bench/outbound.py: the database, Redis, the SMTP sink, worker processes, bench data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from common import (  # noqa: F401 - bench/ is on sys.path; outbound.py takes these from here
    children,
    free_port,
    peak_rss_mb,
    postgres_cpu_s,
    process_cpu_s,
    rss_mb,
    tree_cpu_s,
    wait_port,
)
from common import procs as _procs

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "BENCH_POSTGRES_URL", os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
)
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
DAY = date(2026, 11, 23)
ENTRIES = 30


def ensure_debian(tools: dict[str, str]) -> None:
    """Install with apt-get the Debian package of each of ``tools`` ({tool: package}) not on PATH."""
    missing = sorted({package for tool, package in tools.items() if not shutil.which(tool)})
    if not missing:
        return
    print(f"installing Debian packages {' '.join(missing)}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL
    )


def ensure_postfix_tools() -> None:
    ensure_debian({"smtp-sink": "postfix", "smtp-source": "postfix"})


@contextmanager
def smtp_sink(port: int):
    """postfix's smtp-sink on 127.0.0.1:port (throws every message away)."""
    ensure_postfix_tools()  # here, where every mode's use of smtp-sink and smtp-source starts
    p = subprocess.Popen(
        ["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield p
    finally:
        p.terminate()
        p.wait(10)


def setup_environment(var: Path) -> str:
    """A fresh PostgreSQL database, Redis flushed, env for us and our workers; returns the db url."""
    import psycopg
    import redis

    name = f"donebox_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    redis.Redis.from_url(REDIS).flushdb()
    os.environ.update(
        DONEBOX_ENV="development",
        SECRET_KEY="bench-secret-key-0123456789-abcdefXYZ",
        INBOUND_RAW_TOKEN="bench",
        DATABASE_URL=url,
        REDIS_URL=REDIS,
        VAR_DIR=str(var),
        DKIM_DIR=str(var / "dkim"),
        MAIL_FROM="digest@bench.example",
        BASE_URL="https://donebox.bench.example",
        REPLY_DOMAIN="reply.bench.example",
        # short, so the kill test's sweeps come soon; BENCH_LEASE_S longer on a loaded machine, where a
        # batch held up by other processes defers its last messages ("lease half gone")
        LEASE_S=os.environ.get("BENCH_LEASE_S", "5"),
        RELAY_CONFIG_TTL_S="2",
    )
    from app.migrate import upgrade

    upgrade(url)
    return url


def send_slots() -> int:
    """SEND_SLOTS as the workers run with it (they get this process's environment): what a
    killed worker process may duplicate."""
    from app.settings import get_settings

    return get_settings().send_slots


def drop_database(url: str) -> None:
    import psycopg

    from app.db import get_engine

    get_engine().dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def make_team(name: str, members: int) -> int:
    """A team with ``members`` members and ENTRIES entries on DAY; returns its id."""
    from app.db import session
    from app.models import Entry, Member, Team

    with session() as s:
        t = Team(name=name, timezone="UTC")
        s.add(t)
        s.flush()
        ms = [
            Member(team_id=t.id, email=f"{name}-{i}@example.com", name=f"Member Ñame {i}")
            for i in range(members)
        ]
        s.add_all(ms)
        s.flush()
        for i in range(ENTRIES):
            text = (
                f"Shipped item {i}: the export for https://example.org/t/{i} and #tag{i % 5} with @m{i % 7}"
            )
            s.add(Entry(team_id=t.id, member_id=ms[i % len(ms)].id, day=DAY, text=text, kind="done"))
        return t.id


def make_digests(team_id: int, n: int, tag: str) -> list[int]:
    """``n`` queued digest rows for ``team_id`` (bulk insert; no creation events)."""
    from sqlalchemy import insert, select

    from app.db import session
    from app.models import Member, OutboundMessage

    now = datetime.now(UTC)
    with session() as s:
        members = list(s.execute(select(Member.id).where(Member.team_id == team_id)).scalars())
        rows = [
            dict(
                idempotency_key=f"{tag}:{i}",
                kind="digest",
                team_id=team_id,
                member_id=members[i % len(members)],
                to_addr=f"{tag}-{i}@example.net",
                subject=f"What the team got done on {DAY:%A, %d %B}",
                template="digest",
                context=json.dumps({"day": DAY.isoformat()}),
                message_id=f"<{uuid.uuid4().hex}@bench.example>",
                state="queued",
                created_at=now,
                updated_at=now,
                lease_until=now + timedelta(seconds=int(os.environ["LEASE_S"])),
            )
            for i in range(n)
        ]
        for i in range(0, n, 5000):
            s.execute(insert(OutboundMessage), rows[i : i + 5000])
        ids = list(
            s.execute(
                select(OutboundMessage.id)
                .where(OutboundMessage.idempotency_key.like(f"{tag}:%"))
                .order_by(OutboundMessage.id)
            ).scalars()
        )
    return ids


def _by_state(ids_like: str):
    """The statement counting the rows whose idempotency key is like ``ids_like``, by state."""
    from sqlalchemy import func, select

    from app.models import OutboundMessage as M

    return select(M.state, func.count()).where(M.idempotency_key.like(ids_like)).group_by(M.state)


def count_states(ids_like: str) -> dict[str, int]:
    from app.db import session

    with session() as s:
        return dict(s.execute(_by_state(ids_like)).all())


def set_sender(url: str) -> None:
    from sqlalchemy import delete

    from app.db import session
    from app.models import Sender

    with session() as s:
        s.execute(delete(Sender))
        s.add(Sender(name="sink", url=url))


class Workers:
    """``donebox worker`` instances (each a Dramatiq master with its worker processes)."""

    def __init__(self, log: Path):
        self.log = log
        self.procs: list[subprocess.Popen] = []

    def start(self, processes: int, threads: int) -> subprocess.Popen:
        out = open(self.log, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        p = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "donebox"),
                "worker",
                "--processes",
                str(processes),
                "--threads",
                str(threads),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def kill9(self, p: subprocess.Popen) -> None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
        self.procs.remove(p)

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs = []


def pids_by_kind(workers: Workers, sink: subprocess.Popen, db_url: str) -> dict[str, list[int]]:
    """The live processes of each kind cpu_seconds counts (peak RSS is read of them): workers,
    postgres (the bench database's backends), redis and sink."""
    db = db_url.rsplit("/", 1)[1]
    groups = {os.getpgid(p.pid) for p in workers.procs if p.poll() is None}
    out: dict[str, list[int]] = {"workers": [], "postgres": [], "redis": [], "sink": [sink.pid]}
    for pid, cmd in _procs().items():
        try:
            if os.getpgid(int(pid)) in groups:
                out["workers"].append(int(pid))
                continue
        except OSError:
            continue
        if cmd.startswith("postgres:") and f" {db} " in cmd:
            out["postgres"].append(int(pid))
        elif "redis-server" in cmd:
            out["redis"].append(int(pid))
    return out


def cpu_seconds(workers: Workers, sink: subprocess.Popen, db_url: str) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the worker processes, PostgreSQL (the bench
    database's backends and what the cluster's postmaster reaped: ``postgres_cpu_s``), the Redis
    server (shared with anything else using it) and the SMTP sink."""
    db = db_url.rsplit("/", 1)[1]
    groups = {os.getpgid(p.pid) for p in workers.procs if p.poll() is None}
    out = {"workers": 0.0, "postgres": postgres_cpu_s(db), "redis": 0.0, "sink": process_cpu_s(sink.pid)}
    for pid, cmd in _procs().items():
        try:
            if os.getpgid(int(pid)) in groups:
                out["workers"] += process_cpu_s(pid)
                continue
        except OSError:
            continue
        if "redis-server" in cmd:
            out["redis"] += process_cpu_s(pid)
    return out


POLL_S = (0.05, 1.0)  # wait_all's polls: at least and at most this far apart
poll_cpu_s: dict[str, float] = {}  # CPU seconds of each wait_all's polls (its backend's), by tag
STALL_S = 10.0  # wait_all sweeps when the rows on their way have not moved for this long
swept: dict[str, int] = {}  # rows wait_all's sweeps gave back to the workers, by tag


def sweep_as_scheduler() -> int:
    """The scheduler's sweeper, as `donebox scheduler` runs it at every tick: rows whose lease ran
    out, and deferred rows now due, enqueued again; how many."""
    from app.db import session
    from app.models import utcnow
    from app.relay.outbox import sweep

    with session() as s:
        again = sweep(s, now=utcnow(), lease_s=int(os.environ["LEASE_S"]))
    if again:
        enqueue(again)
    return len(again)


def wait_all(tag: str, n: int, timeout_s: float, final=("sent",)) -> float:
    """Seconds until ``n`` rows of ``tag`` are in a final state; raises on timeout, or when none is
    left on its way and fewer are.

    The harness shares the machine's cores with what it measures, so its polls are kept cheap (they
    counted the tag's rows by state every 0.1 s, a scan of the whole outbox each time, which took
    CPU from the workers the longer the outbox grew):
    - each poll counts only the tag's rows still on their way, through ``ix_outbound_due`` (sequential
      scans are off on its connection), fewer as the send goes on;
    - the next poll comes after a quarter of the time the rate so far says is left, between POLL_S
      apart, so polls are frequent only near the end;
    - the count by state runs once, when none is left on its way;
    - when the rows on their way have not moved for STALL_S, it sweeps (``sweep_as_scheduler``), as the
      scheduler would (a worker defers a message whose lease is half gone before its turn, due at
      once, for the sweeper to give back): without one, such a row waited out the timeout. What it
      gave back is counted in ``swept``.
    Their connection is closed, and its backend gone, before this returns; what they cost is kept
    in ``poll_cpu_s``, which the figures take off PostgreSQL's CPU (the cluster's postmaster has
    reaped that backend by then: ``cpu_seconds``), so the harness's polls are not counted as
    donebox's work."""
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.pool import NullPool

    from app.models import OutboundMessage as M
    from app.relay.outbox import PRE_SEND

    engine = create_engine(os.environ["DATABASE_URL"], poolclass=NullPool, isolation_level="AUTOCOMMIT")
    on_the_way = (*PRE_SEND, "sending")  # the states before an outcome
    left_query = select(func.count()).where(M.state.in_(on_the_way), M.idempotency_key.like(f"{tag}:%"))
    t0 = time.monotonic()
    backend = None
    try:
        with engine.connect() as conn:
            backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            conn.exec_driver_sql("SET enable_seqscan = off")
            first = None
            last_left, moved = None, time.monotonic()
            while time.monotonic() - t0 < timeout_s:
                left = conn.execute(left_query).scalar_one()
                elapsed = time.monotonic() - t0
                if left == 0:
                    states = dict(conn.execute(_by_state(f"{tag}:%")).all())
                    if sum(v for k, v in states.items() if k in final) >= n:
                        return elapsed
                    raise RuntimeError(f"{tag}: none left on its way, but {states}")
                if first is None:
                    first = left
                if left != last_left:
                    last_left, moved = left, time.monotonic()
                elif time.monotonic() - moved > STALL_S:
                    swept[tag] = swept.get(tag, 0) + sweep_as_scheduler()
                    moved = time.monotonic()
                gone = first - left
                eta = left * elapsed / gone if gone > 0 else POLL_S[1]
                time.sleep(min(max(eta / 4, POLL_S[0]), POLL_S[1]))
    finally:
        if backend:
            poll_cpu_s[tag] = process_cpu_s(backend)
        engine.dispose()
        gone_by = time.monotonic() + 5
        while backend and os.path.exists(f"/proc/{backend}") and time.monotonic() < gone_by:
            time.sleep(0.005)
    raise TimeoutError(f"{tag}: {count_states(f'{tag}:%')} after {timeout_s}s")


def enqueue(ids: list[int]) -> None:
    from jobs.enqueue import enqueue_deliveries

    enqueue_deliveries(ids)


# ---------------------------------------------------------------- the realistic mix

MIX_DAYS = 3  # digests cover one of the last MIX_DAYS days (a team's batch per day it is sent)
MIX_REMINDER_SHARE = 0.15  # of the teams, those whose reminders go out in the same run
MIX_API_SHARE = 0.15  # of all messages, sent by API (POST /api/messages' producer, sends.create)


def make_mix(n: int, tag: str, seed: int = 19) -> list[int]:
    """About ``n`` queued messages as a working day makes them: many teams of 5-20 members (tracking
    on), each with its own entries on each of MIX_DAYS days; a team's digests of a day made at once
    (one creation time per team and day, as the scheduler's tick makes them), reminders of some
    teams for today, and a share of API messages (each with its own text and HTML, stored by
    app.relay.sends as POST /api/messages stores them). Returns the ids in creation order."""
    import random

    from sqlalchemy import insert, select

    from app.checkins.outgoing import checkin_row
    from app.db import session
    from app.models import Entry, Member, OutboundMessage, Team, TeamSettings, utcnow
    from app.relay import sends
    from app.relay.api_tokens import check_token, create_token
    from app.settings import get_settings

    rnd = random.Random(seed)
    settings = get_settings()
    n_api = int(n * MIX_API_SHARE)
    rows: list[dict] = []
    today = datetime.now(UTC).date()
    lease = timedelta(seconds=int(os.environ["LEASE_S"]))
    with session() as s:
        team_no = 0
        while len(rows) < n - n_api:
            team_no += 1
            t = Team(name=f"{tag} team {team_no}", timezone="UTC")
            s.add(t)
            s.flush()
            s.add(TeamSettings(team_id=t.id, tracking=True))
            ms = [
                Member(team_id=t.id, email=f"{tag}-{team_no}-{i}@example.net", name=f"Member Ñame {i}")
                for i in range(rnd.randint(5, 20))
            ]
            s.add_all(ms)
            s.flush()
            for k in range(MIX_DAYS):
                day = DAY - timedelta(days=k)
                for i in range(rnd.randint(3, 45)):  # a quiet day to a busy one
                    m = ms[rnd.randrange(len(ms))]
                    text = (
                        f"Item {i} of {day}: the export for https://example.org/t/{team_no}/{i} #tag{i % 5}"
                    )
                    s.add(Entry(team_id=t.id, member_id=m.id, day=day, text=text * rnd.randint(1, 3)))
            days = [DAY - timedelta(days=k) for k in rnd.sample(range(MIX_DAYS), rnd.randint(1, 2))]
            batches = [("digest", d) for d in days]
            if rnd.random() < MIX_REMINDER_SHARE:
                batches.append(("reminder", today))
            for kind, day in batches:
                made = utcnow()  # one creation time per team and batch, as the tick makes them
                for m in ms:
                    row = checkin_row(
                        kind, m, t, "UTC", day, f"<{uuid.uuid4().hex}@bench.example>", track=True
                    )
                    row["idempotency_key"] = f"{tag}:{row['idempotency_key']}"
                    rows.append(
                        row
                        | dict(state="queued", created_at=made, updated_at=made, lease_until=made + lease)
                        | ({"expires_at": made + timedelta(days=1)} if kind == "reminder" else {})
                    )
        for i in range(0, len(rows), 5000):
            s.execute(insert(OutboundMessage), rows[i : i + 5000])
        api_token = check_token(s, create_token(s, f"{tag}-api", now=utcnow(), scopes=("send",)))
        for i in range(n_api):
            body = {
                "to": f"customer{i}@example.com",
                "subject": f"Your receipt {i}",
                "text": f"Thanks for your order {i}.\n\n" + f"Line {i} of your order.\n" * rnd.randint(2, 30),
                "html": f"<p>Thanks for your order <b>{i}</b>.</p>"
                + f"<p>Line {i}: <a href='https://example.org/o/{i}'>details</a></p>" * rnd.randint(2, 30),
            }
            for mid in sends.create(s, body, api_token, now=utcnow(), settings=settings).ids:
                s.get(OutboundMessage, mid).idempotency_key = f"{tag}:api{i}"  # found with the mix's rows
        s.flush()
        ids = list(
            s.execute(
                select(OutboundMessage.id)
                .where(OutboundMessage.idempotency_key.like(f"{tag}:%"))
                .order_by(OutboundMessage.id)
            ).scalars()
        )
    return ids
