"""What every bench shares and that reads no settings at import: a free port and waiting for it, writing a
bench's section into BENCHMARKS.md, what /proc tells of a process (CPU seconds, resident set), and a
soak's growth fit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
PORTS = os.environ.get("BENCH_PORTS", "")  # "24000-24999": the servers' ports come from this range
_next_port = [0]


def counting_sink(port: int, counts_file: Path, delay_ms: int = 0) -> subprocess.Popen:
    """bench/sink.py on ``port``, ready: it counts each Message-ID into ``counts_file`` at SIGTERM,
    and answers each message's content ``delay_ms`` late."""
    sink = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("sink.py")),
            str(port),
            str(counts_file),
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    sink.stdout.readline()  # "ready"
    return sink


def wait_port(port: int, timeout_s: float = 10) -> None:
    """Return once something listens on 127.0.0.1:``port``; RuntimeError after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def put_section(heading: str, section: str, keep_subsections: bool = False) -> None:
    """Put ``section`` (starting with ``heading``) in BENCHMARKS.md where the section of that
    heading stands, up to the next ``## `` (with ``keep_subsections``, up to the next heading of any
    level, so hand-written ``### `` parts under it stay); at the end when there is none."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start >= 0:
        ends = [text.find(mark, start + 1) for mark in ("\n## ", "\n### ")[: 2 if keep_subsections else 1]]
        end = min((e for e in ends if e >= 0), default=-1)
        rest = text[end + 1 :] if end >= 0 else ""
        text = text[:start] + (section.rstrip("\n") + "\n\n" if rest else section) + rest
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text)


# ---- processes, read from /proc (Linux; 0 or nothing elsewhere) ---------------------------------


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command's name (state first), or None when the
    process is gone (or this is not Linux)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu_s(pid: int | str) -> float:
    """CPU seconds (user + system) the process has used so far; 0 when it is gone."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def reaped_cpu_s(pid: int | str) -> float:
    """CPU seconds (user + system) of the children process ``pid`` has waited for (cutime + cstime):
    those that have exited, which ``process_cpu_s`` of each no longer reads; 0 when it is gone."""
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def parent_pid(pid: int | str) -> int | None:
    """The process's parent, or None when it is gone."""
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def children(pid: int | str) -> list[int]:
    """The processes whose parent is ``pid``, alive now."""
    return [int(c) for c in os.listdir("/proc") if c.isdigit() and parent_pid(c) == int(pid)]


def tree_cpu_s(pid: int | str) -> float:
    """CPU seconds so far of process ``pid``, of its children alive now and of those it has reaped:
    a server's master and its workers (a PostgreSQL cluster, Postfix), those that ended included."""
    return process_cpu_s(pid) + reaped_cpu_s(pid) + sum(map(process_cpu_s, children(pid)))


def procs() -> dict[str, str]:
    """Every process's command line, by pid."""
    out = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out[pid] = (
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                )
            except OSError:
                continue
    return out


def _status_mb(pid: int | str, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb(pid: int | str) -> float:
    """The process's peak resident set (VmHWM), in MB; 0 when it is gone."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int | str) -> float:
    """The process's resident set now (VmRSS), in MB; 0 when it is gone."""
    return _status_mb(pid, "VmRSS:")


def group_pids(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (a server started with start_new_session)."""
    out = []
    for pid in procs():
        try:
            if os.getpgid(int(pid)) == pgid:
                out.append(int(pid))
        except OSError:
            continue
    return sorted(out)


def postgres_pids(db: str) -> list[int]:
    """The PostgreSQL backends connected to database ``db``."""
    return [int(pid) for pid, cmd in procs().items() if cmd.startswith("postgres:") and f" {db} " in cmd]


_postmasters: dict[str, int] = {}  # database -> the postmaster of its cluster, found once


def postgres_cpu_s(db: str) -> float:
    """CPU seconds so far of database ``db``'s backends alive now, plus those of every child its
    cluster's postmaster has reaped. A backend that exits between two samples (a pool's overflow
    connection, closed when it is given back) took its CPU with it, and counting the live ones
    alone made PostgreSQL look cheaper the more connections a run opened and closed. What the
    reaped children also hold (autovacuum's workers, other databases' backends that ended: the
    machine's others) is counted too. The postmaster is the parent of a backend of ``db``, found
    at the first call (RuntimeError when it has none then) and kept."""
    backends = postgres_pids(db)
    if db not in _postmasters:
        found = next((p for p in map(parent_pid, backends) if p is not None), None)
        if found is None:
            raise RuntimeError(f"no backend of {db} to find its cluster by")
        _postmasters[db] = found
    return sum(process_cpu_s(p) for p in backends) + reaped_cpu_s(_postmasters[db])


def free_port() -> int:
    """A free port on 127.0.0.1: the next one of BENCH_PORTS, or any the kernel gives."""
    lo, _, hi = PORTS.partition("-")
    for port in range(int(lo) + _next_port[0], int(hi) + 1) if PORTS else [0]:
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in BENCH_PORTS={PORTS}")


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares growth of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (v - mv) for t, v in samples) / var if var else 0.0


def cpu_yardstick_s() -> float:
    """CPU seconds of a fixed pure-Python loop (best of three): how fast this machine runs Python
    right now. Its speed changes from hour to hour on the same machine, and every CPU-per-unit
    figure moves with it, so a run prints it at its start and end."""
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        sum(i * i for i in range(2_000_000))
        best = min(best, time.process_time() - t)
    return round(best, 3)
