"""Production never pretends to send: `donebox web|worker|run` refuse to start with no way out."""

import pytest

from tests.app.relay.transports import smtp_server
from tests.e2e.conftest import base_env, free_port, http, wait_until

pytestmark = pytest.mark.e2e


def production_env(tmp_path, database_url: str, redis_url: str) -> dict:
    env = base_env(tmp_path, DONEBOX_ENV="production", DATABASE_URL=database_url, REDIS_URL=redis_url)
    env.pop("MAIL_TRANSPORT")  # production's default: none, mail leaves only through a sender
    return env


def refusal(result) -> str:
    """The one stderr line of a refusal (alembic may have logged before it)."""
    assert result.returncode != 0, result.stdout + result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("donebox: ")][-1]


def test_production_without_a_sender_refuses_to_start_web_worker_and_run(
    tmp_path, procs, fresh_pg, redis_url
):
    env = production_env(tmp_path, fresh_pg, redis_url)
    line = refusal(procs.run(["web", "--port", str(free_port())], env))
    assert "run `donebox migrate` first" in line  # an empty database: no senders table yet
    assert procs.run(["migrate"], env).returncode == 0
    for args in (["web", "--port", str(free_port())], ["worker"], ["run", "--port", str(free_port())]):
        line = refusal(procs.run(args, env))
        assert "no sender is configured" in line and "`donebox sender add NAME smtp://" in line, args
        assert "`donebox sender test ADDRESS`" in line and "MAIL_TRANSPORT=maildir" in line
    assert procs.run(["sender", "add", "off", "maildir:", "--disabled"], env).returncode == 0
    assert "every sender is disabled" in refusal(procs.run(["web", "--port", str(free_port())], env))


def test_production_with_a_sender_starts_and_serves(tmp_path, procs, fresh_pg, redis_url):
    env = production_env(tmp_path, fresh_pg, redis_url)
    server = smtp_server.start()
    try:
        assert procs.run(["migrate"], env).returncode == 0
        url = f"smtp://{server.hostname}:{server.port}?tls=none"
        assert procs.run(["sender", "add", "relay", url], env).returncode == 0
        test = procs.run(["sender", "test", "ops@example.com"], env)
        assert test.returncode == 0 and test.stdout.startswith("sender relay: 250 "), test.stderr
        for args in (["web"], ["run", "--no-demo"]):
            port = free_port()
            p = procs.start([*args, "--port", str(port)], env)
            wait_until(
                lambda port=port: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200,
                60,
                f"{args} to serve",
            )
            procs.stop_one(p)
    finally:
        server.stop()


def test_production_with_local_delivery_set_on_purpose_starts(tmp_path, procs, fresh_pg, redis_url):
    env = production_env(tmp_path, fresh_pg, redis_url) | {"MAIL_TRANSPORT": "maildir"}
    assert procs.run(["migrate"], env).returncode == 0
    port = free_port()
    procs.start(["web", "--port", str(port)], env)
    wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, 60, "donebox web to serve")
