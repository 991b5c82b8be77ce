"""`donebox worker` as a real process: the environment its Dramatiq processes run in."""

import os

import pytest

from tests.e2e.conftest import base_env, wait_until

pytestmark = pytest.mark.e2e


def environments(p) -> list[dict[str, str]]:
    """The environment of each live process in ``p``'s process group (the Dramatiq master that
    `donebox worker` became, and the worker processes it started)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != p.pid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                pairs = [item.partition(b"=") for item in f.read().split(b"\0") if item]
        except OSError:  # gone meanwhile
            continue
        found.append({k.decode(): v.decode(errors="replace") for k, _, v in pairs})
    return found


def test_the_worker_processes_run_with_two_malloc_arenas_unless_the_operator_set_them(
    tmp_path, procs, fresh_pg, redis_url
):
    env_vars = base_env(tmp_path, DATABASE_URL=fresh_pg, REDIS_URL=redis_url)
    env_vars.pop("MALLOC_ARENA_MAX", None)
    assert procs.run(["migrate"], env_vars).returncode == 0
    default = procs.start(["worker", "--processes", "2", "--threads", "2"], env_vars)
    chosen = procs.start(
        ["worker", "--processes", "1", "--threads", "3"], {**env_vars, "MALLOC_ARENA_MAX": "4"}
    )
    wait_until(
        lambda: len(environments(default)) >= 3 and len(environments(chosen)) >= 2,
        60,
        "the Dramatiq master and its worker processes, twice",
    )
    assert {e.get("MALLOC_ARENA_MAX") for e in environments(default)} == {"2"}
    assert {e.get("MALLOC_ARENA_MAX") for e in environments(chosen)} == {"4"}
    # and the threads each process runs, which an SMTP sender's pool is sized by
    assert {e.get("WORKER_THREADS") for e in environments(default)} == {"2"}
    assert {e.get("WORKER_THREADS") for e in environments(chosen)} == {"3"}
