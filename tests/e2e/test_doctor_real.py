"""`donebox doctor` as a real process: exit 1 and what to fix on a fresh database and an unreachable
Redis, exit 0 once migrated and pointed at the real one."""

import pytest

from tests.app.relay.transports.smtp_server import free_port
from tests.e2e.conftest import base_env

pytestmark = pytest.mark.e2e


def lines(result) -> dict[str, str]:
    """{check name: its line} of the doctor's stdout."""
    return {x[5:].split(":", 1)[0]: x for x in result.stdout.splitlines()}


def test_the_doctor_fails_until_the_database_is_migrated_and_redis_answers(
    tmp_path, procs, fresh_pg, redis_url
):
    # reply.test is a local name (a warning, no lookup); no further inbound domain to look up
    env = base_env(
        tmp_path, DATABASE_URL=fresh_pg, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", INBOUND_DOMAINS=""
    )
    first = procs.run(["doctor"], env)
    assert first.returncode == 1, first.stdout + first.stderr
    said = lines(first)
    assert said["database"].startswith("FAIL database: reachable, at no migration; missing ")
    assert said["database"].endswith(
        "-> fix: run `donebox migrate` (the web and workers need the newest schema)"
    )
    assert said["broker"].startswith("FAIL broker: Redis at 127.0.0.1:")
    assert (
        said["senders"]
        == "FAIL senders: not checked: the database is not ready (above) -> fix: fix the database first"
    )

    assert procs.run(["migrate"], env).returncode == 0
    env["REDIS_URL"] = redis_url
    second = procs.run(["doctor"], env)
    assert second.returncode == 0, second.stdout + second.stderr
    said = lines(second)
    assert said["database"].startswith("ok   database: reachable, migrated to 0")
    assert said["broker"].startswith("ok   broker: Redis at 127.0.0.1:6379 answers PING")
    assert said["mx reply.test"].startswith("warn mx reply.test: a local name")  # warnings do not fail
    assert said["clock"].startswith("ok   clock: ") and "database server" in said["clock"]
    assert [x for x in second.stdout.splitlines() if not x.startswith(("ok ", "warn"))] == []
