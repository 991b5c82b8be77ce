"""Outbound relay benchmark: a working day's outbox -> tracked, DKIM-signed mail in a local SMTP sink.

Runs the real processes: PostgreSQL, Redis, ``donebox worker`` processes and postfix's
``smtp-sink`` (Debian packages ``postfix`` and ``opendkim``: installed with apt-get when missing).
The headline (``e2e_*``) is a realistic mix (bench/outbound_env.py ``make_mix``): many teams of
5-20 members with tracking on, digests of different days and sizes made per team and day,
reminders of some teams, and a share of API messages, each with its own content. The one-team case
(``one_team_*``: one team's digest of one day, so every render is shared) is the second row, and
``e2e_deploy_*`` is the mix through the worker as deploy/'s systemd unit starts it.

In the same run it measures the references: the sink's own limit (``smtp-source`` over reused
connections, as donebox's pools send), and a private Postfix (bench/outbound_postfix.py) relaying
the same messages (donebox's, without its signature) into the same sink, with the OpenDKIM
milter signing with the same RSA-2048 key and without it. Then a kill -9 run (one of two worker
processes killed during a send: lost and duplicated messages counted at a Message-ID counting
sink). The full run adds the naive pipeline, a fairness run, the attachment cases and a per-step
profile.

CPU milliseconds per message of each process kind come from /proc (utime + stime); on a shared
machine they are less sensitive to load than the rates. ``loadavg_*`` tells how loaded it was.

    python bench/outbound.py --quick      # under a minute
    python bench/outbound.py              # full run, writes "## Outbound relay" into BENCHMARKS.md
    python bench/outbound.py --steps 1000 # the per-step profile alone (worker and PostgreSQL CPU)
    python bench/outbound.py --soak 600   # a worker's RSS over a 10-minute realistic send

Environment: BENCH_POSTGRES_URL (default TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test),
BENCH_REDIS_URL (default redis://127.0.0.1:6379/12; the db is flushed), BENCH_PORTS (a range such as
24000-24999 the servers listen in; default: any free port), BENCH_LEASE_S (the workers' LEASE_S,
default 5).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import counting_sink, cpu_yardstick_s, put_section, slope_mb_per_min  # noqa: E402 - bench/ is on sys.path when run as a script
from outbound_env import (  # noqa: E402 - bench/ is on sys.path when run as a script
    ROOT,
    Workers,
    _procs,
    count_states,
    cpu_seconds,
    drop_database,
    enqueue,
    free_port,
    make_digests,
    make_mix,
    make_team,
    peak_rss_mb,
    pids_by_kind,
    poll_cpu_s,
    postgres_cpu_s,
    process_cpu_s,
    rss_mb,
    send_slots,
    set_sender,
    setup_environment,
    smtp_sink,
    sweep_as_scheduler,
    swept,
    wait_all,
    wait_port,
)
from outbound_postfix import Postfix, ensure_packages, unsigned  # noqa: E402

# Worker threads per `donebox worker` process. Two are enough (one hands a message to the sink
# while the other renders, builds and signs the next); more only contended for the GIL (measured
# before a process worked on at most pipeline.BATCHES_AT_ONCE batches at once: about 20% fewer
# messages/s with four). The kill test runs four, more than it needs, to show the
# send slots bound duplicates whatever the thread count. deploy/ starts eight, for remote senders
# whose replies a thread waits for: the e2e_deploy run measures the mix through that worker.
E2E_THREADS = 2
HEADLINE_WORKERS = ((1, E2E_THREADS),) * 2  # (processes, threads) of each `donebox worker` started
KILL_THREADS = 4
DEPLOY_UNIT = ROOT / "deploy" / "systemd" / "donebox-worker.service"


def deploy_worker() -> tuple[int, int]:
    """(processes, threads) of the worker as deploy/ starts it (its systemd unit's ExecStart): the
    ``e2e_deploy`` run sends the mix through that, as an operator following the README runs it."""
    found = re.search(
        r"^ExecStart=.*\bworker --processes (\d+) --threads (\d+)", DEPLOY_UNIT.read_text(), re.M
    )
    if found is None:
        raise SystemExit(f"{DEPLOY_UNIT}: no `worker --processes N --threads M` in its ExecStart")
    return int(found[1]), int(found[2])


# ---------------------------------------------------------------- the references


def naive(team_id: int, n: int, port: int) -> float:
    """The naive pipeline, one thread: context from the DB, Jinja2 + css-inline, EmailMessage,
    dkimpy.sign, one smtplib connection per message, one UPDATE; returns messages/s."""
    import smtplib
    from email.message import EmailMessage
    from email.utils import format_datetime

    import dkim
    from sqlalchemy import update

    from app.checkins.digests import daily_context as digest_context
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
    """smtp-source blasting ``n`` messages of ``size`` bytes into smtp-sink over 20 sessions, each
    reusing its connection (``-d``, as donebox's pools do): messages/s."""
    t0 = time.perf_counter()
    subprocess.run(
        [
            "smtp-source",
            "-d",
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


def fair_order(ids: list[int]) -> list[int]:
    """``ids`` taken in turns between their teams (as the fair queue hands them out)."""
    from itertools import zip_longest

    from sqlalchemy import select

    from app.db import session
    from app.models import OutboundMessage as M

    with session() as s:
        rows = s.execute(select(M.id, M.team_id).where(M.id.in_(ids)).order_by(M.id)).all()
    teams: dict[int | None, list[int]] = {}
    for mid, team in rows:
        teams.setdefault(team, []).append(mid)
    return [mid for turn in zip_longest(*teams.values()) for mid in turn if mid is not None]


def profile(n: int, tag: str = "profile") -> tuple[dict[str, float], int]:
    """(CPU milliseconds per message in each pipeline step, bytes of a message): one thread of this
    process on the mix, taken in turns between teams as the fair queue hands them out, in batches
    of CLAIM_BATCH as the workers claim them (``claim`` is the batch's claim and suppression check,
    divided among its messages)."""
    import app.checkins.outgoing  # noqa: F401 - registers the digest's render context, as jobs.actors does
    from app.relay import outbox, pipeline

    timings: dict[str, float] = {}
    sizes: list[int] = []
    handed: list[bytes] = []  # the first CODEC_SAMPLE messages as sent, for codec_figures

    def timed(name, fn):
        def wrapper(*a, **kw):
            if name == "transmit":
                sizes.append(len(a[0].raw))
                if len(handed) < CODEC_SAMPLE:
                    handed.append(a[0].raw)
            t = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                timings[name] = timings.get(name, 0.0) + time.process_time() - t

        return wrapper

    saved_steps, saved_claim, saved_write = pipeline.STEPS, outbox.claim_many, pipeline.Outcomes._write
    saved_suppressions = pipeline._suppressions
    pipeline.STEPS = tuple(timed(f.__name__, f) for f in saved_steps)
    outbox.claim_many = timed("claim", saved_claim)
    pipeline._suppressions = timed("claim", saved_suppressions)
    # ``record``: writing the outcomes, together or one alone (both through Outcomes._write)
    pipeline.Outcomes._write = timed("record", saved_write)
    ids = fair_order(make_mix(n, tag, seed=7))
    n = len(ids)
    pg0 = _postgres_cpu_s()
    t0 = time.process_time()
    try:
        for i in range(0, n, pipeline.CLAIM_BATCH):
            pipeline.deliver_many(ids[i : i + pipeline.CLAIM_BATCH], transport=None)
    finally:
        pipeline.STEPS, outbox.claim_many, pipeline.Outcomes._write = saved_steps, saved_claim, saved_write
        pipeline._suppressions = saved_suppressions
    total = time.process_time() - t0
    out = {k: v * 1000 / n for k, v in timings.items()}
    out["total"] = total * 1000 / n
    out["postgres"] = (_postgres_cpu_s() - pg0) * 1000 / n
    return out | codec_figures(handed), sizes[0]


CODEC_SAMPLE = 400


def _profile_name(key: str) -> str:
    """The printed name of one of ``profile``'s figures."""
    return key if key.startswith("codec_") else f"profile_ms_{key}"


def codec_figures(messages: list[bytes]) -> dict[str, float]:
    """How the kept copy of each message is packed (app.relay.packing: Zstandard) against zlib at
    level 1 (what it replaced), over ``messages``: CPU microseconds a message (best of 5 passes)
    and how many times smaller."""
    import zlib

    from app.relay import packing

    out: dict[str, float] = {}
    total = sum(map(len, messages))
    for name, pack in (("zstd", packing.pack), ("zlib", lambda raw: zlib.compress(raw, 1))):
        best = float("inf")
        for _ in range(5):
            t = time.process_time()
            packed = [pack(raw) for raw in messages]
            best = min(best, time.process_time() - t)
        out[f"codec_us_{name}"] = best * 1e6 / len(messages)
        out[f"codec_ratio_{name}"] = total / sum(map(len, packed))
    return out


def _postgres_cpu_s() -> float:
    """CPU seconds of PostgreSQL so far: the bench database's backends and what the cluster's
    postmaster reaped (``postgres_cpu_s``)."""
    db = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    return postgres_cpu_s(db)


SOAK_SAMPLE_S = 5.0
SOAK_ROUND = 600  # messages of the mix made and enqueued at a time, each round new teams


def soak(workers: Workers, seconds: float) -> dict[str, float]:
    """A realistic send kept going for ``seconds`` (rounds of the mix, new teams each round, so the
    shared render and tracking caches keep meeting new keys) through one worker process; its RSS
    sampled every SOAK_SAMPLE_S: start, end, peak, and the growth slope over the second half."""
    workers.start(1, E2E_THREADS)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    rounds = sent = 0
    pending: list[tuple[str, int]] = []

    def worker_rss() -> float:
        pids = [int(pid) for pid in _worker_pids(workers)]
        return max((rss_mb(pid) for pid in pids), default=0.0)

    next_sample = t0
    while time.monotonic() - t0 < seconds:
        if len(pending) < 2:  # one round sending, the next one queued behind it
            rounds += 1
            tag = f"soak{rounds}"
            ids = make_mix(SOAK_ROUND, tag, seed=rounds)
            enqueue(ids)
            pending.append((tag, len(ids)))
        tag, n = pending[0]
        if sum(v for k, v in count_states(f"{tag}:%").items() if k == "sent") >= n:
            pending.pop(0)
            sent += n
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - t0, worker_rss()))
            next_sample += SOAK_SAMPLE_S
        time.sleep(0.5)
    return {
        "soak_s": round(seconds),
        "soak_messages_sent": sent,
        "worker_rss_start_mb": round(samples[0][1], 1),
        "worker_rss_end_mb": round(samples[-1][1], 1),
        "worker_rss_peak_mb": round(max(y for _, y in samples), 1),
        "worker_rss_slope_mb_per_min_second_half": round(
            slope_mb_per_min([(x, y) for x, y in samples if x >= seconds / 2]), 3
        ),
    }


def _worker_pids(workers: Workers) -> list[int]:
    """The worker processes (the Dramatiq master's children that run the actors)."""
    groups = {os.getpgid(p.pid) for p in workers.procs if p.poll() is None}
    masters = {p.pid for p in workers.procs}
    out = []
    for pid in _procs():
        try:
            if os.getpgid(int(pid)) in groups and int(pid) not in masters:
                out.append(int(pid))
        except OSError:
            continue
    return out


# ---------------------------------------------------------------- phases


def kill_test(workers: Workers, team_id: int, n: int, kills: int, var: Path) -> tuple[int, int, int]:
    """(lost, duplicates, kills done): ``n`` messages while one of two workers is killed ``kills`` times."""
    from app.db import session

    port = free_port()
    counts_file = var / "sink-counts.json"
    sink = counting_sink(port, counts_file)
    set_sender(f"smtp://127.0.0.1:{port}?tls=none&pool=4&timeout=10")
    victim = workers.start(1, KILL_THREADS)
    workers.start(1, KILL_THREADS)
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
            victim = workers.start(1, KILL_THREADS)
        if finished >= n:
            break
        sweep_as_scheduler()
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


# ---------------------------------------------------------------- submitted with an attachment

ATTACH_BYTES = 100 * 1024
CLIENTS = 4  # concurrent API clients / SMTP connections


def _attachment() -> bytes:
    """100 KB that look like a PDF and do not compress (random bytes inside a PDF frame)."""
    head = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nstream\n"
    tail = b"\nendstream\n%%EOF\n"
    return head + os.urandom(ATTACH_BYTES - len(head) - len(tail)) + tail


def _front(args: list[str], log: Path, port: int) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - kept open for the process's lifetime
    p = subprocess.Popen(
        [str(Path(sys.executable).parent / "donebox"), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_port(port, 30)
    return p


def _stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(p.pid, signal.SIGKILL)


def _group_cpu(p: subprocess.Popen) -> float:
    """CPU seconds of a front process and its children (its own process group)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getpgid(int(pid)) == p.pid:
                    total += process_cpu_s(pid)
            except OSError:
                continue
    return total


def _sent_in_batch(batch: str) -> int:
    from sqlalchemy import func, select

    from app.db import session
    from app.models import OutboundMessage as M

    with session() as s:
        return s.execute(select(func.count()).where(M.batch_id == batch, M.state == "sent")).scalar_one()


def _wait_batch(batch: str, n: int, timeout_s: float) -> None:
    t0 = time.monotonic()
    while _sent_in_batch(batch) < n:
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{batch}: {_sent_in_batch(batch)} of {n} sent after {timeout_s}s")
        time.sleep(0.1)


def _api_send(port: int, token: str, n: int, batch: str, pdf: bytes) -> None:
    import base64
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    content = base64.b64encode(pdf).decode()

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body = json.dumps(
            {
                "from": {"email": "invoices@bench.example", "name": "Bench Billing"},
                "to": f"customer{i}@example.com",
                "cc": "accounts@example.com" if i % 10 == 0 else [],
                "reply_to": "help@bench.example",
                "subject": f"Invoice {i}",
                "text": f"Your invoice {i} is attached.",
                "html": f"<p>Your invoice <b>{i}</b> is attached. <a href='https://example.org/i/{i}'>View</a></p>",
                "attachments": [
                    {"filename": f"invoice-{i}.pdf", "content_type": "application/pdf", "content": content}
                ],
                "headers": {"X-Invoice": str(i)},
                "batch_id": batch,
                "idempotency_key": f"{batch}-{i}",
            }
        )
        conn.request(
            "POST",
            "/api/messages",
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        r = conn.getresponse()
        text = r.read()
        conn.close()
        if r.status >= 300:
            raise RuntimeError(f"POST /api/messages: {r.status} {text[:300]!r}")

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(one, range(n)))


def _smtp_send(port: int, token: str, n: int, batch: str, pdf: bytes) -> None:
    import asyncio
    from email.message import EmailMessage

    import aiosmtplib

    def message(i: int) -> EmailMessage:
        m = EmailMessage()
        m["From"] = "Bench Billing <invoices@bench.example>"
        m["To"] = f"customer{i}@example.com"
        m["Reply-To"] = "help@bench.example"
        m["Subject"] = f"Invoice {i}"
        m["X-Invoice"] = str(i)
        m["X-Donebox-Batch-Id"] = batch
        m.set_content(f"Your invoice {i} is attached.")
        m.add_alternative(
            f"<p>Your invoice <b>{i}</b>. <a href='https://example.org/i/{i}'>View</a></p>", subtype="html"
        )
        m.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"invoice-{i}.pdf")
        return m

    async def client(ids: list[int]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        await smtp.connect()
        await smtp.login("bench", token)
        for i in ids:
            await smtp.send_message(message(i))
        await smtp.quit()

    async def main() -> None:
        await asyncio.gather(*(client(list(range(k, n, CLIENTS))) for k in range(CLIENTS)))

    asyncio.run(main())


def submitted(workers: Workers, sink, url: str, team: int, n: int, var: Path) -> dict[str, float]:
    """The API-submitted and the SMTP-submitted case: ``n`` messages with a 100 KB PDF each, from a
    verified sending domain, to the sink through the same workers as the digest case."""
    from app.db import session
    from app.models import TeamSettings, utcnow
    from app.relay.api_tokens import create_token

    with session() as s:
        token = create_token(s, "bench", now=utcnow(), team_id=team, scopes=("send",))
        s.merge(TeamSettings(team_id=team, tracking=True))  # tracked, as the digests are
    pdf = _attachment()
    web_port, smtp_port = free_port(), free_port()
    os.environ["SUBMISSION_PORT"] = str(smtp_port)
    web = _front(["web", "--port", str(web_port)], var / "web.log", web_port)
    smtp = _front(["smtp"], var / "smtp.log", smtp_port)
    figures: dict[str, float] = {}
    try:
        for case, front, send, port in (
            ("api", web, _api_send, web_port),
            ("smtp", smtp, _smtp_send, smtp_port),
        ):
            send(port, token, 10, f"{case}-warm", pdf)
            _wait_batch(f"{case}-warm", 10, 120)
            cpu0, f0 = cpu_seconds(workers, sink, url), _group_cpu(front)
            t0 = time.monotonic()
            send(port, token, n, f"{case}-att", pdf)
            t_accept = time.monotonic() - t0
            _wait_batch(f"{case}-att", n, 1800)
            t_all = time.monotonic() - t0
            cpu1, f1 = cpu_seconds(workers, sink, url), _group_cpu(front)
            figures[f"{case}_attach_accepted_per_s"] = round(n / t_accept, 1)
            figures[f"{case}_attach_msgs_per_s"] = round(n / t_all, 1)
            figures[f"{case}_attach_cpu_ms_per_msg_front"] = round((f1 - f0) * 1000 / n, 3)
            for k in ("workers", "postgres"):
                figures[f"{case}_attach_cpu_ms_per_msg_{k}"] = round((cpu1[k] - cpu0[k]) * 1000 / n, 3)
    finally:
        _stop(web)
        _stop(smtp)
    return figures


def e2e(workers: Workers, sink, url: str, ids: list[int], tag: str) -> dict[str, float]:
    """Enqueue ``ids`` at once and wait until every one is ``sent``: messages/s, and CPU
    milliseconds per message of each process kind (from /proc, less sensitive to load)."""
    cpu0 = cpu_seconds(workers, sink, url)
    t0 = time.monotonic()
    enqueue(ids)
    wait_all(tag, len(ids), 1800)
    out = {"msgs_per_s": round(len(ids) / (time.monotonic() - t0), 1)}
    cpu1 = cpu_seconds(workers, sink, url)
    cpu1["postgres"] -= poll_cpu_s[tag]  # the harness's polls' backend, reaped by now
    for k in cpu0:
        out[f"cpu_ms_per_msg_{k}"] = round((cpu1[k] - cpu0[k]) * 1000 / len(ids), 3)
    out["cpu_ms_per_msg_total"] = round(sum(v for k, v in out.items() if k.startswith("cpu_")), 3)
    out["harness_cpu_ms_per_msg"] = round(poll_cpu_s[tag] * 1000 / len(ids), 3)  # not donebox's
    out["swept"] = swept.get(tag, 0)  # rows the harness's sweeps gave back (the scheduler's job)
    return out


def warm_up(team: int, tag: str) -> None:
    """200 of ``team``'s digests sent (tagged ``tag``) through the workers just started, before
    their measured run."""
    enqueue(make_digests(team, 200, tag))
    wait_all(tag, 200, 120)


def peak_rss_by_kind(workers: Workers, sink, url: str) -> dict[str, float]:
    """The largest peak resident set (MB) among the processes of each kind (``pids_by_kind``)."""
    return {
        kind: round(max((peak_rss_mb(p) for p in pids), default=0), 1)
        for kind, pids in pids_by_kind(workers, sink, url).items()
    }


def deploy_run(workers: Workers, sink, url: str, team: int, n: int) -> dict[str, object]:
    """The mix again (new rows of the same shape), through one ``donebox worker`` as deploy/
    starts it (``deploy_worker``) instead of the headline's two processes of E2E_THREADS threads."""
    processes, threads = deploy_worker()
    workers.start(processes, threads)
    warm_up(team, "deploy-warm")
    out: dict[str, object] = {"e2e_deploy_worker": f"--processes {processes} --threads {threads}"}
    mix = make_mix(n, "deploy")
    out.update({f"e2e_deploy_{k}": v for k, v in e2e(workers, sink, url, mix, "deploy").items()})
    out["e2e_deploy_peak_rss_mb_workers"] = peak_rss_by_kind(workers, sink, url)["workers"]
    workers.stop()
    return out


REMOTE_DELAY_MS = 20  # how late the remote runs' server answers each message's content


def remote_runs(workers: Workers, url: str, team: int, n: int, var: Path) -> dict[str, object]:
    """The mix (new rows of the same shape) into a server that answers each message's content
    REMOTE_DELAY_MS late (bench/sink.py, as a remote server whose reply takes a round trip and its
    own queueing), through the headline's workers and then deploy/'s; the sender's URL names no
    pool, as an operator's need not."""
    port = free_port()
    sink = counting_sink(port, var / "remote-counts.json", REMOTE_DELAY_MS)
    out: dict[str, object] = {"e2e_remote_delay_ms": REMOTE_DELAY_MS}
    try:
        set_sender(f"smtp://127.0.0.1:{port}?tls=none&timeout=10")
        for name, instances in (("headline", HEADLINE_WORKERS), ("deploy", [deploy_worker()])):
            for processes, threads in instances:
                workers.start(processes, threads)
            warm_up(team, f"remote-{name}-warm")
            mix = make_mix(n, f"remote-{name}")
            got = e2e(workers, sink, url, mix, f"remote-{name}")
            out["e2e_remote_messages"] = len(mix)
            out[f"e2e_remote_{name}_msgs_per_s"] = got["msgs_per_s"]
            out[f"e2e_remote_{name}_cpu_ms_per_msg_total"] = got["cpu_ms_per_msg_total"]
            workers.stop()
    finally:
        workers.stop()
        sink.send_signal(signal.SIGTERM)
        sink.wait(30)
    out["e2e_remote_deploy_vs_headline"] = round(
        out["e2e_remote_deploy_msgs_per_s"] / out["e2e_remote_headline_msgs_per_s"], 3
    )
    return out


def sent_messages(tag: str, n: int) -> list[tuple[str, str, bytes]]:
    """(envelope sender, recipient, bytes without donebox's DKIM-Signature) of ``n`` messages of
    ``tag`` as donebox handed them to the sink: what Postfix relays in the same run."""
    from sqlalchemy import select

    from app.db import session
    from app.models import OutboundMessage as M
    from app.relay import outbox

    with session() as s:
        rows = s.execute(
            select(M.id, M.to_addr).where(M.idempotency_key.like(f"{tag}:%")).order_by(M.id).limit(n)
        ).all()
        return [(f"bounce+{mid}@bench.example", to, unsigned(outbox.content(s, mid))) for mid, to in rows]


def postfix_runs(var: Path, sink_port: int, messages: list, key: Path) -> dict[str, float]:
    """The same messages through a private Postfix with the OpenDKIM milter, then without it."""
    out: dict[str, float] = {}
    for name, dkim_key in (("postfix_opendkim", key), ("postfix_plain", None)):
        with Postfix(var, sink_port, dkim_key, "bench.example", key.stem) as pf:
            pf.relay(messages[:50])  # its daemons started
            seconds, cpu = pf.relay(messages)
            out[f"{name}_msgs_per_s"] = round(len(messages) / seconds, 1)
            for k, v in cpu.items():
                if k != "opendkim" or dkim_key:
                    out[f"{name}_cpu_ms_per_msg_{k}"] = round(v * 1000 / len(messages), 3)
            for k, pids in pf.pids().items():
                if pids:
                    out[f"{name}_peak_rss_mb_{k}"] = round(max(peak_rss_mb(p) for p in pids), 1)
    return out


def machine(when: str) -> dict[str, object]:
    """The load average and the CPU yardstick now, as ``loadavg_<when>`` and ``cpu_yardstick_<when>_s``."""
    return {
        f"loadavg_{when}": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"cpu_yardstick_{when}_s": cpu_yardstick_s(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small numbers, under a minute")
    ap.add_argument("--steps", type=int, default=0, metavar="N", help="only the per-step profile, N messages")
    ap.add_argument(
        "--soak", type=float, default=0, metavar="SECONDS", help="only the worker's RSS over a send"
    )
    args = ap.parse_args()
    if args.steps or args.soak:
        return alone(args.steps, args.soak)
    q = args.quick
    n_mix, n_one, n_postfix, n_naive, n_big, n_kill, kills, n_profile, n_sub, n_remote = (
        (1500, 1000, 500, 0, 0, 400, 1, 0, 0, 0)
        if q
        else (20000, 10000, 5000, 1000, 50000, 20000, 10, 1000, 2000, 4000)
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-up below on `timeout`
    ensure_packages()
    var = Path(tempfile.mkdtemp(prefix="donebox-bench-"))
    var.chmod(0o755)  # Postfix's daemons (user postfix) reach their folders below it
    url = setup_environment(var)
    sys.path.insert(0, str(ROOT))
    from app.relay.dkim import generate

    key, _ = generate(Path(os.environ["DKIM_DIR"]), "bench.example", "rsa", "rsa")
    figures: dict[str, object] = machine("start")
    workers = Workers(var / "workers.log")
    try:
        team = make_team("bench", 12)
        port = free_port()
        with smtp_sink(port) as sink:
            set_sender(f"smtp://127.0.0.1:{port}?tls=none&pool=8&timeout=10")
            if n_profile:
                prof, _ = profile(n_profile)
                figures.update({_profile_name(k): round(v, 3) for k, v in prof.items()})
            if n_naive:
                figures["naive_msgs_per_s"] = round(naive(team, n_naive, port), 1)
            mix = make_mix(n_mix, "mix")
            one = make_digests(team, n_one, "one")
            for processes, threads in HEADLINE_WORKERS:
                workers.start(processes, threads)
            warm_up(team, "warm")
            figures["mix_messages"] = len(mix)
            figures.update({f"e2e_{k}": v for k, v in e2e(workers, sink, url, mix, "mix").items()})
            figures.update({f"one_team_{k}": v for k, v in e2e(workers, sink, url, one, "one").items()})
            if n_big:
                figures.update(fairness(team, n_big))
            if n_sub:
                figures.update(submitted(workers, sink, url, team, n_sub, var))
            for kind, mb in peak_rss_by_kind(workers, sink, url).items():
                figures[f"peak_rss_mb_{kind}"] = mb
            workers.stop()
            figures.update(deploy_run(workers, sink, url, team, n_mix))
            messages = sent_messages("mix", n_postfix)
            figures["message_bytes_mean"] = sum(len(m[2]) for m in messages) // len(messages)
            figures["sink_limit_msgs_per_s"] = round(
                sink_limit(port, 20000 if not q else 5000, figures["message_bytes_mean"]), 1
            )
            figures.update(postfix_runs(var, port, messages, key))
        if n_remote:  # full runs only: --quick stays under a minute
            figures.update(remote_runs(workers, url, team, n_remote, var))
        lost, dups, done = kill_test(workers, team, n_kill, kills, var)
        e2e_lost = sum(
            v
            for tag in ("mix", "deploy", "remote-headline", "remote-deploy")
            for k, v in count_states(f"{tag}:%").items()
            if k != "sent"
        )
        figures.update(lost=lost + e2e_lost, e2e_lost=e2e_lost, kill_lost=lost)
        figures.update(duplicates=dups, kills=done, kill_messages=n_kill)
        for run, refs in (
            ("e2e", ("postfix_opendkim", "postfix_plain", "sink_limit")),
            ("e2e_deploy", ("postfix_opendkim", "postfix_plain")),
        ):
            for ref in refs:
                figures[f"{run}_vs_{ref}"] = round(
                    figures[f"{run}_msgs_per_s"] / figures[f"{ref}_msgs_per_s"], 3
                )
        if n_naive:
            figures["e2e_vs_naive"] = round(figures["e2e_msgs_per_s"] / figures["naive_msgs_per_s"], 2)
        figures.update(machine("end"))
    finally:
        workers.stop()
        drop_database(url)
        shutil.rmtree(var, ignore_errors=True)
    # a killed process duplicates at most its SEND_SLOTS messages (accepted, outcome not committed)
    figures["send_slots"] = slots = send_slots()
    figures["duplicates_bound"] = figures["kills"] * slots
    figures["duplicates_within_bound"] = figures["duplicates"] <= figures["duplicates_bound"]
    for k, v in figures.items():
        print(f"{k}={v}")
    if not figures["duplicates_within_bound"]:
        sys.exit(
            f"FAILED: {figures['duplicates']} duplicates for {figures['kills']} kills "
            f"(at most SEND_SLOTS={slots} per kill)"
        )
    if not q:
        write_section(figures)


def alone(n_steps: int, soak_s: float) -> None:
    """``--steps`` / ``--soak``: the per-step profile or the soak, on their own environment."""
    var = Path(tempfile.mkdtemp(prefix="donebox-bench-"))
    url = setup_environment(var)
    sys.path.insert(0, str(ROOT))
    from app.relay.dkim import generate

    generate(Path(os.environ["DKIM_DIR"]), "bench.example", "rsa", "rsa")
    figures: dict[str, object] = machine("start")
    workers = Workers(var / "workers.log")
    try:
        port = free_port()
        with smtp_sink(port):
            set_sender(f"smtp://127.0.0.1:{port}?tls=none&pool=8&timeout=10")
            if n_steps:
                prof, size = profile(n_steps)
                figures.update({_profile_name(k): round(v, 3) for k, v in prof.items()})
                figures["profile_message_bytes"] = size
            if soak_s:
                figures.update(soak(workers, soak_s))
        figures.update(machine("end"))
    finally:
        workers.stop()
        drop_database(url)
        shutil.rmtree(var, ignore_errors=True)
    for k, v in figures.items():
        print(f"{k}={v}")


def fairness(team: int, n_big: int) -> dict[str, object]:
    """A big batch of one team, then a small team's 10: how long the small team waits."""
    from sqlalchemy import select

    from app.db import session
    from app.models import OutboundMessage as M

    small_team = make_team("small", 3)
    big = make_digests(team, n_big, "big")
    small = make_digests(small_team, 10, "small")
    enqueue(big)
    time.sleep(0.5)
    t_small = datetime.now(UTC)
    enqueue(small)
    wait_all("small", 10, 600)
    with session() as s:
        done_at = sorted(s.execute(select(M.updated_at).where(M.idempotency_key.like("small:%"))).scalars())
        big_left = s.execute(select(M.id).where(M.idempotency_key.like("big:%"), M.state == "queued")).all()
    out = {
        "small_team_max_latency_s": round((done_at[-1] - t_small).total_seconds(), 2),
        "big_batch_left_when_small_done": len(big_left),
    }
    wait_all("big", n_big, 3600)
    return out


NOTES = """\
How it is measured, all in one run on the same machine:

- **e2e** (the headline): the realistic mix (`mix_messages` rows: teams of 5-20 members with
  tracking on, each team's digests of one or two of three days made at once, reminders of some
  teams, 15% API messages each with its own content) enqueued at once, delivered by two
  `donebox worker` processes (2 threads each) on PostgreSQL and Redis, through a routed SMTP sender
  (pooled connections, the envelope pipelined: smtp-sink offers PIPELINING) into postfix's
  `smtp-sink`, DKIM RSA-2048; the clock stops when every row is `sent`. **one_team**: the same
  for one team's digest of one day (every render shared). **e2e_deploy**: the mix again (new rows
  of the same shape) through one `donebox worker` started as deploy/'s systemd unit starts it
  (`e2e_deploy_worker`: its processes and threads, read from the unit), what an operator who
  follows the README runs; its threads are many because a remote sender's replies take
  milliseconds, where the sink here answers at once. **e2e_remote_headline / e2e_remote_deploy**
  (full runs only): the mix again (`e2e_remote_messages` rows each) into bench/sink.py answering
  each message's content `e2e_remote_delay_ms` late, as a remote server does, through the
  headline's two processes of two threads and then through the deploy's worker; the sender's URL
  names no pool (each process then keeps a connection for each of its threads). aiosmtpd's sink
  costs more CPU a message than smtp-sink, so compare these two rows with each other.
- `*_cpu_ms_per_msg_*`: CPU (user + system, from /proc) of the worker processes, PostgreSQL (the
  bench database's backends alive at the second sample, and every backend the cluster's postmaster
  reaped meanwhile: a pool's overflow connection ends when it is given back, and runs before
  2026-12-07 evening, which counted the live backends alone, left those out; less the bench's own
  polls for the end, made on a connection of their own), Redis (the whole server) and the sink,
  per message;
  on two cores their sum bounds the rate. `*_harness_cpu_ms_per_msg` is what those polls cost
  the machine meanwhile (they count only the rows still on their way, through an index, and come
  often only near the end), not counted in the total. When the rows on their way have not moved
  for 10 s, the harness sweeps as the scheduler's sweeper would (a worker defers a message whose
  lease is half gone before its turn, due at once, for the sweeper): `*_swept` counts the rows it
  gave back (runs before 2026-12-07 evening had no sweep there, and waited out the timeout).
- **sink limit**: `smtp-source -d -s 20` (20 sessions, each reusing its connection) blasting
  messages of the mix's mean size into the same `smtp-sink`.
- **postfix_opendkim / postfix_plain**: a private Postfix instance (Debian's package, its own
  config and queue folders, loopback) relaying the mix's messages as donebox sent them (without
  donebox's signature) to the same sink, handed to it over 20 reused SMTP connections; with the
  OpenDKIM milter (unix socket, same key, relaxed/simple), then without it. The clock stops when
  its log (read from where the last look stopped) shows every message relayed and its queue is
  empty. `*_cpu_ms_per_msg_injector` is the bench process handing the messages over (not counted
  for donebox's producers either).
- **kill -9**: two worker instances (one process of 4 threads each); one is killed `kills` times
  during the send and restarted, the scheduler's sweeper runs; a Message-ID counting sink reports
  duplicates, at most `send_slots` (SEND_SLOTS, as the workers run) per kill:
  `duplicates_bound`. `lost` counts rows never delivered (or not `sent`) by the end, of the kill
  run and of the mix.
- **peak_rss_mb_***: the largest peak resident set (VmHWM) among the processes of each kind.
- **profile_ms_*** (full run): CPU milliseconds per message of each pipeline step, in one thread
  of the bench process on the mix taken in turns between teams as the fair queue hands it out,
  in batches of 20 as the workers claim them.
- **codec_us_*** / **codec_ratio_***: the kept copy of each message packed as the relay packs it
  (Zstandard, app.relay.packing) and as zlib at level 1 packed it before, over the first 400
  messages the profile sent: CPU microseconds a message (best of 5 passes), times smaller.

The machine was shared with other engineers' work (see loadavg): compare the ratios and the CPU
per message.
"""


def write_section(figures: dict) -> None:
    """Replace (or add) the "## Outbound relay" section of BENCHMARKS.md."""
    import importlib.metadata as md

    versions = ", ".join(
        f"{p} {md.version(p)}" for p in ("dkimpy", "cryptography", "dramatiq", "psycopg", "zstandard")
    )
    rows = "\n".join(f"| {k} | {v} |" for k, v in figures.items())
    section = (
        "## Outbound relay\n\n"
        f"`python bench/outbound.py` on {datetime.now(UTC):%Y-%m-%d} (2 cores; "
        f"Python {sys.version.split()[0]}; {versions}; postfix smtp-sink/smtp-source from Debian).\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n\n{NOTES}"
    )
    put_section("## Outbound relay", section, keep_subsections=True)  # the soak's "### Worker memory"


if __name__ == "__main__":
    main()
