"""Real processes: start donebox commands as subprocesses on loopback and stop them afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, TEST_ENV, need, reachable

DONEBOX = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout=10):
    """(status, body bytes) of one request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll ``check()`` until it returns something truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, urllib.error.URLError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


class Procs:
    """Subprocesses started by a test, killed at the end, their output kept for failures."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(
        self, args: list[str], env: dict, *, stderr_apart: bool = False, prefix: Sequence[str] = ()
    ) -> subprocess.Popen:
        """Start ``donebox ARGS`` (under the command ``prefix``, e.g. ``ip netns exec NAME``); its
        stdout and stderr in one log, or stderr in a file of its own (``stderr_of``) when
        ``stderr_apart``."""
        log = self.tmp / f"proc-{len(self.procs)}.log"
        err = log.with_suffix(".err")
        with log.open("wb") as out, err.open("wb") as errors:  # the child keeps its own copies
            p = subprocess.Popen(
                [*prefix, *DONEBOX, *args],
                env=env,
                stdout=out,
                stderr=errors if stderr_apart else subprocess.STDOUT,
                cwd=str(Path(__file__).resolve().parents[2]),
                start_new_session=True,
            )
        self.procs.append((p, log))
        return p

    def run(self, args: list[str], env: dict, timeout_s: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            DONEBOX + args,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=str(Path(__file__).resolve().parents[2]),
        )

    def stderr_of(self, p: subprocess.Popen) -> str:
        """What ``p`` wrote on stderr, when it was started with ``stderr_apart``."""
        return next(log for q, log in self.procs if q is p).with_suffix(".err").read_text(errors="replace")

    def logs(self) -> str:
        def tail(path: Path) -> str:
            return path.read_text(errors="replace")[-3000:] if path.exists() else ""

        return "\n".join(f"--- {p.args}\n{tail(log)}{tail(log.with_suffix('.err'))}" for p, log in self.procs)

    def stop_one(self, p: subprocess.Popen) -> int:
        """SIGTERM ``p``'s process group and wait for it; its exit code."""
        os.killpg(p.pid, signal.SIGTERM)
        try:
            return p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            return p.wait()

    def stop(self) -> None:
        for p, _ in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p, _ in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def procs(tmp_path, request):
    ps = Procs(tmp_path)
    yield ps
    ps.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(ps.logs())  # shown by pytest with the failure


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def fresh_pg(request):
    """A new, empty PostgreSQL database URL (migrated by whoever uses it); dropped afterwards."""
    if not reachable(PG_ADMIN_URL, 5432):
        need("PostgreSQL", f"nothing answers at {PG_ADMIN_URL}")
    import psycopg

    name = f"donebox_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    from tests.conftest import reset_caches

    reset_caches()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_env(tmp: Path, **extra) -> dict:
    """The environment for a donebox subprocess: this interpreter's, plus the test settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RABBITMQ_URL", "DATABASE_URL")}
    env.update(TEST_ENV, VAR_DIR=str(tmp / "var"), MAIL_TRANSPORT="maildir", TICK_S="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def migrated_team(procs, env, env_vars: dict, name: str, members: dict[str, str]) -> int:
    """``donebox migrate`` on the processes' database, then a team (UTC, every day a workday) with
    ``members`` (name -> role), scheduled, written straight into it; the team's id. This test's own
    settings (``env``) point at the same database."""
    assert procs.run(["migrate"], env_vars).returncode == 0
    for k, v in env_vars.items():
        env.setenv(k, v)
    from tests.conftest import reset_caches

    reset_caches()
    from app.checkins.schedules import schedule_member
    from app.db import session
    from app.models import Member, Team, utcnow

    with session() as s:
        team = Team(name=name, timezone="UTC", workdays="1234567")
        s.add(team)
        s.flush()
        for who, role in members.items():
            m = Member(team_id=team.id, email=f"{who.lower()}@example.com", name=who, role=role)
            schedule_member(s, m, team, utcnow())
            s.add(m)
        s.flush()
        return team.id
