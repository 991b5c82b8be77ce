"""Scheduler at scale on PostgreSQL + Redis: due-selection, create+enqueue, two concurrent schedulers.

    python bench/scheduler.py --quick        # 50,000 members, under a minute, prints name=value lines
    python bench/scheduler.py                # 1,000,000 members; writes "## Scheduler" into BENCHMARKS.md

The headline runs on a private cluster with PostgreSQL's stock settings (initdb and its
postgresql.conf as they come: 128 MB shared_buffers, 1 GB max_wal_size); a full run then
repeats on a private cluster tuned for bulk writes (``--server stock,tuned`` is the default
of a full run, ``stock`` of --quick; ``shared`` uses TEST_POSTGRES_URL as it is). Each
figure comes with the CPU seconds the scheduler processes and the cluster's processes spent
(from /proc), and the scheduler's peak RSS: the machine may be shared, CPU time is not.

A fresh database is created (and dropped), migrated, and the population is loaded
with COPY: members spread over every IANA zone this machine knows, their next
reminders spread over the coming week. The scheduler runs as real processes
(this file with --tick): each imports donebox with DATABASE_URL and REDIS_URL
set, waits for a common start instant, and runs the tick's producer
(``app.checkins.due.run``) with ``enqueue_deliveries`` to a Dramatiq RedisBroker.
Duplicates are counted in the outbox (rows per member and day) and among the
ids enqueued on Redis, and asserted to be 0. One process and two are measured with the
default SCHEDULE_WORKERS (two batches at once, split among the processes ticking), then with
one batch at a time per process: ``two_vs_one_speedup`` and ``two_vs_one_1worker_speedup``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import (  # noqa: E402 - bench/ is on sys.path when run as a script
    peak_rss_mb,
    rss_mb,
    slope_mb_per_min,
    tree_cpu_s,
)

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# --server own: a private PostgreSQL cluster with settings for bulk writes (the shared test server
# runs with Debian's defaults: 128 MB shared_buffers, 1 GB max_wal_size)
OWN_SERVER_SETTINGS = {
    "shared_buffers": "2GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "wal_buffers": "64MB",
    "effective_cache_size": "8GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
}
REDIS = os.environ.get("BENCH_REDIS_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11"))
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the bench's "now"; nothing is due then


def tick_main(args) -> int:
    """--tick: one scheduler process (env already carries DATABASE_URL and REDIS_URL)."""
    import jobs.actors  # noqa: F401 - the RedisBroker from REDIS_URL
    from app.checkins.due import run
    from app.settings import get_settings
    from jobs.enqueue import enqueue_deliveries

    settings = get_settings()
    now = datetime.fromisoformat(args.now)
    time.sleep(max(0.0, args.start_at - time.time()))
    started = time.perf_counter()
    cpu = os.times()
    created = run(now=now, settings=settings, enqueue=enqueue_deliveries, fast_path=not args.slow)
    seconds = time.perf_counter() - started
    after = os.times()
    # this process's own peak (VmHWM): getrusage's ru_maxrss keeps, across the exec that started
    # it, the resident set of the bench process it was forked from, which grew run after run
    rss_mb = peak_rss_mb(os.getpid())
    print(
        json.dumps(
            {
                "created": len(created),
                "seconds": seconds,
                "cpu_s": after.user + after.system - cpu.user - cpu.system,
                "rss_mb": rss_mb,
            }
        ),
        flush=True,
    )
    return 0


# ---------------------------------------------------------------- set-up


class OwnServer:
    """A throw-away PostgreSQL cluster on a loopback port (BENCH_PG_PORT, else a free one; initdb as
    the postgres user when root): stock settings, or ``tuned`` with OWN_SERVER_SETTINGS."""

    def __init__(self, tuned: bool):
        import glob
        import socket
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise SystemExit("--server own needs PostgreSQL's server binaries (apt-get install postgresql)")
        self.bin = Path(bins[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="donebox-bench-pg-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", int(os.environ.get("BENCH_PG_PORT", "0"))))
            self.port = sock.getsockname()[1]
        os.chmod(self.dir, 0o777)
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 " + " ".join(
            f"-c {k}={v}" for k, v in (OWN_SERVER_SETTINGS if tuned else {}).items()
        )
        self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-o", opts, "-w", "-l", str(self.dir / "log"), "start"
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def cpu_s(self) -> float:
        """CPU seconds of the cluster so far: the postmaster and its processes (backends, WAL
        writer, checkpointer, autovacuum), those that ended included (as cumulative children time)."""
        return tree_cpu_s(self.pid)

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=self.dir)

    def stop(self) -> None:
        import shutil

        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def create_db() -> str:
    import psycopg

    name = f"donebox_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_db(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def load(url: str, members: int, per_team: int = 10) -> float:
    """COPY teams and members in; returns seconds."""
    from zoneinfo import available_timezones

    import psycopg

    zones = sorted(available_timezones())
    teams = (members + per_team - 1) // per_team
    started = time.perf_counter()
    created = T0.isoformat()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY team (id, name, timezone, reminder_time, digest_time, workdays, digest_workdays, "
            "skip_empty_digests, weekly_digest_day, created_at) FROM STDIN"
        ) as copy:
            for t in range(1, teams + 1):
                zone = zones[t % len(zones)]
                copy.write(f"{t}\tTeam {t}\t{zone}\t17:00\t08:00\t1234567\t1234567\tf\t0\t{created}\n")
        with cur.copy(
            "COPY member (id, team_id, email, name, role, timezone, active, created_at) FROM STDIN"
        ) as copy:
            buf = []
            for m in range(1, members + 1):
                buf.append(
                    f"{m}\t{(m - 1) // per_team + 1}\tm{m}@bench.example\tM{m}\tmember\t"
                    f"{zones[(m * 31) % len(zones)]}\tt\t{created}\n"
                )
                if len(buf) >= 10000:
                    copy.write("".join(buf))
                    buf.clear()
            copy.write("".join(buf))
        with cur.copy("COPY memberdue (member_id, kind, at) FROM STDIN") as copy:
            buf = []
            week = 7 * 86400
            digest = (T0 + timedelta(days=20)).isoformat()
            for m in range(1, members + 1):
                # spread over a week that starts after every instant this bench ticks at
                due = T0 + timedelta(days=10, seconds=(m * 7919) % week)
                buf.append(f"{m}\treminder\t{due.isoformat()}\n{m}\tdigest\t{digest}\n")
                if len(buf) >= 10000:
                    copy.write("".join(buf))
                    buf.clear()
            copy.write("".join(buf))
        cur.execute("SELECT setval('team_id_seq', %s), setval('member_id_seq', %s)", (teams, members))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE team")
        conn.execute("VACUUM ANALYZE member")
        conn.execute("VACUUM ANALYZE memberdue")
    return time.perf_counter() - started


def make_due(url: str, at: datetime, every: int) -> int:
    """Every ``every``-th member due within the minute starting ``at``; the outbox emptied."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE messageevent, outboundmessage RESTART IDENTITY")
        cur = conn.execute(
            "UPDATE memberdue SET at = %s + make_interval(secs => member_id %% 60) "
            "WHERE kind = 'reminder' AND member_id %% %s = 0",
            (at, every),
        )
        n = cur.rowcount
        conn.execute("VACUUM ANALYZE memberdue")
        conn.execute("VACUUM ANALYZE outboundmessage")
        # the pages this set-up dirtied are written now, not by a checkpoint inside the tick's window
        # (its UPDATE of every member's row writes about 1 GB of WAL, a stock cluster's max_wal_size)
        conn.execute("CHECKPOINT")
    return n


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()


def enqueued_ids() -> list[int]:
    import redis

    r = redis.Redis.from_url(REDIS)
    ids: list[int] = []
    for key in r.scan_iter("donebox:*.msgs"):
        for raw in r.hvals(key):
            arg = json.loads(raw)["args"][0]
            ids += arg if isinstance(arg, list) else [arg]
    return ids


def run_schedulers(
    url: str, now: datetime, processes: int, batch: int, own=None, slow: bool = False, workers: int = 2
) -> dict:
    """Start ``processes`` scheduler processes together, ``workers`` batches at once in each
    (SCHEDULE_WORKERS); wall seconds from the common start, the processes' CPU seconds, their peak
    RSS, and the cluster's CPU seconds meanwhile (own clusters)."""
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": REDIS, "SCHEDULE_BATCH": str(batch)}
    env["SCHEDULE_WORKERS"] = str(workers)
    env.update(SECRET_KEY="bench-secret-key-0123456789-abcdefXYZ", VAR_DIR="/tmp/donebox-bench-var")
    env.update(DONEBOX_ENV="development", MAIL_TRANSPORT="memory", PYTHONPATH=str(ROOT))
    start_at = time.time() + 3.0  # every process has imported donebox by then
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--tick", "--now", now.isoformat(), "--start-at", str(start_at)]
            + (["--slow"] if slow else []),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    time.sleep(max(0.0, start_at - time.time()))
    pg_cpu = own.cpu_s() if own else None
    wal = wal_written(url)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        if p.returncode != 0:
            raise SystemExit(f"scheduler process failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.time() - start_at
    pg_cpu_s = own.cpu_s() - pg_cpu if own else None
    wal_after = wal_written(url)  # after the CPU reading, as the one before: its connection is not counted
    return {
        "created": [r["created"] for r in results],
        "seconds": max(r["seconds"] for r in results),
        "wall": wall,
        "cpu_s": sum(r["cpu_s"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),
        "pg_cpu_s": pg_cpu_s,
        # the cluster's WAL meanwhile (the shared server: other databases' too)
        "wal_mb": (wal_after[0] - wal[0]) / 1e6,
        "wal_fpi": wal_after[1] - wal[1],
    }


def wal_written(url: str) -> tuple[int, int]:
    """(bytes of WAL, full-page images in it) the cluster has written so far (pg_stat_wal)."""
    import psycopg

    with psycopg.connect(url) as conn:
        written, fpi = conn.execute("SELECT wal_bytes, wal_fpi FROM pg_stat_wal").fetchone()
    return int(written), int(fpi)


def duplicates(url: str, expected: int) -> int:
    """Outbox rows beyond one per member and day, plus ids enqueued more than once, plus missing ones."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows, members = conn.execute(
            "SELECT count(*), count(DISTINCT (member_id, context)) FROM outboundmessage "
            "WHERE kind = 'reminder'"
        ).fetchone()
    ids = enqueued_ids()
    dup = (rows - members) + (len(ids) - len(set(ids)))
    if members != expected or len(set(ids)) != expected:
        raise SystemExit(
            f"expected {expected} reminders, got {members} rows and {len(set(ids))} enqueued ids"
        )
    return dup


# ---------------------------------------------------------------- measurements


def due_select_ms(url: str, runs: int = 200) -> float:
    """Median time of the tick's due-selection statement when nothing is due (an empty batch)."""
    from sqlmodel import Session

    from app.checkins.due import REMINDER, due_query
    from app.db import make_engine

    engine = make_engine(url)
    times = []
    with Session(engine) as s:
        stmt = due_query(REMINDER, T0, 2000, "postgresql")
        for _ in range(runs):
            started = time.perf_counter()
            rows = s.execute(stmt).all()
            s.rollback()
            times.append((time.perf_counter() - started) * 1000)
            assert rows == []
    engine.dispose()
    return statistics.median(times)


def ref_copy_rows_per_s(url: str, n: int) -> float:
    """Reference: COPY of n outbox-like rows into an unlogged scratch table (the floor of any insert)."""
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE ref_copy (k text, to_addr text, ctx text, mid text, t timestamptz)")
        started = time.perf_counter()
        with cur.copy("COPY ref_copy FROM STDIN") as copy:
            for i in range(n):
                copy.write_row(
                    (f"reminder:{i}:2026-12-01", f"m{i}@x", '{"day": "2026-12-01"}', f"<{i}@x>", T0)
                )
        return n / (time.perf_counter() - started)


def ref_enqueue_single_per_s(n: int) -> float:
    """Reference: one Dramatiq message per id on the Redis broker."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=REDIS, namespace="donebox-ref")
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name="ref", broker=broker)
    def ref(message_id: int) -> None:  # never run: only enqueued
        pass

    started = time.perf_counter()
    for i in range(n):
        ref.send(i)
    rate = n / (time.perf_counter() - started)
    broker.flush_all()
    return rate


def versions(url: str) -> str:
    import dramatiq
    import psycopg
    import redis
    import sqlalchemy

    with psycopg.connect(url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    rv = redis.Redis.from_url(REDIS).info("server")["redis_version"]
    return (
        f"Python {platform.python_version()}, PostgreSQL {pg}, Redis {rv}, dramatiq {dramatiq.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__}"
    )


def _cpu(r: dict) -> str:
    pg = f" + PostgreSQL {r['pg_cpu_s']:.1f} s" if r.get("pg_cpu_s") is not None else ""
    return f"CPU: scheduler {r['cpu_s']:.1f} s{pg}; WAL {r['wal_mb']:.0f} MB, {r['wal_fpi']} full-page images"


def write_section(figures: dict, members: int, due_n: int, info: str) -> None:
    one, two, slow = figures["all_1"], figures["all_2"], figures["all_slow"]
    one_w1, two_w1 = figures["all_1w1"], figures["all_2w1"]
    rows = [
        ("due-selection, nothing due (median)", f"{figures['due_select_ms']:.2f} ms", "< 5 ms"),
        (f"create + enqueue, {due_n:,} due in one minute", f"{figures['create_enqueue_s']:.2f} s", "< 10 s"),
        (f"create + enqueue, all {members:,} due", f"{one['seconds']:.2f} s ({_cpu(one)})", "< 30 s"),
        (
            f"two scheduler processes, all {members:,} due",
            f"{two['seconds']:.2f} s (split {two['split']}; {_cpu(two)}): "
            f"{figures['two_vs_one']:.2f}x one's speed",
            "faster than one, 0 duplicates",
        ),
        (
            f"one process of one worker (`SCHEDULE_WORKERS=1`), all {members:,} due",
            f"{one_w1['seconds']:.2f} s ({_cpu(one_w1)})",
            "",
        ),
        (
            f"two processes of one worker each, all {members:,} due",
            f"{two_w1['seconds']:.2f} s (split {two_w1['split']}; {_cpu(two_w1)}): "
            f"{figures['two_vs_one_1worker']:.2f}x one's speed",
            "",
        ),
        (
            f"reference: the per-row path (run_batch), all {members:,} due",
            f"{slow['seconds']:.2f} s ({_cpu(slow)})",
            "",
        ),
        ("duplicates (outbox rows + enqueued ids)", str(figures["duplicates"]), "0 (asserted)"),
        (
            "scheduler peak RSS, one process / the larger of two",
            f"{one['rss_mb']:.0f} / {two['rss_mb']:.0f} MB",
            "",
        ),
        ("rows created per second (one process)", f"{figures['create_rows_per_s']:,.0f}", ""),
        ("reference: COPY into a scratch table", f"{figures['ref_copy_rows_per_s']:,.0f} rows/s", ""),
        ("reference: one broker message per id", f"{figures['ref_enqueue_single_per_s']:,.0f} ids/s", ""),
        (
            "create rate / COPY rate, same run",
            f"{figures['create_rows_per_s'] / figures['ref_copy_rows_per_s']:.3f}",
            "",
        ),
        ("population load (COPY)", f"{figures['load_s']:.1f} s", ""),
        ("load average during the run", figures["loadavg"], "2 cores, shared"),
    ]
    table = "| figure | measured | target |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    title = SUBSECTIONS[figures["server"]]
    sub = f"### {title}\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {members:,} members; {info}.\n\n{table}\n"
    intro = (
        "## Scheduler\n\n"
        "`python bench/scheduler.py`: members spread over every IANA zone, loaded with COPY; the "
        "scheduler runs as real processes against PostgreSQL and a Dramatiq RedisBroker on this 2-core "
        f"machine (shared with other work: see the load average and the CPU seconds). Batches of "
        f"{figures['batch']} members per transaction, two at once per process (`SCHEDULE_WORKERS=2`, "
        "each on its own connection); a broker message carries up to 100 ids. Reminders take the "
        "set-based path: the ids of every due member are read once, ascending, and taken in chunks of "
        "consecutive ids (from a first chunk chosen at random per process); one statement per chunk "
        "advances the members' next times (their `memberdue` rows) and inserts their outbox rows "
        "and creation events from groups "
        "(members sharing a local day and a next reminder) that Python works out with times.py. "
        "The reference row runs the per-row path (run_batch: batches in due-time order). "
        "Duplicates are counted in the outbox (rows per member and day) and among the ids on Redis, "
        "and asserted to be 0. Each tick starts after a CHECKPOINT, so that the pages the set-up's "
        "UPDATE of the members' due times dirtied are not written inside its window. CPU seconds are "
        "read from /proc: the scheduler processes', and the "
        "private cluster's (backends, WAL writer, checkpointer, autovacuum); the WAL written and its "
        "full-page images from pg_stat_wal. Schedulers ticking at once split the two batches at "
        "once between them (`due._Ticking`); one process of two batches already keeps most of the "
        "two cores busy (its CPU seconds over its wall seconds), so the rows of processes of one "
        "batch at a time (`SCHEDULE_WORKERS=1` in each) show what a second process adds while a "
        "core is free.\n\n"
    )
    put_subsection(title, sub, intro)


def put_subsection(title: str, sub: str, intro: str | None = None) -> None:
    """Put the subsection ``sub`` (its heading ``### title``) in BENCHMARKS.md's "## Scheduler",
    with ``intro`` as the section's text before its subsections (None: the one there now). The
    servers' subsections come first, in their order, then the others (the soak, a before/after
    written by hand)."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Scheduler")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + (intro or "## Scheduler\n\n") + sub
    else:
        end = text.find("\n## ", start + 1)
        section, rest = (text[start : end + 1], text[end + 1 :]) if end >= 0 else (text[start:], "")
        head, *parts = section.split("\n### ")
        subs = {}
        for part in parts:
            subs[part.split("\n", 1)[0].strip()] = "### " + part.rstrip("\n") + "\n"
        subs[title] = sub
        ordered = [subs[t] for t in SUBSECTIONS.values() if t in subs]
        ordered += [v for t, v in subs.items() if t not in SUBSECTIONS.values()]
        intro = intro or head.rstrip("\n") + "\n\n"
        text = text[:start] + intro + "\n".join(ordered) + ("\n" + rest if rest else "")
    path.write_text(text)


SUBSECTIONS = {
    "stock": "A private PostgreSQL cluster with stock settings",
    "tuned": "A private PostgreSQL cluster tuned for bulk writes",
    "shared": "The shared test server",
}


def measure(kind: str, members: int, args, prefix: str) -> dict:
    """Every figure on one server (``kind``); prints them as name=value lines with ``prefix``."""
    global PG_ADMIN
    own = OwnServer(tuned=kind == "tuned") if kind in ("stock", "tuned") else None
    admin = PG_ADMIN
    if own:
        PG_ADMIN = own.url
    url = create_db()
    every = 10  # a tenth of the population falls due in the same minute
    size = f"{members // 1_000_000}m" if members % 1_000_000 == 0 else f"{members // 1000}k"
    fig: dict = {"batch": args.batch, "server": kind}

    def out(name: str, value, comment: str = "") -> None:
        print(f"{prefix}{name}={value}" + (f"  # {comment}" if comment else ""), flush=True)

    try:
        from app.migrate import upgrade

        upgrade(url)
        flush_redis()
        fig["load_s"] = load(url, members)
        fig["due_select_ms"] = due_select_ms(url)
        out("due_select_ms", f"{fig['due_select_ms']:.3f}")

        due_n = make_due(url, T0 + timedelta(days=1), every)
        r = run_schedulers(url, T0 + timedelta(days=1, seconds=60), 1, args.batch, own)
        fig["create_enqueue_s"] = r["seconds"]
        dup = duplicates(url, due_n)
        out("create_enqueue_s", f"{r['seconds']:.3f}", f"{due_n} due in one minute")

        # (name, its figures' infix, processes, per-row path, day, SCHEDULE_WORKERS): the default of
        # two batches at once per process, then processes of one batch at a time, where a second
        # process has a core free
        runs = (
            ("all_1", "", 1, False, 3, 2),
            ("all_2", "_2proc", 2, False, 5, 2),
            ("all_slow", "_per_row_path", 1, True, 7, 2),
            ("all_1w1", "_1worker", 1, False, 9, 1),
            ("all_2w1", "_2proc_1worker", 2, False, 11, 1),
        )
        for name, infix, processes, slow, day, workers in runs:
            flush_redis()
            make_due(url, T0 + timedelta(days=day), 1)
            r = run_schedulers(
                url, T0 + timedelta(days=day, seconds=60), processes, args.batch, own, slow, workers
            )
            fig[name] = r
            assert sum(r["created"]) == members, r
            dup += duplicates(url, members)
            label = f"create_enqueue_{size}{infix}"
            comment = f"all {members} due, {processes} process(es) of {workers} worker(s); {_cpu(r)}"
            if processes == 2:
                r["split"] = "/".join(map(str, r["created"]))
                comment += f"; split {r['split']}"
            out(f"{label}_s", f"{r['seconds']:.3f}", comment)
            out(f"{label}_cpu_s", f"{r['cpu_s'] + (r['pg_cpu_s'] or 0):.1f}")
            out(f"{label}_wal_mb", f"{r['wal_mb']:.0f}")
        fig["create_rows_per_s"] = members / fig["all_1"]["seconds"]
        fig["duplicates"] = dup
        out("duplicates", dup)
        assert dup == 0, f"{dup} duplicates"
        fig["two_vs_one"] = fig["all_1"]["seconds"] / fig["all_2"]["seconds"]
        fig["two_vs_one_1worker"] = fig["all_1w1"]["seconds"] / fig["all_2w1"]["seconds"]
        out("two_vs_one_speedup", f"{fig['two_vs_one']:.3f}")
        out("two_vs_one_1worker_speedup", f"{fig['two_vs_one_1worker']:.3f}")
        out("scheduler_peak_rss_mb", f"{fig['all_1']['rss_mb']:.0f}")
        out("scheduler_2proc_peak_rss_mb", f"{fig['all_2']['rss_mb']:.0f}")

        flush_redis()
        fig["ref_copy_rows_per_s"] = ref_copy_rows_per_s(url, min(members, 100_000))
        fig["ref_enqueue_single_per_s"] = ref_enqueue_single_per_s(2000 if args.quick else 10_000)
        fig["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        out("create_rows_per_s", f"{fig['create_rows_per_s']:.0f}")
        out("ref_copy_rows_per_s", f"{fig['ref_copy_rows_per_s']:.0f}")
        out("ref_enqueue_single_per_s", f"{fig['ref_enqueue_single_per_s']:.0f}")
        out("create_vs_copy_ratio", f"{fig['create_rows_per_s'] / fig['ref_copy_rows_per_s']:.3f}")
        out("load_s", f"{fig['load_s']:.2f}")
        out("server", kind)
        out("loadavg", fig["loadavg"])
        info = versions(url)
        if kind == "tuned":
            info += "; a private cluster with " + ", ".join(
                f"{k}={v}" for k, v in OWN_SERVER_SETTINGS.items()
            )
        elif kind == "stock":
            info += "; a private cluster as initdb makes it (stock postgresql.conf)"
        else:
            info += "; the shared server with its own settings"
        fig["info"], fig["due_n"] = info, due_n
    finally:
        flush_redis()
        if not args.keep or own:
            drop_db(url)
        if own:
            own.stop()
        PG_ADMIN = admin
    return fig


SOAK_HEADING = "A scheduler over ten minutes"
SOAK_SAMPLE_S = 5.0
SOAK_EDGE_S = 30  # nothing falls due in the soak's first and last half minute


def soak(seconds: float, members: int) -> dict:
    """``donebox scheduler`` as an operator starts it, on its real clock, for ``seconds``, on a
    private stock cluster: every member's reminder falls due once in the window (spread evenly
    over it, the first and last SOAK_EDGE_S left free), every fourth member's digest too (the
    per-row path). Its resident set every SOAK_SAMPLE_S (its start: when the first falls due, once
    it has booted), its CPU and the cluster's, how late the
    reminders were made (their outbox rows' created_at against the instant each fell due), and
    every reminder and digest made once and enqueued once."""
    import psycopg

    global PG_ADMIN
    own = OwnServer(tuned=False)
    PG_ADMIN = own.url
    url = create_db()
    out: dict = {"members": members, "seconds": seconds}
    try:
        from app.migrate import upgrade

        upgrade(url)
        flush_redis()
        out["load_s"] = load(url, members)
        span = int(seconds) - 2 * SOAK_EDGE_S
        start = datetime.now(UTC) + timedelta(seconds=SOAK_EDGE_S + 15)  # its imports meanwhile
        due_at = (
            "CAST(%(start)s AS timestamptz)"
            " + make_interval(secs => (CAST(member_id AS bigint) * 7919) %% %(span)s)"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"UPDATE memberdue SET at = {due_at} WHERE kind = 'reminder'", {"start": start, "span": span}
            )
            digests = conn.execute(
                f"UPDATE memberdue SET at = {due_at} WHERE kind = 'digest' AND member_id %% 4 = 0",
                {"start": start, "span": span},
            ).rowcount
            conn.execute("VACUUM ANALYZE memberdue")
            conn.execute("CHECKPOINT")
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": REDIS, "PYTHONPATH": str(ROOT)}
        env.update(SECRET_KEY="bench-secret-key-0123456789-abcdefXYZ", VAR_DIR="/tmp/donebox-bench-var")
        # no worker takes the rows in this bench: with the default lease the sweeper would give
        # every row back (and enqueue it again) five minutes after it was made
        env.update(DONEBOX_ENV="development", MAIL_TRANSPORT="memory", LEASE_S=str(2 * int(seconds)))
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "donebox"), "scheduler"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        t0, pg0 = time.monotonic(), own.cpu_s()
        first_due_t = (start - datetime.now(UTC)).total_seconds()  # booted by then
        samples: list[tuple[float, float]] = []
        try:
            while (t := time.monotonic() - t0) < seconds:
                if proc.poll() is not None:
                    raise SystemExit(f"donebox scheduler exited:\n{proc.stderr.read()[-3000:]}")
                samples.append((t, rss_mb(proc.pid)))
                time.sleep(SOAK_SAMPLE_S)
            out["cpu_s"] = tree_cpu_s(proc.pid)
            out["rss_peak_mb"] = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.communicate(timeout=60)
        out["pg_cpu_s"] = own.cpu_s() - pg0
        out["rss_start_mb"] = next((v for t, v in samples if t >= first_due_t), samples[-1][1])
        out["rss_end_mb"] = samples[-1][1]
        out["rss_slope_mb_per_min"] = slope_mb_per_min([(t, v) for t, v in samples if t >= seconds / 2])
        with psycopg.connect(url) as conn:
            kinds = dict(
                conn.execute("SELECT kind, count(DISTINCT member_id) FROM outboundmessage GROUP BY kind")
            )
            rows = conn.execute("SELECT count(*) FROM outboundmessage").fetchone()[0]
            lag = conn.execute(
                f"SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY s), max(s) FROM ("
                f"SELECT extract(epoch FROM created_at - ({due_at})) AS s FROM outboundmessage "
                "WHERE kind = 'reminder') AS lags",
                {"start": start, "span": span},
            ).fetchone()
        ids = enqueued_ids()
        out.update(
            reminders=kinds.get("reminder", 0),
            digests=kinds.get("digest", 0),
            digests_due=digests,
            duplicates=(rows - sum(kinds.values())) + (len(ids) - len(set(ids))),
            unenqueued=rows - len(set(ids)),
            lag_p50_s=lag[0][0],
            lag_p99_s=lag[0][1],
            lag_max_s=lag[1],
            loadavg=" ".join(f"{x:.2f}" for x in os.getloadavg()),
            info=versions(url) + "; a private cluster as initdb makes it (stock postgresql.conf)",
        )
    finally:
        flush_redis()
        drop_db(url)
        own.stop()
    return out


def print_soak(r: dict) -> None:
    for name in ("rss_start_mb", "rss_end_mb", "rss_peak_mb", "rss_slope_mb_per_min", "cpu_s", "pg_cpu_s"):
        print(f"soak_scheduler_{name}={r[name]:.2f}")
    for name in ("reminders", "digests", "digests_due", "duplicates", "unenqueued"):
        print(f"soak_{name}={r[name]}")
    for name in ("lag_p50_s", "lag_p99_s", "lag_max_s"):
        print(f"soak_reminder_{name}={r[name]:.2f}")


def write_soak(r: dict) -> None:
    sub = (
        f"### {SOAK_HEADING}\n\n"
        f"`python bench/scheduler.py --soak {r['seconds']:.0f} --members {r['members']}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {r['info']}. `donebox scheduler` as deploy/ starts it "
        "(its default TICK_S and SCHEDULE_WORKERS, its real clock) while every member's reminder falls "
        f"due once, spread evenly over the run but its first and last {SOAK_EDGE_S} s, and every "
        "fourth member's digest too (the per-row path); its resident set every "
        f"{SOAK_SAMPLE_S:.0f} s from when the first falls due, its growth fitted over the second half. "
        "A reminder's lateness is its "
        "outbox row's created_at against the instant it fell due. No worker takes the rows, so "
        "LEASE_S is twice the run's length (the sweeper would give every row back after the "
        "default five minutes).\n\n"
        "| figure | measured |\n|---|---|\n"
        f"| resident set: start, end, peak | {r['rss_start_mb']:.0f}, {r['rss_end_mb']:.0f}, "
        f"{r['rss_peak_mb']:.0f} MB |\n"
        f"| growth over the second half | {r['rss_slope_mb_per_min']:.2f} MB/min |\n"
        f"| reminders made (members) | {r['reminders']:,} of {r['members']:,} |\n"
        f"| digests made | {r['digests']:,} of {r['digests_due']:,} |\n"
        "| duplicates (outbox rows + enqueued ids); rows never enqueued | "
        f"{r['duplicates']}; {r['unenqueued']} |\n"
        f"| reminder lateness: median, p99, max | {r['lag_p50_s']:.1f}, {r['lag_p99_s']:.1f}, "
        f"{r['lag_max_s']:.1f} s |\n"
        f"| CPU over the run: scheduler, PostgreSQL | {r['cpu_s']:.1f} s, {r['pg_cpu_s']:.1f} s |\n"
        f"| load average at the end | {r['loadavg']} |\n"
    )
    put_subsection(SOAK_HEADING, sub)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="50,000 members; no BENCHMARKS.md")
    p.add_argument("--members", type=int, help="population size (default 1,000,000; --quick 50,000)")
    p.add_argument("--write", action="store_true", help="write BENCHMARKS.md for a --quick run too")
    p.add_argument("--no-write", action="store_true", help="print only, even for a full run")
    p.add_argument("--batch", type=int, default=2000, help="SCHEDULE_BATCH for the scheduler processes")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards (shared server only)")
    p.add_argument(
        "--server",
        help="comma-separated, in order: stock (a private cluster as initdb makes it), tuned (a private "
        "cluster tuned for bulk writes), shared (TEST_POSTGRES_URL as configured); the first is the "
        "headline, the others' lines are prefixed with their name (default: stock,tuned; --quick: stock)",
    )
    p.add_argument(
        "--soak",
        type=float,
        metavar="SECONDS",
        help="run `donebox scheduler` for SECONDS while reminders fall due (default members 300,000); "
        "600 or more writes its subsection",
    )
    p.add_argument("--tick", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--slow", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--now", help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.tick:
        return tick_main(args)
    os.environ.update(
        REDIS_URL=REDIS, SECRET_KEY="bench-secret-key-0123456789-abcdefXYZ", VAR_DIR="/tmp/donebox-bench-var"
    )
    if args.soak:
        r = soak(args.soak, args.members or 300_000)
        print_soak(r)
        if (
            r["duplicates"]
            or r["unenqueued"]
            or r["reminders"] != r["members"]
            or r["digests"] != r["digests_due"]
        ):
            raise SystemExit("the soak lost or repeated work: see the figures above")
        if args.soak >= 600 and not args.no_write:
            write_soak(r)
        return 0
    members = args.members or (50_000 if args.quick else 1_000_000)
    kinds = (args.server or ("stock" if args.quick else "stock,tuned")).split(",")
    for kind in kinds:
        if kind not in SUBSECTIONS:
            raise SystemExit(f"--server: unknown {kind!r}; known: {', '.join(SUBSECTIONS)}")
    print(f"members={members}")
    print(f"cores={os.cpu_count()}")
    for i, kind in enumerate(kinds):
        fig = measure(kind, members, args, "" if i == 0 else f"{kind}_")
        if (not args.quick or args.write) and not args.no_write:
            write_section(fig, members, fig["due_n"], fig["info"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
