"""Inbound benchmark: durably accepted SendGrid-parsed POSTs per second and their latency, then
messages processed per second by a real ``donebox worker`` process, on SQLite and on PostgreSQL.

The real path: ``donebox web`` (2 uvicorn workers, uvloop + httptools) accepts each POST, commits
it (group commit) and enqueues its group's ids on Redis (one ``process_inbound_batch`` message per
committed group); a ``donebox worker --processes 1`` then takes them from Redis and processes
them. Intake is driven with 16 and 64 keep-alive clients (a separate load-generator process), and
in the same run the same server on an endpoint that parses the same form but stores nothing (the
web stack's ceiling). Processing is measured after intake, on the queue it left: messages
processed per second per worker process, and its CPU milliseconds per message from /proc (with
the PostgreSQL backends' beside it). Each process kind's peak RSS (VmHWM) is printed too.

The POSTs are what members send: nine in ten a reply of four lines above the quoted reminder (text
and HTML, with a sender's usual header block), one in ten a 4,000-character pasted line. They come
from the members of TEAMS teams of TEAM_SIZE (in five time zones), each to their own reply
address, consecutive POSTs from different teams: a worker's batch holds many members' replies.

``--soak SECONDS`` holds the 64-client load on one web (and the worker processing what it
accepts) for SECONDS and samples every process's resident set every few seconds: start, end,
peak and the growth slope over the second half, per kind.

Prints one ``name=value`` line per figure; ``--quick`` finishes in under a minute; a full run
writes its section into BENCHMARKS.md (bench/common.put_section), as does a soak of 10 minutes
or more.

    .venv/bin/python bench/inbound.py --quick
    .venv/bin/python bench/inbound.py --soak 600 --db postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import NamedTuple

from common import (  # noqa: E402 - bench/ is on sys.path when run as a script
    cpu_yardstick_s,
    free_port,
    group_pids,
    peak_rss_mb,
    postgres_cpu_s,
    process_cpu_s,
    put_section,
    rss_mb,
    slope_mb_per_min,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
AUTH = "bench:bench-password"
SECRET = "bench-secret-key-0123456789-abcdefXYZ"
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
BOUNDARY = "xYzZY"


# ---- payloads -------------------------------------------------------------------------------


# What members send: a few lines above the quoted reminder, and one message in LONG_EVERY a long
# pasted line (one entry, cut at MAX_ENTRY_CHARS, with a note on the message)
REPLY = (
    "Shipped the CSV export for the billing team (ticket {tag})\n"
    "Reviewed #42 with @bob and merged it\n"
    "Paired with Carol on the importer's retry logic\n"
    "Tomorrow: finish the docs for the export\n"
    "\n"
    "Thanks,\n"
    "{name}\n"
    "\n"
    "On Mon, Nov 23, 2026 at 5:00 PM Donebox <{to}> wrote:\n"
    "> Hi {name},\n"
    ">\n"
    "> What did you get done today? Reply to this email: each line becomes an entry.\n"
    "> Start a line with Tomorrow: for what comes next, or Blocked: for what holds you up.\n"
    ">\n"
    "> The team's digest goes out at 9:00 tomorrow.\n"
)
LONG = ("Shipped the export; reviewed #42 with @bob; paired on the importer. " * 60)[:4000]
LONG_EVERY = 10
# Who sends: TEAMS teams of TEAM_SIZE members, replies coming from all of them in turn (each
# member's own reply address, name and reminder), MIX_STEP apart in the list so that
# consecutive POSTs are of different teams
TEAMS, TEAM_SIZE = 20, 12
MIX_STEP = 97  # prime: with any population that it does not divide, every member in turn
_SIGNATURE = "".join(chr(65 + (i * 7) % 26) for i in range(344))  # a DKIM signature's size
_RECEIVED = (
    "Received: from mail-{i}.example.com (mail-{i}.example.com [192.0.2.{i}]) by mx.sendgrid.net "
    "with ESMTPS id bench{i} for <{to}>; Mon, 23 Nov 2026 16:53:0{i} +0000 (UTC)\n"
)


def sendgrid_body(
    n: int, to: str, long: bool = False, name: str = "Ada", email: str = "ada@example.com"
) -> bytes:
    """One SendGrid parsed-mode multipart POST body, unique by its Message-ID: a reply of ``name``
    (``email``) above the quoted reminder, in text and HTML, or with ``long`` a 4,000-character line."""
    if long:
        text = f"bench-{n}: {LONG}"
        html = "<div>" + text.replace("; ", "<br>") + "</div>"
    else:
        text = REPLY.format(to=to, tag=f"bench-{n}", name=name)
        mine, _, quoted = text.partition("\nOn Mon")
        html = (
            '<div dir="ltr">'
            + "".join(f"<div>{line or '<br>'}</div>" for line in mine.split("\n"))
            + f'</div><br><div class="gmail_quote"><div>On Mon{quoted.splitlines()[0]}</div>'
            + '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid;'
            + 'padding-left:1ex">'
            + "".join(f"<div>{line[2:] or '<br>'}</div>" for line in quoted.splitlines()[1:])
            + "</blockquote></div>"
        )
    headers = (
        "".join(_RECEIVED.format(i=i, to=to) for i in range(1, 4))
        + "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1; h=from:to:subject:"
        + f"date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b={_SIGNATURE}\n"
        + "ARC-Authentication-Results: i=1; mx.example.com; dkim=pass header.d=example.com; spf=pass\n"
        + f"MIME-Version: 1.0\nFrom: {name} <{email}>\nTo: {to}\n"
        + "Subject: Re: What did you get done today?\n"
        + f"Date: Mon, 23 Nov 2026 17:53:04 +0100\nMessage-ID: <bench-{n}@example.com>\n"
        + "In-Reply-To: <r.1@donebox.example>\nReferences: <r.1@donebox.example>\n"
        + 'Content-Type: multipart/alternative; boundary="000000000000a1b2c3"\n'
    )
    fields = [
        ("headers", headers),
        ("dkim", "{@example.com : pass}"),
        ("SPF", "pass"),
        ("envelope", json.dumps({"to": [to], "from": email})),
        ("to", to),
        ("from", f"{name} <{email}>"),
        ("subject", "Re: What did you get done today?"),
        ("text", text),
        ("html", html),
        (
            "charsets",
            json.dumps(
                {"to": "UTF-8", "html": "UTF-8", "subject": "UTF-8", "from": "UTF-8", "text": "UTF-8"}
            ),
        ),
        ("spam_score", "0.1"),
        ("spam_report", "Spam detection software has NOT identified this incoming email as spam.\n"),
        ("sender_ip", "192.0.2.1"),
        ("attachments", "0"),
    ]
    out = b""
    for name, value in fields:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def request_bytes(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Authorization: Basic {b64encode(AUTH.encode()).decode()}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# ---- load generator (runs as its own process) -----------------------------------------------


class Requests:
    """Request n is one of two POSTs (the long one every LONG_EVERY) of one of the population's
    members, with its own Message-ID and first line (built on the fly: no 300 MB in memory).
    Consecutive requests come from members of different teams, as replies arrive."""

    def __init__(self, path: str, people: str, unique: bool):
        marker = "X" * 20
        self.forms = [  # split where the Message-ID and the text carry the message's number
            [
                request_bytes(path, sendgrid_body(0, p.address, long, p.name, p.email).replace(
                    b"bench-0", f"bench-{marker}".encode()
                )).split(marker.encode())
                for long in (False, True)
            ]
            for p in read_people(people)
        ]  # fmt: skip
        self.run = uuid.uuid4().hex[:8]
        self.unique = unique

    def __getitem__(self, n: int) -> bytes:
        tag = f"{self.run}{n if self.unique else 0:012d}".encode()
        member = (n * MIX_STEP) % len(self.forms)
        return tag.join(self.forms[member][n % LONG_EVERY == 0])


async def _client(port: int, requests: Requests, counter: list, stop_at: float, lat: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at:
            counter[0] += 1
            req = requests[counter[0]]
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            status = int(head[9:12])
            lat.append(time.perf_counter() - t0)
            if status >= 300:
                errors.append(status)
    finally:
        writer.close()


async def _load(
    port: int, path: str, people: str, clients: int, seconds: float, warmup: float, unique: bool
) -> dict:
    requests = Requests(path, people, unique)
    counter = [0]
    lat: list[float] = []
    errors: list[int] = []
    if warmup:
        stop = time.monotonic() + warmup
        await asyncio.gather(*(_client(port, requests, counter, stop, [], []) for _ in range(clients)))
    warm = counter[0]
    t0 = time.monotonic()
    await asyncio.gather(
        *(_client(port, requests, counter, t0 + seconds, lat, errors) for _ in range(clients))
    )
    elapsed = time.monotonic() - t0
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else 0.0

    return {
        "per_s": len(lat) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "requests": len(lat),
        "warmup_requests": warm,
        "errors": len(errors),
        "statuses": sorted(set(errors))[:5],
    }


def loadgen_main(args) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    unique = not args.path.startswith("/dev/")
    result = asyncio.run(
        _load(args.port, args.path, args.people, args.clients, args.seconds, args.warmup, unique)
    )
    print(json.dumps(result))


def load_cmd(port: int, path: str, clients: int, seconds: float, people: str, warmup: float) -> list[str]:
    cmd = [
        sys.executable,
        __file__,
        "--loadgen",
        "--port",
        str(port),
        "--path",
        path,
        "--clients",
        str(clients),
    ]
    return cmd + ["--seconds", str(seconds), "--people", people, "--warmup", str(warmup)]


def run_load(port: int, path: str, clients: int, seconds: float, people: str, warmup: float) -> dict:
    cmd = load_cmd(port, path, clients, seconds, people, warmup)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- servers and databases --------------------------------------------------------------------


def bench_env(db_url: str, var_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RABBITMQ_URL")}
    env.update(
        DONEBOX_ENV="development",
        DATABASE_URL=db_url,
        VAR_DIR=var_dir,
        SECRET_KEY=SECRET,
        SENDGRID_INBOUND_AUTH=AUTH,
        REPLY_DOMAIN="reply.bench",
        INBOUND_RAW_TOKEN="bench-raw",
        REDIS_URL=REDIS,  # the web enqueues each committed group; the worker takes it from there
    )
    return env


def clear_queues() -> None:
    """Drop what an earlier run left in the bench's Redis database (the donebox namespace only)."""
    import redis

    r = redis.Redis.from_url(REDIS, socket_connect_timeout=2)
    r.ping()  # the bench needs Redis: say so at once
    keys = list(r.scan_iter("donebox:*", count=1000))
    if keys:
        r.delete(*keys)


class Server:
    """A donebox command in its own process group: its processes' CPU seconds and resident sets."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.out = open(log, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.proc = subprocess.Popen(
            [str(BIN / "donebox"), *args],
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log = log

    def pids(self) -> list[int]:
        return group_pids(self.proc.pid)

    def children(self) -> list[int]:
        """The processes doing the work (uvicorn's or Dramatiq's worker processes), not the parent."""
        return [p for p in self.pids() if p != self.proc.pid] or [self.proc.pid]

    def cpu_s(self) -> float:
        return sum(process_cpu_s(p) for p in self.pids())

    def peak_rss_mb(self) -> float:
        """The largest peak resident set (VmHWM) among its processes, in MB."""
        return max((peak_rss_mb(p) for p in self.pids()), default=0.0)

    def rss_mb(self) -> float:
        """The largest resident set now among its working processes, in MB."""
        return max((rss_mb(p) for p in self.children()), default=0.0)

    def failed(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.out.close()


def start_web(env: dict, port: int, log: Path, workers: int = 2) -> Server:
    web = Server(["web", "--workers", str(workers), "--port", str(port)], env, log)
    try:
        wait_port(port, 120)  # imports and the start-up checks take a while on a busy machine
    except RuntimeError:
        web.stop()
        raise RuntimeError("donebox web did not start: " + web.failed()) from None
    deadline = time.monotonic() + 10
    while len(web.pids()) < workers + 1 and time.monotonic() < deadline:  # every worker up
        time.sleep(0.1)
    time.sleep(0.5)
    return web


def start_worker(env: dict, log: Path, threads: int) -> Server:
    """``donebox worker --processes 1``, returned once its worker process is ready."""
    worker = Server(["worker", "--processes", "1", "--threads", str(threads)], env, log)
    deadline = time.monotonic() + 120
    while "Worker process is ready for action" not in log.read_text(errors="replace"):
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError("donebox worker did not start: " + worker.failed())
        time.sleep(0.2)
    return worker


def setup_database(kind: str, tmp: str) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{tmp}/bench.db", lambda: None
    import psycopg

    name = f"donebox_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, drop


class Person(NamedTuple):
    address: str  # the member's reply address (today's)
    name: str
    email: str


def prepare(env: dict, teams: int = 1, size: int = 1) -> list[Person]:
    """Migrate, create ``teams`` teams of ``size`` members each, in time zones of their own; the
    members, with their reply addresses."""
    subprocess.run([str(BIN / "donebox"), "migrate"], env=env, check=True, capture_output=True)
    code = f"""
import json
from datetime import UTC, datetime
from app.db import session
from app.models import Member, Team
from app.checkins.reply_tokens import reply_address
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Sao_Paulo")
people = []
day = datetime.now(UTC).date()  # today's: a reply address works for REPLY_WINDOW_DAYS after its day
with session() as s:
    for t in range({teams}):
        team = Team(name=f"Bench {{t}}", timezone=ZONES[t % len(ZONES)])
        s.add(team)
        s.flush()
        for i in range({size}):
            name = ("Ada", "Bob", "Carol", "Dan", "Eve", "Femi", "Gus", "Hana")[i % 8] + f" {{t}}-{{i}}"
            m = Member(team_id=team.id, email=f"m{{t}}.{{i}}@team{{t}}.example.com", name=name)
            s.add(m)
            s.flush()
            people.append((reply_address({SECRET!r}, "reply.bench", m.id, day), name, m.email))
print(json.dumps(people))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True, cwd=ROOT
    )
    return [Person(*p) for p in json.loads(out.stdout.strip().splitlines()[-1])]


def write_people(people: list[Person], folder: str) -> str:
    """The population in a file for the load generator's process; its path."""
    path = Path(folder) / "people.json"
    path.write_text(json.dumps(people))
    return str(path)


def read_people(path: str) -> list[Person]:
    return [Person(*p) for p in json.loads(Path(path).read_text())]


def queued_jobs() -> int:
    """Broker messages waiting in the inbound queue (what intake sent for the worker)."""
    import redis

    return redis.Redis.from_url(REDIS, socket_connect_timeout=2).llen("donebox:inbound")


class States:
    """How many inbound messages are in each state, read straight from the database over one
    connection kept open (a poll every quarter second on new connections cost a backend each).
    On PostgreSQL ``cpu_s`` is that connection's backend's CPU so far: the harness's cost, which
    the database's figure leaves out."""

    SQL = "select state, count(*) from inboundmessage group by state"

    def __init__(self, db_url: str):
        if db_url.startswith("sqlite"):
            import sqlite3

            self.conn, self.backend = sqlite3.connect(db_url.split("///", 1)[1], timeout=30), None
        else:
            import psycopg

            self.conn = psycopg.connect(db_url, autocommit=True)
            self.backend = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    def __call__(self) -> dict[str, int]:
        return dict(self.conn.execute(self.SQL).fetchall())

    def cpu_s(self) -> float:
        return process_cpu_s(self.backend) if self.backend else 0.0

    def close(self) -> None:
        self.conn.close()


def inbound_states(db_url: str) -> dict[str, int]:
    """How many inbound messages are in each state, once."""
    states = States(db_url)
    try:
        return states()
    finally:
        states.close()


def finished(states: dict[str, int]) -> int:
    return sum(n for st, n in states.items() if st not in ("received", "processing"))


def db_cpu_s(db_url: str, states: States) -> float:
    """CPU seconds of the bench database's PostgreSQL work so far (0 on SQLite): its backends alive
    now and every backend the cluster's postmaster reaped (``postgres_cpu_s``: a worker's pool
    closes the connections over its size when it gives them back), less what ``states``'s polls
    cost."""
    if db_url.startswith("sqlite"):
        return 0.0
    return postgres_cpu_s(db_url.rsplit("/", 1)[1]) - states.cpu_s()


WORKER_THREADS = 8  # `donebox worker`'s default
FEW_THREADS = 2  # a second row of the full run: fewer threads contend less for the GIL


def measure_processing(
    env: dict, db_url: str, seconds: float, log: Path, threads: int = WORKER_THREADS
) -> dict:
    """Messages processed per second by one ``donebox worker`` process on the queue intake left in
    Redis, over ``seconds`` once it has started (or until the queue is done); its CPU and the
    database's per message, from /proc."""
    states = States(db_url)
    total = sum(states().values())
    waiting = queued_jobs()
    worker = start_worker(env, log, threads)
    try:
        deadline = time.monotonic() + 60
        while finished(states()) == 0:  # booted and past its first batch
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("donebox worker processed nothing: " + worker.failed())
            time.sleep(0.1)
        t0, n0, cpu0, db0 = time.monotonic(), finished(states()), worker.cpu_s(), db_cpu_s(db_url, states)
        n1 = n0
        while time.monotonic() - t0 < seconds and n1 < total:
            time.sleep(0.25)
            n1 = finished(states())
        t1, cpu1, db1 = time.monotonic(), worker.cpu_s(), db_cpu_s(db_url, states)
        done = max(n1 - n0, 1)
        result = {
            "per_s": done / (t1 - t0),
            "done": done,
            "cpu_ms": 1000 * (cpu1 - cpu0) / done,
            "db_cpu_ms": 1000 * (db1 - db0) / done,
            "peak_rss_mb": worker.peak_rss_mb(),
            "queued_jobs": waiting,
            "ids_per_job": total / max(waiting, 1),
        }
    finally:
        worker.stop()
        states.close()
    result["states"] = inbound_states(db_url)
    return result


CORPUS = Path(os.environ.get("BENCH_MIME_CORPUS", "/work/shared/corpus/mime"))


def measure_parse_mix(seconds: float) -> dict:
    """Messages per CPU second (the best pass, so other load on the machine counts little) of
    ``parse_mime`` alone, one thread, over a realistic mix: every message of the
    shared MIME corpus (real, often malformed mail from other libraries' test suites), CPython's
    email test data and tests/fixtures/raw, cycled in a fixed order. No caches to hit: each pass
    parses every message again."""
    code = f"""
import json, os, time
from pathlib import Path
from typing import NamedTuple
from parsers.message import parse_mime
corpus = Path({str(CORPUS)!r})
files = []
if (corpus / 'manifest.jsonl').is_file():  # the corpus's own list of its messages (mboxes left out)
    rows = [json.loads(line) for line in (corpus / 'manifest.jsonl').read_text().splitlines() if line]
    files += [corpus / r['file'] for r in rows if r['kind'] != 'mbox']
try:
    import test
    files += sorted((Path(os.path.dirname(test.__file__)) / 'test_email' / 'data').glob('msg_*.txt'))
except ImportError:
    pass
files += sorted(Path('tests/fixtures/raw').glob('*.eml'))
mails = [f.read_bytes() for f in files]
t0 = time.monotonic(); best = None; size = sum(map(len, mails))
while best is None or time.monotonic() - t0 < {seconds}:
    cpu = time.process_time()
    for raw in mails:
        parse_mime(raw)
    cpu = time.process_time() - cpu
    best = cpu if best is None else min(best, cpu)
print(json.dumps({{"per_s": len(mails) / best, "messages": len(mails), "bytes": size}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the run ------------------------------------------------------------------------------------


@contextmanager
def bench_site(kind: str, prefix: str) -> Iterator[tuple[str, dict, str, str]]:
    """A fresh ``kind`` database with the bench's teams, empty queues and the processes'
    environment, in a temporary folder: (database url, environment, the file of the members who
    send, folder); the database is dropped and the queues emptied afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        url, drop = setup_database(kind, tmp)
        try:
            clear_queues()
            env = bench_env(url, tmp)
            yield url, env, write_people(prepare(env, TEAMS, TEAM_SIZE), tmp), tmp
        finally:
            drop()
            clear_queues()


def intake(
    web: Server, port: int, path: str, clients: int, seconds: float, people: str, warmup: float
) -> dict:
    """One load run against ``web``, with the web processes' CPU milliseconds per answered request."""
    cpu0 = web.cpu_s()
    r = run_load(port, path, clients, seconds, people, warmup)
    r["web_cpu_ms"] = 1000 * (web.cpu_s() - cpu0) / max(r["requests"] + r.get("warmup_requests", 0), 1)
    return r


def bench_db(kind: str, seconds: float, warmup: float, quick: bool) -> dict:
    results = {}
    with bench_site(kind, "donebox-bench-") as (url, env, people, tmp):
        port = free_port()
        web = start_web(env, port, Path(tmp) / "web.log")
        try:
            for clients in (16, 64):
                results[f"accept_c{clients}"] = intake(
                    web, port, "/inbound/sendgrid", clients, seconds, people, warmup
                )
            results["parse_only_c64"] = intake(
                web, port, "/dev/inbound/sendgrid/parse-only", 64, seconds, people, warmup
            )
            results["web_peak_rss_mb"] = web.peak_rss_mb()
        finally:
            web.stop()
        results["process"] = measure_processing(env, url, seconds, Path(tmp) / "worker.log")
        if not quick:  # on what the first worker left in the queue
            results["process_few"] = measure_processing(
                env, url, seconds, Path(tmp) / "worker-few.log", threads=FEW_THREADS
            )
    return results


SOAK_SAMPLE_S = 5.0


def soak(kind: str, seconds: float) -> dict:
    """Hold 64 clients on one web (2 uvicorn workers) with a worker processing what it accepts, for
    ``seconds``; the largest web and worker process's resident set every SOAK_SAMPLE_S."""
    out: dict = {}
    with bench_site(kind, "donebox-soak-") as (url, env, people, tmp):
        port = free_port()
        web = start_web(env, port, Path(tmp) / "web.log")
        worker = start_worker(env, Path(tmp) / "worker.log", WORKER_THREADS)
        samples: dict[str, list[tuple[float, float]]] = {"web": [], "worker": []}
        try:
            load = subprocess.Popen(
                load_cmd(port, "/inbound/sendgrid", 64, seconds, people, 0.0),
                stdout=subprocess.PIPE,
                text=True,
            )
            t0 = time.monotonic()
            cpu0 = {"web": web.cpu_s(), "worker": worker.cpu_s()}
            while load.poll() is None:
                t = time.monotonic() - t0
                samples["web"].append((t, web.rss_mb()))
                samples["worker"].append((t, worker.rss_mb()))
                time.sleep(SOAK_SAMPLE_S)
            result = json.loads(load.stdout.read().strip().splitlines()[-1])
            elapsed = time.monotonic() - t0
            for name, server in (("web", web), ("worker", worker)):
                rows = samples[name]
                out[f"{name}_rss_start_mb"] = rows[0][1] if rows else 0.0
                out[f"{name}_rss_end_mb"] = rows[-1][1] if rows else 0.0
                out[f"{name}_rss_peak_mb"] = server.peak_rss_mb()
                out[f"{name}_rss_slope_mb_per_min"] = slope_mb_per_min(
                    [(t, v) for t, v in rows if t >= seconds / 2]
                )
                out[f"{name}_cpu_s"] = server.cpu_s() - cpu0[name]
            states = inbound_states(url)
            out.update(
                accepted_per_s=result["per_s"],
                p99_ms=result["p99_ms"],
                errors=result["errors"],
                processed_per_s=finished(states) / elapsed,
                backlog=states.get("received", 0) + states.get("processing", 0),
                samples=len(samples["web"]),
            )
        finally:
            worker.stop()
            web.stop()
    return out


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def versions() -> str:
    from importlib.metadata import version

    parts = [f"Python {platform.python_version()}"]
    for pkg in ("starlette", "uvicorn", "sqlalchemy", "psycopg", "python-multipart", "flanker", "dramatiq"):
        parts.append(f"{pkg} {version(pkg)}")
    return ", ".join(parts)


HEADING = "## Inbound intake"
SOAK_HEADING = "## Inbound memory under load"


def _kb(long: bool) -> str:
    """The size of a bench POST's body, in KB."""
    return f"{len(sendgrid_body(0, 'reply+1-20261206-x@reply.bench', long)) / 1000:.1f}"


def write_benchmarks(all_results: dict, summary: dict) -> None:
    lines = [
        HEADING,
        "",
        f"`bench/inbound.py` on {date.today().isoformat()}, {os.cpu_count()} cores, "
        f"loadavg {summary['loadavg_start']} before and {summary['loadavg']} at the end (the bench's "
        f"own processes included), {versions()}. CPU yardstick (bench/common.cpu_yardstick_s, lower "
        f"is faster) {summary['yardstick'][0]} s at the start and {summary['yardstick'][1]} s at the "
        "end: the machine's speed, which all CPU figures move with.",
        "`donebox web --workers 2` (uvloop + httptools); SendGrid parsed-mode multipart POSTs, each a "
        f"new mail from one of {TEAMS * TEAM_SIZE} members ({TEAMS} teams of {TEAM_SIZE}, each member "
        "to their own reply address, consecutive POSTs from different teams), Basic auth: nine in ten a "
        "reply of four lines above the quoted reminder, in text and "
        f"HTML ({_kb(False)} KB), one in ten a 4,000-character pasted line ({_kb(True)} KB: one entry, "
        "cut at MAX_ENTRY_CHARS); keep-alive clients in a separate process on the same machine. "
        "Each web process sends the ids it commits to Redis in `process_inbound_batch` messages: under "
        "load at most one per 25 ms (`jobs.enqueue.inbound_batches`), carrying every group committed "
        "meanwhile. "
        "*parse-only* is the same server on an endpoint that authenticates and parses the same form "
        "but stores nothing. Web CPU is all the web's processes' (from /proc) per answered request.",
        "",
        "| database | clients | accepted/s | p50 ms | p99 ms | web CPU ms per request "
        "| parse-only/s (64 clients) | accept / parse-only | web peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in all_results.items():
        for clients in (16, 64):
            a = r[f"accept_c{clients}"]
            po = r["parse_only_c64"]["per_s"]
            lines.append(
                f"| {kind} | {clients} | {a['per_s']:.0f} | {a['p50_ms']:.1f} | {a['p99_ms']:.1f} "
                f"| {a['web_cpu_ms']:.2f} | {po:.0f} | {a['per_s'] / po:.2f} | {r['web_peak_rss_mb']:.0f} |"
            )
    lines += [
        "",
        "Processing: one `donebox worker --processes 1` (its default 8 threads, then 2; two inbound batches "
        "at once either way, `INBOUND_BATCHES_AT_ONCE`) taking the queue "
        "that intake left in Redis (the web stopped), messages finished per second over the "
        "measured window; CPU per message from /proc.",
        "",
        "| database | worker threads | processed msgs/s per worker process | worker CPU ms per msg "
        "| PostgreSQL CPU ms per msg | worker peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for kind, r in all_results.items():
        for key, threads in (("process", WORKER_THREADS), ("process_few", FEW_THREADS)):
            p = r.get(key)
            if p is None:
                continue
            db_ms = f"{p['db_cpu_ms']:.2f}" if kind == "postgresql" else "-"
            lines.append(
                f"| {kind} | {threads} | {p['per_s']:.0f} | {p['cpu_ms']:.2f} | {db_ms} "
                f"| {p['peak_rss_mb']:.0f} |"
            )
    lines += [""] + [
        f"Intake left {r['process']['queued_jobs']} `process_inbound_batch` messages in the queue on "
        f"{kind} ({r['process']['ids_per_job']:.1f} inbound messages a job)."
        for kind, r in all_results.items()
    ]
    if "parse_mix_per_s" in summary:
        lines += [
            "",
            f"`parse_mime` alone over a realistic mix ({summary['parse_mix_messages']} messages: the shared "
            "MIME corpus, CPython's email test data, tests/fixtures/raw), one thread, best pass: "
            f"{summary['parse_mix_per_s']:.0f} messages per CPU second.",
        ]
    put_section(HEADING, "\n".join(lines) + "\n\n", keep_subsections=True)  # hand-written "### " runs stay


def write_soak(kind: str, seconds: float, r: dict, load: tuple[str, str]) -> None:
    lines = [
        SOAK_HEADING,
        "",
        f"`bench/inbound.py --soak {seconds:.0f} --db {kind}` on {date.today().isoformat()}, loadavg "
        f"{load[0]} before and {load[1]} at the end (this run's processes and others' work), {versions()}. "
        "64 keep-alive clients on `donebox web --workers 2` while one `donebox worker --processes 1` "
        f"processes what it accepts; the largest web and worker process's resident set every "
        f"{SOAK_SAMPLE_S:.0f} s, its growth fitted over the second half.",
        "",
        "| process | RSS at start MB | RSS at end MB | peak RSS MB | growth over the second half MB/min |",
        "|---|---|---|---|---|",
    ]
    for name in ("web", "worker"):
        lines.append(
            f"| {name} | {r[f'{name}_rss_start_mb']:.0f} | {r[f'{name}_rss_end_mb']:.0f} "
            f"| {r[f'{name}_rss_peak_mb']:.0f} | {r[f'{name}_rss_slope_mb_per_min']:.2f} |"
        )
    lines += [
        "",
        f"Meanwhile: {r['accepted_per_s']:.0f} accepted/s (p99 {r['p99_ms']:.0f} ms), "
        f"{r['processed_per_s']:.0f} processed/s, {r['backlog']} still queued at the end. CPU over the "
        f"{seconds:.0f} s on the two cores: the web's processes {r['web_cpu_s']:.0f} s, the worker's "
        f"{r['worker_cpu_s']:.0f} s (one worker process next to the web keeps up only with what it "
        "has the CPU for: the rest waits in the queue).",
    ]
    put_section(SOAK_HEADING, "\n".join(lines) + "\n\n")


def print_soak(r: dict) -> None:
    for name in ("web", "worker"):
        for key in ("rss_start_mb", "rss_end_mb", "rss_peak_mb", "rss_slope_mb_per_min"):
            print(f"{name}_{key}={r[f'{name}_{key}']:.2f}")
        print(f"{name}_cpu_s={r[f'{name}_cpu_s']:.1f}")
    print(f"soak_accepted_per_s={r['accepted_per_s']:.0f}")
    print(f"soak_p99_ms={r['p99_ms']:.1f}")
    print(f"soak_errors={r['errors']}")
    print(f"soak_processed_per_s={r['processed_per_s']:.0f}")
    print(f"soak_backlog={r['backlog']}")
    print(f"soak_samples={r['samples']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs (under a minute), no BENCHMARKS.md")
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--soak", type=float, metavar="SECONDS", help="hold 64 clients this long; sample RSS")
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    for opt, typ in (("--port", int), ("--path", str), ("--clients", int), ("--seconds", float)):
        p.add_argument(opt, type=typ, help=argparse.SUPPRESS)
    p.add_argument("--people", help=argparse.SUPPRESS)  # the file of the members who send (write_people)
    p.add_argument("--warmup", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.loadgen:
        loadgen_main(args)
        return
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    start_load, start_yardstick = loadavg(), cpu_yardstick_s()
    if args.soak:
        kind = "postgresql" if args.db == "both" else args.db
        r = soak(kind, args.soak)
        print(f"soak_db={kind}")
        print_soak(r)
        print(f"loadavg_start={start_load}")
        print(f"loadavg={loadavg()}")
        if args.soak >= 600:
            write_soak(kind, args.soak, r, (start_load, loadavg()))
        return
    seconds, warmup = (3.0, 0.5) if args.quick else (15.0, 3.0)
    all_results = {}
    for kind in kinds:
        r = bench_db(kind, seconds, warmup, args.quick)
        all_results[kind] = r
        for clients in (16, 64):
            a = r[f"accept_c{clients}"]
            print(f"accept_{kind}_c{clients}_per_s={a['per_s']:.0f}")
            print(f"accept_{kind}_c{clients}_p50_ms={a['p50_ms']:.1f}")
            print(f"accept_{kind}_c{clients}_p99_ms={a['p99_ms']:.1f}")
            print(f"accept_{kind}_c{clients}_web_cpu_ms={a['web_cpu_ms']:.2f}")
            if a["errors"]:
                print(f"accept_{kind}_c{clients}_errors={a['errors']} statuses={a['statuses']}")
        print(f"parse_only_{kind}_per_s={r['parse_only_c64']['per_s']:.0f}")
        print(f"web_peak_rss_mb_{kind}={r['web_peak_rss_mb']:.1f}")
        pr = r["process"]
        print(f"process_{kind}_per_s={pr['per_s']:.0f}")
        print(f"process_{kind}_cpu_ms_per_msg={pr['cpu_ms']:.2f}")
        print(f"process_{kind}_queued_jobs={pr['queued_jobs']}")
        print(f"process_{kind}_ids_per_job={pr['ids_per_job']:.1f}")
        if kind == "postgresql":
            print(f"process_{kind}_db_cpu_ms_per_msg={pr['db_cpu_ms']:.2f}")
        print(f"worker_peak_rss_mb_{kind}={pr['peak_rss_mb']:.1f}")
        if "process_few" in r:
            few = r["process_few"]
            print(f"process_{kind}_{FEW_THREADS}_threads_per_s={few['per_s']:.0f}")
            print(f"process_{kind}_{FEW_THREADS}_threads_cpu_ms_per_msg={few['cpu_ms']:.2f}")
        print(f"process_{kind}_states={json.dumps(pr['states'])}", flush=True)
    c64 = [r["accept_c64"] for r in all_results.values()]
    summary = {
        "accept_per_s": min(a["per_s"] for a in c64),
        "accept_p99_ms": max(a["p99_ms"] for a in c64),
        "parse_only_per_s": min(r["parse_only_c64"]["per_s"] for r in all_results.values()),
        "process_per_s": min(r["process"]["per_s"] for r in all_results.values()),
        "loadavg_start": start_load,
        "yardstick": (start_yardstick, cpu_yardstick_s()),
    }
    print(f"accept_per_s={summary['accept_per_s']:.0f}")
    print(f"accept_p99_ms={summary['accept_p99_ms']:.1f}")
    print(f"parse_only_per_s={summary['parse_only_per_s']:.0f}")
    print(f"accept_to_parse_only_ratio={summary['accept_per_s'] / summary['parse_only_per_s']:.2f}")
    print(f"process_per_s={summary['process_per_s']:.0f}")
    mix = measure_parse_mix(seconds)
    summary["parse_mix_per_s"], summary["parse_mix_messages"] = mix["per_s"], mix["messages"]
    print(f"parse_mix_per_s={mix['per_s']:.0f}")
    print(f"parse_mix_messages={mix['messages']}")
    summary["loadavg"] = loadavg()
    print(f"loadavg_start={start_load}")
    print(f"loadavg={summary['loadavg']}")
    print(f"cpu_yardstick_start_s={summary['yardstick'][0]}")
    print(f"cpu_yardstick_end_s={summary['yardstick'][1]}")
    if not args.quick:
        write_benchmarks(all_results, summary)


if __name__ == "__main__":
    main()
