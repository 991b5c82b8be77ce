"""docs/deploy.md's one-machine guide, followed as far as this machine allows: the EnvironmentFile
example filled in, `donebox migrate`, a sender, then the ExecStart lines of deploy/systemd's units
started as processes (without systemd): the web answers, a reminder leaves through the worker."""

import os
import shutil
import smtplib
import ssl
import subprocess
import sys
from email import message_from_bytes

import pytest

from tests.app.relay.transports import smtp_server
from tests.conftest import PG_ADMIN_URL, need
from tests.deploy.files import SERVICES, exec_start, fill, setting_names
from tests.e2e.conftest import http, wait_until

pytestmark = pytest.mark.e2e
UNIT = {u.stem.removeprefix("donebox-"): u for u in SERVICES}


def operator_env(tmp_path, database_url: str, redis_url: str, web_port: int, smtp_port: int) -> dict:
    """What a unit's process sees: the filled-in env file and nothing of the test's own settings."""
    cert, key = smtp_server.make_cert(tmp_path)  # donebox smtp in production requires STARTTLS
    filled = fill(
        SECRET_KEY="4f1c0b9e7a2d5c8e3b6a1f0d9c8b7a6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a",
        INBOUND_RAW_TOKEN="9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
        METRICS_TOKEN="0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        BASE_URL=f"http://127.0.0.1:{web_port}",
        VAR_DIR=str(tmp_path / "var"),
        SUBMISSION_PORT=str(smtp_port),
        SUBMISSION_TLS_CERT=str(cert),
        SUBMISSION_TLS_KEY=str(key),
        TICK_S="1",
    )
    outside = {k: v for k, v in os.environ.items() if k not in setting_names() and not k.startswith("TEST_")}
    return outside | filled | {"PYTHONUNBUFFERED": "1"}


def make_demo_team(env: dict) -> None:
    """The demo team (three members, reminders due now), written by donebox's own code on ``env``."""
    code = (
        "from app.db import session; from app.checkins.demo import ensure_demo; "
        "from app.models import utcnow\nwith session() as s: ensure_demo(s, now=utcnow())"
    )
    made = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr


def smtp_answers(port: int) -> bool:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        return client.noop()[0] == 250


def unit_args(name: str, **options: str) -> list[str]:
    """The donebox arguments of unit ``name``'s ExecStart, with some option values replaced."""
    argv = exec_start(UNIT[name])[1:]
    for option, value in options.items():
        argv[argv.index(f"--{option}") + 1] = value
    return argv


def test_the_units_commands_on_the_filled_in_env_example_run_donebox(tmp_path, procs, fresh_pg, redis_url):
    sink = smtp_server.start()  # the SMTP relay the operator adds as the sender
    web_port, smtp_port = smtp_server.free_port(), smtp_server.free_port()
    env = operator_env(tmp_path, fresh_pg, redis_url, web_port, smtp_port)
    try:
        migrated = procs.run(unit_args("migrate"), env)
        assert migrated.returncode == 0 and "newest schema" in migrated.stdout, migrated.stderr
        relay = f"smtp://{sink.hostname}:{sink.port}?tls=none"
        assert procs.run(["sender", "add", "relay", relay], env).returncode == 0
        test = procs.run(["sender", "test", "ops@example.com"], env)
        assert test.returncode == 0 and test.stdout.startswith("sender relay: 250 "), test.stderr
        sink.handler.envelopes.clear()

        for name in ("worker", "scheduler", "smtp"):
            procs.start(unit_args(name), env)
        procs.start(unit_args("web", port=str(web_port)), env)
        base = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: http("GET", f"{base}/healthz")[0] == 200, 60, "the web unit to serve")

        make_demo_team(env)  # its reminders are due now: the scheduler makes them, the worker sends
        wait_until(lambda: len(sink.handler.envelopes) >= 3, 60, "three reminders at the SMTP relay")
        sent = {e.rcpt_tos[0]: message_from_bytes(e.content) for e in sink.handler.envelopes}
        assert set(sent) == {"ada@example.com", "grace@example.com", "linus@example.com"}
        for message in sent.values():
            assert message["Subject"] == "What did you get done today?"
            assert (
                message["From"].endswith("<donebox@example.com>") or message["From"] == "donebox@example.com"
            )
            assert message["Reply-To"].startswith("reply+") and message["Reply-To"].endswith(
                "@reply.example.com"
            )
            assert f"<{base}/" in message["List-Unsubscribe"]  # links are on BASE_URL

        # /metrics adds up every unit's files in VAR_DIR: the worker's sends are there. The worker
        # counts a send once the relay has answered it, so a scrape right after the third envelope
        # arrived may come before the third count: it is scraped until the count is there
        auth = {"Authorization": "Bearer 0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"}

        def scraped() -> str:
            status, body = http("GET", f"{base}/metrics", headers=auth)
            assert status == 200, body
            return body.decode()

        wait_until(
            lambda: 'donebox_send_attempts_total{result="sent",sender="relay"} 3.0' in scraped(),
            30,
            "the worker's three sends in the web unit's /metrics",
        )
        assert http("GET", f"{base}/metrics")[0] == 401

        # the smtp unit listens where SUBMISSION_PORT says, with STARTTLS on the configured certificate
        wait_until(lambda: smtp_answers(smtp_port), 30, "the smtp unit to listen")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            assert client.ehlo()[0] == 250 and client.has_extn("starttls")
            assert client.starttls(context=ssl._create_unverified_context())[0] == 220

        # the imap unit refuses to run with no mailboxes: enable it only with IMAP_MAILBOXES set
        imap = procs.run(unit_args("imap"), env)
        assert imap.returncode == 2 and "IMAP_MAILBOXES" in imap.stderr
    finally:
        sink.stop()


def test_the_backup_and_restore_commands_bring_back_teams_and_senders(tmp_path, procs, fresh_pg, redis_url):
    """docs/deploy.md's pg_dump -Fc and pg_restore --no-owner, then donebox migrate on the copy."""
    for tool in ("pg_dump", "pg_restore"):
        if not shutil.which(tool):
            need(tool, "not installed (package postgresql-client)")
    env = operator_env(tmp_path, fresh_pg, redis_url, 8000, 2525)
    assert procs.run(["migrate"], env).returncode == 0
    assert (
        procs.run(["sender", "add", "relay", "smtp://app:s3cret@smtp.example.com:587"], env).returncode == 0
    )
    make_demo_team(env)
    dump = tmp_path / "donebox.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), fresh_pg], check=True, timeout=120)

    import psycopg

    restored = f"{fresh_pg}_restored"
    name = restored.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        subprocess.run(["pg_restore", "--no-owner", "-d", restored, str(dump)], check=True, timeout=120)
        env = env | {"DATABASE_URL": restored}
        migrated = procs.run(["migrate"], env)  # what starting donebox.target does first
        assert migrated.returncode == 0 and "newest schema" in migrated.stdout, migrated.stderr
        team = procs.run(["team-settings", "1"], env)
        assert team.returncode == 0 and "Demo team" in team.stdout, team.stderr
        senders = procs.run(["sender", "list"], env)
        assert "relay" in senders.stdout and "smtp.example.com" in senders.stdout, senders.stderr
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
