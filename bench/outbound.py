"""Outbound relay benchmark: outbox rows -> digest-sized, tracked, DKIM-signed mail in a local SMTP sink.

Runs the real processes: PostgreSQL, Redis, ``donebox worker`` processes and postfix's
``smtp-sink`` (Debian package ``postfix``: installed here with apt-get when missing). In the
same run it measures the references: the naive pipeline (stdlib EmailMessage, dkimpy as
shipped, one smtplib connection per message) and the sink's own limit (``smtp-source``
blasting pre-built messages into ``smtp-sink``). Then a fairness run (a small team's
latency while a big team's batch drains), a kill -9 run (one of two worker processes
killed during a send: lost and duplicated messages counted at a Message-ID counting
sink), and a per-step profile of the pipeline.

    python bench/outbound.py --quick      # under a minute
    python bench/outbound.py              # full run, writes "## Outbound relay" into BENCHMARKS.md

Environment: BENCH_POSTGRES_URL (default TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test),
BENCH_REDIS_URL (default redis://127.0.0.1:6379/12; the db is flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "BENCH_POSTGRES_URL", os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
)
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
DAY = date(2026, 11, 23)
ENTRIES = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 10) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def ensure_postfix_tools() -> None:
    if shutil.which("smtp-sink") and shutil.which("smtp-source"):
        return
    print("installing Debian package postfix for smtp-sink/smtp-source", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "postfix"], check=True, env=env, stdout=subprocess.DEVNULL
    )


@contextmanager
def smtp_sink(port: int):
    """postfix's smtp-sink on 127.0.0.1:port (throws every message away)."""
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
        SECRET_KEY="bench-secret-key-0123456789",
        INBOUND_RAW_TOKEN="bench",
        DATABASE_URL=url,
        REDIS_URL=REDIS,
        VAR_DIR=str(var),
        DKIM_DIR=str(var / "dkim"),
        MAIL_FROM="digest@bench.example",
        BASE_URL="https://donebox.bench.example",
        REPLY_DOMAIN="reply.bench.example",
        LEASE_S="5",
        RELAY_CONFIG_TTL_S="2",
    )
    from app.migrate import upgrade

    upgrade(url)
    return url


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


def count_states(ids_like: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.db import session
    from app.models import OutboundMessage as M

    with session() as s:
        rows = s.execute(
            select(M.state, func.count()).where(M.idempotency_key.like(ids_like)).group_by(M.state)
        )
        return dict(rows.all())


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


def wait_all(tag: str, n: int, timeout_s: float, final=("sent",)) -> float:
    """Seconds until ``n`` rows of ``tag`` are in a final state (polling); raises on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        done = sum(v for k, v in count_states(f"{tag}:%").items() if k in final)
        if done >= n:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise TimeoutError(f"{tag}: {count_states(f'{tag}:%')} after {timeout_s}s")


def enqueue(ids: list[int]) -> None:
    from jobs.actors import enqueue_deliveries

    enqueue_deliveries(ids)


# ---------------------------------------------------------------- the references


def naive(team_id: int, n: int, port: int) -> float:
    """The naive pipeline, one thread: context from the DB, Jinja2 + css-inline, EmailMessage,
    dkimpy.sign, one smtplib connection per message, one UPDATE; returns messages/s."""
    import smtplib
    from email.message import EmailMessage
    from email.utils import format_datetime

    import dkim
    from sqlalchemy import update

    from app.checkins import digest_context
    from app.db import session
    from app.models import OutboundMessage
    from app.relay.render import render_parts
    from app.settings import get_settings

    settings = get_settings()
    ids = make_digests(team_id, n, "naive")
    pem = next((Path(settings.dkim_dir) / "bench.example").glob("*rsa*.pem")).read_bytes()
    t0 = time.perf_counter()
    for mid in ids:
        with session() as s:
            m = s.get(OutboundMessage, mid)
            ctx = digest_context(s, m, json.loads(m.context), settings)
        text, html = render_parts("digest", ctx)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = settings.mail_from, m.to_addr, m.subject
        msg["Date"], msg["Message-ID"] = format_datetime(datetime.now(UTC)), m.message_id
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        raw = msg.as_bytes()
        raw = dkim.sign(raw, b"rsa", b"bench.example", pem) + raw
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail(settings.mail_from, [m.to_addr], raw)
        with session() as s:
            s.execute(update(OutboundMessage).where(OutboundMessage.id == mid).values(state="sent"))
    return n / (time.perf_counter() - t0)


def sink_limit(port: int, n: int, size: int) -> float:
    """smtp-source blasting ``n`` messages of ``size`` bytes (20 sessions) into smtp-sink: messages/s."""
    t0 = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            "-s",
            "20",
            "-l",
            str(size),
            "-m",
            str(n),
            "-f",
            "a@bench.example",
            "-t",
            "b@example.net",
            f"127.0.0.1:{port}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return n / (time.perf_counter() - t0)


def profile(team_id: int, n: int) -> tuple[dict[str, float], int]:
    """(milliseconds per message in each pipeline step, bytes of a message): one thread, this process."""
    from app import outbox
    from app.relay import pipeline

    timings: dict[str, float] = {}
    sizes: list[int] = []

    def timed(name, fn):
        def wrapper(*a, **kw):
            if name == "transmit":
                sizes.append(len(a[0].raw))
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    saved_steps, saved_claim, saved_record = pipeline.STEPS, outbox.claim, pipeline.record
    pipeline.STEPS = tuple(timed(f.__name__, f) for f in saved_steps)
    outbox.claim = timed("claim", saved_claim)
    pipeline.record = timed("record", saved_record)
    ids = make_digests(team_id, n, "profile")
    t0 = time.perf_counter()
    try:
        for mid in ids:
            pipeline.deliver(mid, transport=None)
    finally:
        pipeline.STEPS, outbox.claim, pipeline.record = saved_steps, saved_claim, saved_record
    total = time.perf_counter() - t0
    out = {k: v * 1000 / n for k, v in timings.items()}
    out["total"] = total * 1000 / n
    return out, sizes[0]


# ---------------------------------------------------------------- phases


def kill_test(workers: Workers, team_id: int, n: int, kills: int, var: Path) -> tuple[int, int, int]:
    """(lost, duplicates, kills done): ``n`` messages while one of two workers is killed ``kills`` times."""
    from app.db import session
    from app.models import utcnow
    from app.outbox import sweep

    port = free_port()
    counts_file = var / "sink-counts.json"
    sink = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), str(port), str(counts_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    sink.stdout.readline()
    set_sender(f"smtp://127.0.0.1:{port}?tls=none&pool=4&timeout=10")
    victim = workers.start(1, 4)
    workers.start(1, 4)
    time.sleep(2.5)  # let the new workers and their config caches start
    ids = make_digests(team_id, n, "kill")
    enqueue(ids)
    done_kills = 0
    t_end = time.monotonic() + 600
    while time.monotonic() < t_end:
        states = count_states("kill:%")
        finished = states.get("sent", 0) + states.get("failed", 0)
        if done_kills < kills and finished >= n * (done_kills + 1) / (kills + 2):
            workers.kill9(victim)
            done_kills += 1
            victim = workers.start(1, 4)
        if finished >= n:
            break
        with session() as s:  # the scheduler's sweeper, as `donebox scheduler` runs it
            again = sweep(s, now=utcnow(), lease_s=int(os.environ["LEASE_S"]))
        if again:
            enqueue(again)
        time.sleep(0.5)
    workers.stop()
    sink.send_signal(signal.SIGTERM)
    sink.wait(30)
    seen = json.loads(counts_file.read_text())
    from sqlalchemy import select

    from app.models import OutboundMessage as M

    with session() as s:
        sent_mids = set(
            s.execute(
                select(M.message_id).where(M.idempotency_key.like("kill:%"), M.state == "sent")
            ).scalars()
        )
        all_mids = set(s.execute(select(M.message_id).where(M.idempotency_key.like("kill:%"))).scalars())
    lost = len([m for m in all_mids if m not in seen or m not in sent_mids])
    dups = sum(c - 1 for m, c in seen.items() if m in all_mids and c > 1)
    return lost, dups, done_kills


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small numbers, under a minute")
    args = ap.parse_args()
    q = args.quick
    n_e2e, n_naive, n_big, n_kill, kills, n_profile = (
        (1500, 150, 2000, 600, 1, 150) if q else (20000, 1000, 50000, 20000, 10, 1000)
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-up below on `timeout`
    ensure_postfix_tools()
    var = Path(tempfile.mkdtemp(prefix="donebox-bench-"))
    url = setup_environment(var)
    sys.path.insert(0, str(ROOT))
    from app.relay.dkim import generate

    generate(Path(os.environ["DKIM_DIR"]), "bench.example", "rsa", "rsa")
    figures: dict[str, object] = {}
    workers = Workers(var / "workers.log")
    try:
        team = make_team("bench", 12)
        port = free_port()
        with smtp_sink(port):
            set_sender(f"smtp://127.0.0.1:{port}?tls=none&pool=8&timeout=10")
            prof, size = profile(team, n_profile)
            figures["message_bytes"] = size
            figures["naive_msgs_per_s"] = round(naive(team, n_naive, port), 1)
            figures["sink_limit_msgs_per_s"] = round(sink_limit(port, 20000 if not q else 5000, size), 1)
            for _ in range(2):
                workers.start(1, 4)
            warm = make_digests(team, 200, "warm")
            enqueue(warm)
            wait_all("warm", 200, 120)
            ids = make_digests(team, n_e2e, "e2e")
            t0 = time.monotonic()
            enqueue(ids)
            wait_all("e2e", n_e2e, 1800)
            figures["e2e_msgs_per_s"] = round(n_e2e / (time.monotonic() - t0), 1)
            # fairness: a big batch of one team, then a small team's 10
            small_team = make_team("small", 3)
            big = make_digests(team, n_big, "big")
            small = make_digests(small_team, 10, "small")
            enqueue(big)
            time.sleep(0.5)
            t_small = datetime.now(UTC)
            enqueue(small)
            wait_all("small", 10, 600)
            from sqlalchemy import select

            from app.db import session
            from app.models import OutboundMessage as M

            with session() as s:
                done_at = sorted(
                    s.execute(select(M.updated_at).where(M.idempotency_key.like("small:%"))).scalars()
                )
                big_left = s.execute(
                    select(M.id).where(M.idempotency_key.like("big:%"), M.state == "queued")
                ).all()
            figures["small_team_max_latency_s"] = round((done_at[-1] - t_small).total_seconds(), 2)
            figures["big_batch_left_when_small_done"] = len(big_left)
            wait_all("big", n_big, 3600)
            workers.stop()
            figures.update({f"profile_ms_{k}": round(v, 3) for k, v in prof.items()})
        lost, dups, done = kill_test(workers, team, n_kill, kills, var)
        figures.update(lost=lost, duplicates=dups, kills=done, kill_messages=n_kill)
        figures["e2e_vs_naive"] = round(figures["e2e_msgs_per_s"] / figures["naive_msgs_per_s"], 2)
        figures["e2e_vs_sink_limit"] = round(figures["e2e_msgs_per_s"] / figures["sink_limit_msgs_per_s"], 3)
        figures["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    finally:
        workers.stop()
        drop_database(url)
        shutil.rmtree(var, ignore_errors=True)
    for k, v in figures.items():
        print(f"{k}={v}")
    if not q:
        write_section(figures)


def write_section(figures: dict) -> None:
    """Replace (or add) the "## Outbound relay" section of BENCHMARKS.md."""
    import importlib.metadata as md

    versions = ", ".join(
        f"{p} {md.version(p)}" for p in ("aiosmtplib", "dkimpy", "cryptography", "dramatiq", "psycopg")
    )
    rows = "\n".join(f"| {k} | {v} |" for k, v in figures.items())
    section = (
        "## Outbound relay\n\n"
        f"`python bench/outbound.py` on {datetime.now(UTC):%Y-%m-%d} (2 cores; "
        f"Python {sys.version.split()[0]}; {versions}; postfix smtp-sink/smtp-source from Debian).\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n"
    )
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Outbound relay")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
