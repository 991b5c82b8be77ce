"""Fault injection: what a crash, a restart or a full disk costs in mail lost, mail duplicated and time.

Runs the real processes (``donebox web``, ``donebox worker``, ``donebox scheduler``) on a private
PostgreSQL cluster and a private Redis (both started here, so they can be killed and restarted),
delivering into a Message-ID counting SMTP sink (bench/sink.py) behind a front the bench switches
between accepting, hanging and refusing. The faults, one after another:

1. ``web_kill``: kill -9 of ``donebox web`` during a stream of SendGrid-style inbound POSTs; the
   process is started again at once (as systemd would) and the clients retry every POST that failed
   or timed out, as the providers do;
2. ``worker_kill``: kill -9 of one of two ``donebox worker`` instances, several times during a send;
3. ``redis_restart``: Redis killed and started again empty during a send (the sweeper re-enqueues);
4. ``pg_restart``: PostgreSQL restarted (fast shutdown: every connection cut) during a send;
5. ``sender``: the SMTP server hangs without answering, then answers 421, then accepts again;
6. ``disk_full``: SQLite on a small tmpfs filled up while inbound POSTs arrive (they must get a 5xx
   once the database cannot write, never a 2xx for mail not stored); the space returns and the
   retried POSTs are stored.

Each prints ``<fault>_lost`` (must be 0), ``<fault>_duplicated`` with ``<fault>_dup_bound`` (what the
design allows) and ``<fault>_recover_s``; the run exits non-zero when a fault loses mail or passes
its bound. ``--quick`` takes small numbers; a full run writes "## Faults" into BENCHMARKS.md.

    .venv/bin/python bench/faults.py --quick

Environment: BENCH_PORTS (default 22000-22999): the ports the private servers, the web and the sink
use. Needs root for the tmpfs (``mount``); exits 3 naming what is missing when a component is not
there.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from common import counting_sink, put_section  # noqa: E402 - bench/ is on sys.path when run as a script
from fault_env import (  # noqa: E402 - bench/ is on sys.path when run as a script
    Ports,
    PrivatePostgres,
    PrivateRedis,
    SMTPFront,
    Tmpfs,
    Unavailable,
    donebox,
    kill9,
    stop,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ("web_kill", "worker_kill", "redis_restart", "pg_restart", "sender", "disk_full")
THREADS = 4  # per worker process, as bench/outbound.py's kill test
RETRY_S = 0.2  # a provider's wait before it posts a failed request again (theirs: minutes)


# ---------------------------------------------------------------- inbound: a provider posting


class Provider:
    """Posts SendGrid parsed-mode bodies to ``/inbound/sendgrid`` from ``clients`` threads, each POST
    again after RETRY_S while it fails (an error, a timeout or a non-2xx answer), until ``deadline``."""

    def __init__(self, port: int, to: str, clients: int = 8, pad: int = 0):
        import inbound  # bench/inbound.py: the payload and the credentials

        self.inbound, self.port, self.to, self.clients, self.pad = inbound, port, to, clients, pad
        self.ok_at: list[float] = []  # when each 2xx came
        self.statuses: list[int | str] = []  # every answer but 2xx, or the error
        self.stored: set[int] = set()
        self._lock = threading.Lock()

    def body(self, n: int) -> bytes:
        body = self.inbound.sendgrid_body(n, self.to)
        if self.pad:  # a large text part, so the mail outgrows what the database has preallocated
            filler = hashlib.sha256(str(n).encode()).hexdigest().encode() * (self.pad // 64)
            body = body.replace(b"Shipped the export", b"Shipped " + filler, 1)
        return body

    def post_once(self, n: int, timeout_s: float = 5) -> int | str:
        from base64 import b64encode

        headers = {
            "Content-Type": f"multipart/form-data; boundary={self.inbound.BOUNDARY}",
            "Authorization": "Basic " + b64encode(self.inbound.AUTH.encode()).decode(),
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            conn.request("POST", "/inbound/sendgrid", self.body(n), headers)
            r = conn.getresponse()
            r.read()
            status: int | str = r.status
        except (OSError, http.client.HTTPException) as e:  # refused, reset, cut mid-answer, timed out
            status = type(e).__name__
        finally:
            conn.close()
        with self._lock:
            if isinstance(status, int) and 200 <= status < 300:
                self.ok_at.append(time.monotonic())
                self.stored.add(n)
            else:
                self.statuses.append(status)
        return status

    def post_until_stored(self, n: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            status = self.post_once(n)
            if isinstance(status, int) and 200 <= status < 300:
                return
            time.sleep(RETRY_S)

    def post_all(self, ns: list[int], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with ThreadPoolExecutor(self.clients) as pool:
            list(pool.map(lambda n: self.post_until_stored(n, deadline), ns))


def stored_copies(db_url: str, prefix: str = "bench-") -> dict[int, int]:
    """{n: rows stored} of the mail bench-n in ``db_url``'s inbound table."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(
                text("SELECT message_key, count(*) FROM inboundmessage GROUP BY message_key")
            ).all()
    finally:
        engine.dispose()
    out = {}
    for mid, count in rows:
        m = re.search(rf"{prefix}(\d+)@", mid or "")
        if m:
            out[int(m.group(1))] = count
    return out


def inbound_figures(name: str, posted: list[int], copies: dict[int, int], provider: Provider) -> dict:
    return {
        f"{name}_posts": len(posted),
        f"{name}_lost": sum(1 for n in posted if not copies.get(n)),
        f"{name}_2xx_not_stored": sum(1 for n in provider.stored if not copies.get(n)),
        f"{name}_duplicated": sum(copies.get(n, 1) - 1 for n in posted if copies.get(n)),
        f"{name}_dup_bound": 0,  # the dedupe key: a retried POST is answered as a duplicate
    }


def web_kill(ports: Ports, env: dict, to: str, db_url: str, n: int, var: Path) -> dict:
    """kill -9 of ``donebox web --workers 2`` (its whole process group) halfway through ``n`` POSTs,
    started again at once; the clients retry whatever failed."""
    port = ports.take()
    web = donebox(["web", "--workers", "2", "--port", str(port)], var / "web.log", env)
    wait_port(port, 30)
    provider = Provider(port, to)
    runner = threading.Thread(target=provider.post_all, args=(list(range(n)), 120))
    runner.start()
    while len(provider.stored) < n // 2:
        time.sleep(0.01)
    kill9(web)
    t_kill = time.monotonic()
    web = donebox(["web", "--workers", "2", "--port", str(port)], var / "web.log", env)
    t_restart = time.monotonic()
    runner.join()
    stop(web)
    after = [t for t in provider.ok_at if t > t_restart]
    figures = inbound_figures("web_kill", list(range(n)), stored_copies(db_url), provider)
    figures["web_kill_failed_posts"] = len(provider.statuses)
    figures["web_kill_recover_s"] = round(min(after) - t_restart, 2) if after else -1
    figures["web_kill_down_s"] = round(min(after) - t_kill, 2) if after else -1
    return figures


def disk_full(ports: Ports, var: Path, n: int) -> dict:
    """``donebox web`` on SQLite in a small tmpfs (VAR_DIR there too): ``n`` POSTs while it is full
    must each get a non-2xx; the space returns, the provider retries, every mail is stored once."""
    import inbound

    fs = Tmpfs(var / "small", 16 + n)  # room for every mail once the filler is gone (WAL + database)
    try:
        url = f"sqlite:///{fs.path}/donebox.db"
        env = inbound.bench_env(url, str(fs.path))
        to = inbound.prepare(env)[0].address
        port = ports.take()
        web = donebox(["web", "--port", str(port)], var / "web-disk.log", env)
        wait_port(port, 30)
        provider = Provider(port, to, clients=4, pad=256 * 1024)
        provider.post_all(list(range(5)), 30)  # the database works (and its files grow a little)
        fs.fill()
        full = list(range(5, 5 + n))
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(provider.post_once, full))
        accepted_full = {k for k, a in zip(full, answers, strict=True) if isinstance(a, int) and a < 300}
        alive = web.poll() is None
        fs.free()
        t_free = time.monotonic()
        provider.post_all(full, 60)
        stop(web)
        after = [t for t in provider.ok_at if t > t_free]
        copies = stored_copies(url)
        figures = inbound_figures("disk_full", list(range(5 + n)), copies, provider)
        figures["disk_full_refused"] = sum(1 for a in answers if not (isinstance(a, int) and a < 300))
        figures["disk_full_refused_statuses"] = "/".join(
            sorted({str(a) for a in answers if a not in (200, 202)})
        )
        figures["disk_full_2xx_while_full"] = len(accepted_full)
        figures["disk_full_web_survived"] = alive
        figures["disk_full_recover_s"] = round(min(after) - t_free, 2) if after else -1
        return figures
    finally:
        fs.unmount()


# ---------------------------------------------------------------- outbound: a send under a fault


def states(tag: str) -> dict[str, int]:
    from outbound_env import count_states

    return count_states(f"{tag}:%")


def ids_in(tag: str, state: str) -> set[int]:
    from sqlalchemy import select

    from app.db import session
    from app.models import OutboundMessage as M

    with session() as s:
        return set(
            s.execute(select(M.id).where(M.idempotency_key.like(f"{tag}:%"), M.state == state)).scalars()
        )


def released(ids: set[int]) -> bool:
    """None of ``ids`` is ``sending`` any more."""
    from sqlalchemy import func, select

    from app.db import session
    from app.models import OutboundMessage as M

    with session() as s:
        left = s.execute(select(func.count()).where(M.id.in_(ids), M.state == "sending")).scalar()
    return left == 0


def sent(tag: str) -> int:
    return states(tag).get("sent", 0)


def send(team: int, tag: str, n: int) -> list[int]:
    from outbound_env import enqueue, make_digests

    ids = make_digests(team, n, tag)
    enqueue(ids)
    return ids


def wait_until(check, timeout_s: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{what} after {timeout_s}s")
        time.sleep(0.1)
    return time.monotonic() - t0


def worker_kill(workers, team: int, n: int, kills: int) -> dict:
    """One of two worker instances killed ``kills`` times during ``n`` messages, each time started
    again; recovery: from a kill until none of the messages then ``sending`` still is (each sent, or
    swept back to the queue once its lease ran out)."""
    from outbound_env import send_slots

    victim = workers.start(1, THREADS)
    time.sleep(2)
    send(team, "worker_kill", n)
    held: list[tuple[float, set[int]]] = []
    recover = []
    done_kills = 0
    t_end = time.monotonic() + 600
    while time.monotonic() < t_end:
        done = sent("worker_kill")
        if done_kills < kills and done >= n * (done_kills + 1) / (kills + 2):
            workers.kill9(victim)
            held.append((time.monotonic(), ids_in("worker_kill", "sending")))
            done_kills += 1
            victim = workers.start(1, THREADS)
        for t, ids in list(held):
            if released(ids):
                recover.append(time.monotonic() - t)
                held.remove((t, ids))
        if done >= n and not held:
            break
        time.sleep(0.1)
    return {
        "worker_kill_messages": n,
        "worker_kill_kills": done_kills,
        # SEND_SLOTS accepted-not-recorded messages per process at most
        "worker_kill_dup_bound": done_kills * send_slots(),
        "worker_kill_recover_s": round(max(recover), 2) if recover else -1,
    }


def send_through(tag: str, team: int, n: int, fault) -> dict:
    """``n`` messages; once a third is sent, ``fault()`` (it returns with the service back).
    ``recover_s``: what the fault cost the send, the time from the fault until every row was sent
    less what the rows left would have taken at the rate between a sixth and a third sent (within
    the noise of a shared machine, it may come out below 0); ``drain_s``: from the service back
    until every row was sent."""
    send(team, tag, n)
    wait_until(lambda: sent(tag) >= n // 6, 300, f"{tag}: a sixth sent")
    t0, start = time.monotonic(), sent(tag)
    # outcomes are written SEND_SLOTS at a time, so the count can jump past a third at once: the
    # rate is taken over at least one more row sent (with none, it was 0 and the division failed)
    wait_until(lambda: sent(tag) >= max(n // 3, start + 1), 300, f"{tag}: a third sent")
    t_fault, before = time.monotonic(), sent(tag)
    rate = (before - start) / (t_fault - t0)  # the steady rate before the fault
    fault()
    t_up = time.monotonic()
    wait_until(lambda: sent(tag) >= n, 600, f"{tag}: {states(tag)}")
    t_all = time.monotonic()
    return {
        f"{tag}_messages": n,
        f"{tag}_recover_s": round(t_all - t_fault - (n - before) / rate, 2),
        f"{tag}_drain_s": round(t_all - t_up, 2),
    }


def redis_restart(redis, team: int, n: int) -> dict:
    """Redis killed (no persistence: every broker message is gone) and started again during a send."""

    def fault():
        redis.kill9()
        time.sleep(1)
        redis.start()

    figures = send_through("redis_restart", team, n, fault)
    figures["redis_restart_dup_bound"] = 0  # claims are compare-and-set: a re-enqueued id is sent once
    return figures


def pg_restart(pg, team: int, n: int, processes: int) -> dict:
    """PostgreSQL restarted (fast: every session cut) during a send."""
    from outbound_env import send_slots

    figures = send_through("pg_restart", team, n, pg.restart)
    # messages handed to the sink whose outcomes could not be written while the claim held: what a
    # worker thread held at most (SEND_SLOTS of the process), each thread in turn (its batch ends
    # there; the slots it holds keep the others from sending more meanwhile)
    figures["pg_restart_dup_bound"] = processes * THREADS * send_slots()
    return figures


def sender(front: SMTPFront, team: int, n: int, hang_s: float, refuse_s: float) -> dict:
    """The sender hangs (``hang_s``), then answers 421 (``refuse_s``), then accepts."""
    from sqlalchemy import func, select

    from app.db import session
    from app.models import MessageEvent as E
    from app.models import OutboundMessage as M

    front.set("hang")
    ids = send(team, "sender", n)
    time.sleep(hang_s)
    front.set("refuse")
    time.sleep(refuse_s)
    sent_in_outage = sent("sender")
    front.set("accept")
    t_up = time.monotonic()
    wait_until(lambda: sent("sender") >= n, 600, f"sender: {states('sender')}")
    with session() as s:
        deferred = s.execute(select(func.count()).where(E.message_id.in_(ids), E.kind == "deferred")).scalar()
        breaker = s.execute(
            select(func.count()).where(
                E.message_id.in_(ids), E.kind == "deferred", E.detail.like("no healthy sender%")
            )
        ).scalar()
        attempts = s.execute(select(func.max(M.attempts)).where(M.id.in_(ids))).scalar()
    return {
        "sender_messages": n,
        "sender_sent_in_outage": sent_in_outage,
        "sender_deferrals": deferred,
        "sender_deferrals_circuit_open": breaker,
        "sender_max_attempts": attempts,
        "sender_dup_bound": 0,  # nothing reached the sink while it hung or refused
        "sender_recover_s": round(time.monotonic() - t_up, 2),
    }


def outbound_losses(counts: dict[str, int]) -> dict:
    """``<fault>_lost`` and ``<fault>_duplicated`` of each outbound fault from the sink's counts: a
    row is lost unless the sink got its Message-ID and the row says ``sent``."""
    from sqlalchemy import select

    from app.db import session
    from app.models import MessageEvent as E
    from app.models import OutboundMessage as M

    out = {}
    with session() as s:
        for tag in ("worker_kill", "redis_restart", "pg_restart", "sender"):
            rows = s.execute(select(M.message_id, M.state).where(M.idempotency_key.like(f"{tag}:%"))).all()
            if not rows:
                continue
            out[f"{tag}_lost"] = sum(1 for mid, state in rows if state != "sent" or not counts.get(mid))
            out[f"{tag}_duplicated"] = sum(counts.get(mid, 1) - 1 for mid, _ in rows if counts.get(mid))
            for mid in [mid for mid, _ in rows if counts.get(mid, 0) > 1][:3]:  # what happened to them
                trail = s.execute(
                    select(E.kind, E.from_state, E.detail, E.created_at)
                    .join(M, M.id == E.message_id)
                    .where(M.message_id == mid)
                    .order_by(E.id)
                ).all()
                print(f"# {tag}: sent {counts[mid]} times: {trail}", file=sys.stderr)
    return out


# ---------------------------------------------------------------- the run


def run(quick: bool, var: Path) -> dict:
    ports = Ports(os.environ.get("BENCH_PORTS", "22000-22999"))
    pg = PrivatePostgres(var / "pg", ports.take())
    redis = PrivateRedis(ports.take(), var / "redis.log")
    if not shutil.which("mount"):
        raise Unavailable("mount is not installed")
    n_web, n_kill, kills, n_send, n_sender, n_full = (
        (200, 600, 3, 400, 40, 10) if quick else (1000, 20000, 10, 5000, 500, 100)
    )
    figures: dict = {}
    pg.start()
    redis.start()
    os.environ.update(BENCH_POSTGRES_URL=pg.url, BENCH_REDIS_URL=redis.url)
    import outbound_env  # reads the two above at import
    from outbound_env import Workers, drop_database, make_team, set_sender, setup_environment

    procs: list[subprocess.Popen] = []
    workers = Workers(var / "workers.log")
    sink = front = None
    url = setup_environment(var)
    os.environ.update(
        TICK_S="1", BREAKER_FAILURES="3", BREAKER_COOLDOWN_S="2", METRICS_DIR=str(var / "metrics")
    )
    try:
        sys.path.insert(0, str(ROOT))
        from app.relay.dkim import generate

        generate(Path(os.environ["DKIM_DIR"]), "bench.example", "rsa", "rsa")
        team = make_team("faults", 12)
        import inbound

        env = inbound.bench_env(url, str(var))
        env.update(REDIS_URL=redis.url)
        to = "ada@reply.bench"
        t0 = time.monotonic()
        figures.update(web_kill(ports, env, to, url, n_web, var))
        print(f"# web_kill done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)

        sink_port, front_port = ports.take(), ports.take()
        counts_file = var / "sink-counts.json"
        sink = counting_sink(sink_port, counts_file)
        front = SMTPFront(front_port, sink_port)
        set_sender(f"smtp://127.0.0.1:{front_port}?tls=none&pool=4&timeout=2")
        procs.append(donebox(["scheduler"], var / "scheduler.log"))
        workers.start(1, THREADS)

        t0 = time.monotonic()
        figures.update(worker_kill(workers, team, n_kill, kills))
        print(f"# worker_kill done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        figures.update(redis_restart(redis, team, n_send))
        print(f"# redis_restart done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        figures.update(pg_restart(pg, team, n_send, processes=2))
        print(f"# pg_restart done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        figures.update(sender(front, team, n_sender, *((4, 4) if quick else (20, 20))))
        print(f"# sender done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
        workers.stop()
        for p in procs:
            stop(p)
        procs = []
        sink.send_signal(signal.SIGTERM)
        sink.wait(30)
        sink = None
        figures.update(outbound_losses(json.loads(counts_file.read_text())))

        t0 = time.monotonic()
        figures.update(disk_full(ports, var, n_full))
        print(f"# disk_full done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
    finally:
        workers.stop()
        for p in procs:
            stop(p)
        if sink is not None:
            sink.kill()
        if front is not None:
            front.close()
        try:
            drop_database(url)
        except Exception as e:  # noqa: BLE001 - the cluster goes away with the run anyway
            print(f"# dropping the database: {e}", file=sys.stderr)
        redis.stop()
        pg.stop()
    del outbound_env
    return figures


def verdicts(figures: dict) -> list[str]:
    """What went wrong: a fault that lost mail or duplicated more than its bound."""
    bad = []
    for f in FAULTS:
        lost, dups, bound = (
            figures.get(f"{f}_lost"),
            figures.get(f"{f}_duplicated"),
            figures.get(f"{f}_dup_bound"),
        )
        if lost is None:
            bad.append(f"{f}: not measured")
        elif lost:
            bad.append(f"{f}: {lost} lost")
        elif dups > bound:
            bad.append(f"{f}: {dups} duplicated, more than {bound}")
    for f in ("web_kill", "disk_full"):
        if figures.get(f"{f}_2xx_not_stored"):
            bad.append(f"{f}: {figures[f + '_2xx_not_stored']} answered 2xx and not stored")
    if "disk_full_refused" in figures and not figures["disk_full_refused"]:
        bad.append("disk_full: no POST was refused, so the disk never filled")
    return bad


NOTES = """\
How it is measured, all in one run on the same machine, each fault after the other on the same
private PostgreSQL cluster and private Redis (both started by the bench):

- **web_kill**: `donebox web --workers 2` takes SendGrid parsed-mode POSTs from 8 client threads;
  halfway, its process group is killed with SIGKILL and started again at once. Each client posts
  a request again 0.2 s after it failed (an error, a timeout or a non-2xx; a provider waits
  minutes). `lost`: mail not stored once; `duplicated`: extra rows of one mail; `recover_s`: from
  the restart to the first 2xx, the new process's start-up included (`down_s`: from the kill).
- **worker_kill**: two `donebox worker` instances (one process of 4 threads each) and a
  `donebox scheduler` (TICK_S=1, LEASE_S=5) send digests to the counting sink; one instance is
  killed `kills` times and started again. `recover_s`: the longest time from a kill until none of
  the messages then `sending` still was (each sent, or swept back to the queue after its lease).
- **redis_restart**: Redis (no persistence) killed and started empty after a third of the send:
  every queued broker message is gone.
- **pg_restart**: `pg_ctl restart -m fast` after a third of the send: every session is cut.
  For both, `recover_s` is what the fault cost the send: the time from the fault until every row
  was sent, less what the rows left then would have taken at the rate before it (measured between
  a sixth and a third sent; on a shared machine the difference is noisy and may fall below 0);
  `drain_s`: from the service back until every row was sent.
- **sender**: the SMTP server takes connections and never answers for 20 s (quick: 4 s; the
  sender's timeout is 2 s; sessions already open hang too), then greets with 421 and cuts open
  sessions for 20 s (quick: 4 s), then accepts;
  BREAKER_FAILURES=3, BREAKER_COOLDOWN_S=2, TICK_S=1. `recover_s`: from the server accepting
  again until every message is sent. Each attempt the outage cost a message (`max_attempts`)
  doubled its backoff; the probe that gets through once the circuit's cooldown is over makes
  what the outage deferred due at once, and the next tick queues it.
- **disk_full**: `donebox web` on SQLite with VAR_DIR on a tmpfs (16 MB plus 1 MB a mail), filled
  up while POSTs of ~260 KB arrive; once the database cannot write, each must be refused
  (`refused_statuses`), never answered 2xx unstored. `2xx_while_full`: POSTs stored while the file
  system was full, in the room the write-ahead log already had (after a checkpoint, the next commit
  writes over the log from its start); each is counted stored or in `2xx_not_stored`. The space is
  freed and the provider retries. `recover_s`: from the space back to the first 2xx.

Lost mail is counted at the sink (a row is lost unless the sink got its Message-ID and the row is
`sent`) or in the database (inbound). The bound on duplicates is the design's: none where a
compare-and-set or a dedupe key decides, SEND_SLOTS per killed process where messages may be
handed to the sink before their outcomes are written, and for a PostgreSQL restart SEND_SLOTS per
worker thread (a thread writes its outcomes again until half its lease is gone, then ends its
batch).
The machine was shared (see loadavg).
"""


def write_section(figures: dict) -> None:
    """Replace (or add) the "## Faults" section of BENCHMARKS.md."""
    import importlib.metadata as md

    versions = ", ".join(f"{p} {md.version(p)}" for p in ("uvicorn", "dramatiq", "redis", "psycopg"))
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    head = "| fault | lost | duplicated (bound) | recover s | other |\n|---|---|---|---|---|\n"
    rows = []
    for f in FAULTS:
        other = ", ".join(
            f"{k[len(f) + 1 :]}={v}"
            for k, v in figures.items()
            if k.startswith(f + "_") and not k.endswith(("_lost", "_duplicated", "_dup_bound", "_recover_s"))
        )
        rows.append(
            f"| {f} | {figures[f + '_lost']} | {figures[f + '_duplicated']} ({figures[f + '_dup_bound']}) "
            f"| {figures.get(f + '_recover_s')} | {other} |"
        )
    section = (
        "## Faults\n\n"
        f"`python bench/faults.py` on {datetime.now(UTC):%Y-%m-%d} (2 cores, loadavg {figures['loadavg']}; "
        f"Python {sys.version.split()[0]}; {versions}; {pg}; Redis {redis.split('=')[-1]}).\n\n"
        f"{head}" + "\n".join(rows) + f"\n\n{NOTES}"
    )
    put_section("## Faults", section)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small numbers, about a minute")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-up on `timeout`
    var = Path(tempfile.mkdtemp(prefix="donebox-faults-"))
    os.chmod(var, 0o755)  # the private cluster's user walks through it
    try:
        figures = run(args.quick, var)
    except Unavailable as e:
        print(f"unavailable={e}")
        sys.exit(3)
    finally:
        shutil.rmtree(var, ignore_errors=True)
    figures["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for k, v in figures.items():
        print(f"{k}={v}")
    bad = verdicts(figures)
    if bad:
        sys.exit("FAILED: " + "; ".join(bad))
    if not args.quick:
        write_section(figures)


if __name__ == "__main__":
    main()
