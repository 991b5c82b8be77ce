"""Inbound intake benchmark: durably accepted SendGrid-parsed POSTs per second, and processing rate.

Runs the real ``donebox web`` (2 uvicorn workers, uvloop + httptools) on SQLite and on
PostgreSQL, drives it with 16 and 64 keep-alive clients (a separate load-generator process),
and in the same run measures the same server on an endpoint that parses the same form but
stores nothing (the web stack's ceiling), then processing messages per second in one worker
process: ``process_inbound_batch`` on groups of ids (how the web enqueues them) and, for
comparison, ``process_inbound`` one id at a time. Prints one ``name=value`` line per figure;
``--quick`` finishes in under a minute; a full run writes its section into BENCHMARKS.md.

    .venv/bin/python bench/inbound.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import b64encode
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
AUTH = "bench:bench-password"
SECRET = "bench-secret-key-0123456789-abcdefXYZ"
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
BOUNDARY = "xYzZY"


# ---- payloads -------------------------------------------------------------------------------


def sendgrid_body(n: int, to: str) -> bytes:
    """One ~8 KB SendGrid parsed-mode multipart POST body, unique by its Message-ID."""
    text = ("Shipped the export; reviewed #42 with @bob; paired on the importer. " * 60)[:4000]
    html = "<div>" + text.replace("; ", "<br>") + "</div>"
    headers = (
        f"MIME-Version: 1.0\nFrom: Ada <ada@example.com>\nTo: {to}\nSubject: Re: today\n"
        f"Date: Mon, 23 Nov 2026 17:53:04 +0100\nMessage-ID: <bench-{n}@example.com>\n"
    )
    fields = [
        ("headers", headers),
        ("dkim", "{@example.com : pass}"),
        ("SPF", "pass"),
        ("envelope", json.dumps({"to": [to], "from": "ada@example.com"})),
        ("to", to),
        ("from", "Ada <ada@example.com>"),
        ("subject", "Re: today"),
        ("text", text),
        ("html", html),
        (
            "charsets",
            json.dumps(
                {"to": "UTF-8", "html": "UTF-8", "subject": "UTF-8", "from": "UTF-8", "text": "UTF-8"}
            ),
        ),
        ("spam_score", "0.1"),
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
    """Request n is the same ~8 KB POST with a unique Message-ID (built on the fly: no 300 MB in memory)."""

    def __init__(self, path: str, to: str, unique: bool):
        marker = "X" * 20
        full = request_bytes(path, sendgrid_body(0, to).replace(b"bench-0@", f"bench-{marker}@".encode()))
        self.before, self.after = full.split(marker.encode())
        self.run = uuid.uuid4().hex[:8]
        self.unique = unique

    def __getitem__(self, n: int) -> bytes:
        tag = f"{self.run}{n if self.unique else 0:012d}".encode()
        return self.before + tag + self.after


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
    port: int, path: str, to: str, clients: int, seconds: float, warmup: float, unique: bool
) -> dict:
    requests = Requests(path, to, unique)
    counter = [0]
    lat: list[float] = []
    errors: list[int] = []
    if warmup:
        stop = time.monotonic() + warmup
        await asyncio.gather(*(_client(port, requests, counter, stop, [], []) for _ in range(clients)))
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
        _load(args.port, args.path, args.to, args.clients, args.seconds, args.warmup, unique)
    )
    print(json.dumps(result))


def run_load(port: int, path: str, clients: int, seconds: float, to: str, warmup: float) -> dict:
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
    cmd += ["--seconds", str(seconds), "--to", to, "--warmup", str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- servers and databases --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    )
    if redis_ok():
        env["REDIS_URL"] = REDIS  # the web only enqueues; processing is measured on its own below
    return env


def redis_ok() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001
        return False


def start_web(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(BIN / "donebox"), "web", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                time.sleep(1.0)  # both workers up
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("donebox web did not start: " + proc.stderr.read().decode()[-2000:])


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


def prepare(env: dict) -> str:
    """Migrate, create a team with one member; the member's reply address."""
    subprocess.run([str(BIN / "donebox"), "migrate"], env=env, check=True, capture_output=True)
    code = f"""
from datetime import UTC, datetime
from app.db import session
from app.models import Member, Team
from app.checkins.reply_tokens import reply_address
with session() as s:
    t = Team(name="Bench", timezone="UTC")
    s.add(t)
    s.flush()
    m = Member(team_id=t.id, email="ada@example.com", name="Ada")
    s.add(m)
    s.flush()
    # today's: a reply address works for REPLY_WINDOW_DAYS after its day
    print(reply_address({SECRET!r}, "reply.bench", m.id, datetime.now(UTC).date()))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True, cwd=ROOT
    )
    return out.stdout.strip().splitlines()[-1]


GROUP = 32  # ids per process_inbound_batch message in the benchmark (the web sends one per committed group)


def measure_processing(env: dict, seconds: float, batch: int) -> dict:
    """Messages/s in one worker process with 8 threads on the stored rows: process_inbound_batch
    on groups of ``batch`` ids (how the web enqueues them), or process_inbound per id (batch 1)."""
    code = f"""
import time, json
from concurrent.futures import ThreadPoolExecutor
from sqlalchemy import select
from app.db import session
from app.models import InboundMessage
from jobs.actors import process_inbound, process_inbound_batch
with session() as s:
    ids = list(s.execute(select(InboundMessage.id).where(InboundMessage.state == 'received')).scalars())
batch = {batch}
if batch == 1:
    work, run = ids, process_inbound.fn
else:
    work, run = [ids[i:i + batch] for i in range(0, len(ids), batch)], process_inbound_batch.fn
import resource
t0 = time.monotonic(); done = 0
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
with ThreadPoolExecutor(8) as pool:
    for i in range(0, len(work), 64):
        chunk = work[i:i + 64]
        list(pool.map(run, chunk)); done += sum(len(g) for g in chunk) if batch > 1 else len(chunk)
        if time.monotonic() - t0 > {seconds}: break
elapsed = time.monotonic() - t0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu_ms = 1000 * ((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)) / max(done, 1)
with session() as s:
    states = dict((st, n) for st, n in s.execute(
        __import__('sqlalchemy').text('select state, count(*) from inboundmessage group by state')).all())
print(json.dumps({{"per_s": done / elapsed, "done": done, "cpu_ms": cpu_ms, "states": states}}))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def bench_db(kind: str, seconds: float, warmup: float, quick: bool) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="donebox-bench-") as tmp:
        url, drop = setup_database(kind, tmp)
        try:
            env = bench_env(url, tmp)
            to = prepare(env)
            port = free_port()
            web = start_web(env, port)
            try:
                for clients in (16, 64):
                    results[f"accept_c{clients}"] = run_load(
                        port, "/inbound/sendgrid", clients, seconds, to, warmup
                    )
                results["parse_only_c64"] = run_load(
                    port, "/dev/inbound/sendgrid/parse-only", 64, seconds, to, warmup
                )
            finally:
                web.terminate()
                web.wait(timeout=30)
            results["process"] = measure_processing(env, seconds, GROUP)
            results["process_single"] = measure_processing(env, seconds, 1)
        finally:
            drop()
    return results


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def versions() -> str:
    from importlib.metadata import version

    parts = [f"Python {platform.python_version()}"]
    for pkg in ("starlette", "uvicorn", "sqlalchemy", "psycopg", "python-multipart", "flanker"):
        parts.append(f"{pkg} {version(pkg)}")
    return ", ".join(parts)


def write_benchmarks(all_results: dict, summary: dict) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = [
        "## Inbound intake",
        "",
        f"`bench/inbound.py` on {date.today().isoformat()}, {os.cpu_count()} cores, "
        f"loadavg {summary['loadavg']} at the end (the bench's own processes included), {versions()}.",
        "`donebox web --workers 2` (uvloop + httptools); ~8 KB SendGrid parsed-mode multipart POSTs, "
        "each a new mail, Basic auth; keep-alive clients in a separate process on the same machine. "
        "*parse-only* is the same server on an endpoint that authenticates and parses the same form "
        "but stores nothing.",
        "",
        "| database | clients | accepted/s | p50 ms | p99 ms | parse-only/s (64 clients) "
        f"| accept / parse-only | processed msgs/s (1 process, 8 threads, groups of {GROUP}) "
        "| worker CPU ms per processed msg | processed msgs/s one id at a time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in all_results.items():
        for clients in (16, 64):
            a = r[f"accept_c{clients}"]
            po = r["parse_only_c64"]["per_s"]
            lines.append(
                f"| {kind} | {clients} | {a['per_s']:.0f} | {a['p50_ms']:.1f} | {a['p99_ms']:.1f} "
                f"| {po:.0f} | {a['per_s'] / po:.2f} | {r['process']['per_s']:.0f} "
                f"| {r['process']['cpu_ms']:.2f} "
                f"| {r['process_single']['per_s']:.0f} |"
            )
    if "parse_mix_per_s" in summary:
        lines += [
            "",
            f"`parse_mime` alone over a realistic mix ({summary['parse_mix_messages']} messages: the shared "
            "MIME corpus, CPython's email test data, tests/fixtures/raw), one thread, best pass: "
            f"{summary['parse_mix_per_s']:.0f} messages per CPU second.",
        ]
    section = "\n".join(lines) + "\n\n"
    start = text.find("## Inbound intake")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    path.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs (under a minute), no BENCHMARKS.md")
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    for opt, typ in (("--port", int), ("--path", str), ("--clients", int), ("--seconds", float)):
        p.add_argument(opt, type=typ, help=argparse.SUPPRESS)
    p.add_argument("--to", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.loadgen:
        loadgen_main(args)
        return
    seconds, warmup = (3.0, 1.0) if args.quick else (15.0, 3.0)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    all_results = {}
    for kind in kinds:
        r = bench_db(kind, seconds, warmup, args.quick)
        all_results[kind] = r
        for clients in (16, 64):
            a = r[f"accept_c{clients}"]
            print(f"accept_{kind}_c{clients}_per_s={a['per_s']:.0f}")
            print(f"accept_{kind}_c{clients}_p50_ms={a['p50_ms']:.1f}")
            print(f"accept_{kind}_c{clients}_p99_ms={a['p99_ms']:.1f}")
            if a["errors"]:
                print(f"accept_{kind}_c{clients}_errors={a['errors']} statuses={a['statuses']}")
        print(f"parse_only_{kind}_per_s={r['parse_only_c64']['per_s']:.0f}")
        print(f"process_{kind}_per_s={r['process']['per_s']:.0f}")
        print(f"process_single_{kind}_per_s={r['process_single']['per_s']:.0f}")
        print(f"process_{kind}_cpu_ms_per_msg={r['process']['cpu_ms']:.2f}")
        print(f"process_{kind}_states={json.dumps(r['process']['states'])}", flush=True)
    c64 = [r["accept_c64"] for r in all_results.values()]
    summary = {
        "accept_per_s": min(a["per_s"] for a in c64),
        "accept_p99_ms": max(a["p99_ms"] for a in c64),
        "parse_only_per_s": min(r["parse_only_c64"]["per_s"] for r in all_results.values()),
        "process_per_s": min(r["process"]["per_s"] for r in all_results.values()),
        "loadavg": loadavg(),
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
    print(f"loadavg={summary['loadavg']}")
    if not args.quick:
        write_benchmarks(all_results, summary)


if __name__ == "__main__":
    main()
