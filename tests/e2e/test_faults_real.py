"""The fault-injection suite's quick mode (bench/faults.py --quick) on real processes: no fault
loses mail, and none duplicates more than the design allows.

The figures themselves (times to recover) are the bench's; this test only holds the guarantees.
"""

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FAULTS = ("web_kill", "worker_kill", "redis_restart", "pg_restart", "sender", "disk_full")


def test_no_fault_loses_mail_or_duplicates_past_its_bound():
    if not shutil.which("redis-server"):
        need("redis-server", "the Redis fault starts and kills a private one")
    if not (shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")):
        need("PostgreSQL's initdb", "the PostgreSQL fault restarts a private cluster")
    if os.geteuid() != 0:
        need("root", "the disk-full fault mounts a small tmpfs")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL")}
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "faults.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )
    figures = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    if r.returncode == 3:
        need("a component of the fault suite", figures.get("unavailable", r.stderr[-500:]))
    for fault in FAULTS:
        assert figures.get(f"{fault}_lost") == "0", (fault, r.stdout, r.stderr[-3000:])
        assert int(figures[f"{fault}_duplicated"]) <= int(figures[f"{fault}_dup_bound"]), (fault, r.stdout)
        assert f"{fault}_recover_s" in figures, (fault, r.stdout)
    for fault in ("web_kill", "disk_full"):  # a 2xx came after the restart, after the space returned
        assert float(figures[f"{fault}_recover_s"]) >= 0, r.stdout
        assert figures[f"{fault}_2xx_not_stored"] == "0", r.stdout
    # a POST while the file system is full may still be stored in the room SQLite's write-ahead log
    # already has (2xx_while_full, each one checked stored above); past it, POSTs are refused
    assert int(figures["disk_full_refused"]) > 0, r.stdout
    assert figures["sender_sent_in_outage"] == "0" and int(figures["sender_deferrals"]) > 0, r.stdout
    assert r.returncode == 0, r.stderr[-3000:]
