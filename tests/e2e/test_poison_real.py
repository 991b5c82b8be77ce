"""A poisoned message on real processes: it is quarantined after its attempts while other
inbound mail and an outbound send keep flowing, and /healthz keeps answering.

The poison is a parser that never finishes, put into the worker processes by a test plugin
(tests/e2e/poison/sitecustomize.py, loaded through PYTHONPATH): donebox's code has no hook
for it. Two set-ups: `donebox web` + `donebox worker` + `donebox scheduler` on Redis and
PostgreSQL, and the embedded default, `donebox run`, on SQLite (where a parse holding the
write lock once made API sends answer 500 and /healthz 503).
"""

import json
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import base_env, free_port, http, wait_until

pytestmark = pytest.mark.e2e
PLUGIN = str(Path(__file__).resolve().parent / "poison")
TIME_LIMIT_S = 2


def reply(n: int, sender: str, to: str, body: str, poison: bool = False) -> bytes:
    extra = "X-Test-Poison: stall\r\n" if poison else ""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Re: What did you get done today?\r\n"
        f"Message-ID: <poison-e2e-{n}@example.com>\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


class Health(threading.Thread):
    """Polls /healthz until stopped; keeps every status it got."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.statuses, self.stop = url, [], threading.Event()

    def run(self):
        while not self.stop.wait(0.25):
            try:
                self.statuses.append(http("GET", self.url, timeout=30)[0])
            except OSError as e:
                self.statuses.append(repr(e))


@pytest.mark.parametrize("setup", ["redis", "embedded"])
def test_a_poisoned_message_is_quarantined_while_other_mail_keeps_flowing(
    tmp_path, procs, env, setup, request
):
    if setup == "redis":
        url = request.getfixturevalue("fresh_pg")
        extra = {"DATABASE_URL": url, "REDIS_URL": request.getfixturevalue("redis_url")}
    else:
        extra = {"DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'donebox.db'}", "WORKER_THREADS": "2"}
    env_vars = base_env(tmp_path, INBOUND_JOB_TIME_LIMIT_S=str(TIME_LIMIT_S), **extra)
    poisoned_env = {**env_vars, "PYTHONPATH": PLUGIN}
    assert procs.run(["migrate"], env_vars).returncode == 0

    for k, v in env_vars.items():
        env.setenv(k, v)
    from tests.conftest import reset_caches

    reset_caches()
    from app.checkins.reply_tokens import reply_address
    from app.db import session
    from app.models import InboundMessage, Member, OutboundMessage, Team, utcnow
    from app.relay.api_tokens import create_token

    with session() as s:
        team = Team(name="Poison team", timezone="UTC")
        s.add(team)
        s.flush()
        members = [Member(team_id=team.id, email=f"{n}@example.com", name=n) for n in ("ada", "bob")]
        s.add_all(members)
        s.flush()
        today = utcnow().date()
        to = {
            m.email: reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", m.id, today)
            for m in members
        }
        api_token = create_token(s, "e2e", now=utcnow())
    reset_caches()  # the processes own the database from here (SQLite: no connection of ours stays open)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if setup == "redis":
        procs.start(["web", "--port", str(port)], env_vars)
        procs.start(["worker", "--processes", "1", "--threads", "2"], poisoned_env)
        procs.start(["scheduler"], env_vars)
    else:
        procs.start(["run", "--no-demo", "--port", str(port)], poisoned_env)
    wait_until(lambda: http("GET", f"{base}/healthz")[0] == 200, 60, "the web server")
    health = Health(f"{base}/healthz")
    health.start()

    def post_mail(raw: bytes) -> int:
        headers = {"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"}
        status, body = http("POST", f"{base}/inbound/raw", raw, headers)
        assert status == 202, body
        return json.loads(body)["id"]

    def row(iid: int):
        with session() as s:
            return s.get(InboundMessage, iid)

    try:
        poison = post_mail(reply(0, "ada@example.com", to["ada@example.com"], "- stall", poison=True))
        wait_until(lambda: row(poison).state == "processing", 60, "a worker to take the poisoned message")
        good = [
            post_mail(reply(i, f"{who}@example.com", to[f"{who}@example.com"], f"- Thing {i}"))
            for i, who in enumerate(("ada", "bob", "ada"), start=1)
        ]
        status, body = http(
            "POST",
            f"{base}/api/messages",
            json.dumps({"to": "carol@example.com", "subject": "Still flowing", "text": "Hi"}).encode(),
            {"Authorization": f"Bearer {api_token}", "Content-Type": "application/json"},
        )
        assert status == 202, body
        send = json.loads(body)["id"]
        held = wait_until(
            lambda: (r := row(poison)).state == "quarantined" and r,
            120,
            "the poisoned message to be quarantined",
        )
    finally:
        health.stop.set()
        health.join()

    assert held.attempts == 3 and "ran out of time" in held.error, held.error
    done = [row(i) for i in good]
    assert [r.state for r in done] == ["processed"] * 3
    assert all(r.processed_at < held.processed_at for r in done)  # they did not wait for the poison
    with session() as s:
        out = s.get(OutboundMessage, send)
        assert out.state == "sent" and out.sent_at < held.processed_at
    assert set(health.statuses) == {200}, health.statuses
    status, body = http("GET", f"{base}/healthz")
    assert status == 200 and json.loads(body)["inbound_quarantined"] == 1
    time.sleep(3)  # a few scheduler ticks (TICK_S=1): the sweeper does not enqueue it again
    assert row(poison).state == "quarantined" and row(poison).attempts == 3
