"""Webhooks on real processes: donebox web and donebox worker on Redis and PostgreSQL, a receiver on
loopback verifying each POST with the documented snippet; the scheduler's tick hands them out."""

import json

import pytest

from tests.app.relay.webhook_receiver import Receiver
from tests.e2e.conftest import base_env, free_port, http, migrated_team, wait_until

pytestmark = pytest.mark.e2e


def test_a_reminder_sent_and_a_reply_processed_reach_the_receiver_signed(
    tmp_path, procs, fresh_pg, env, redis_url
):
    env_vars = base_env(tmp_path, DATABASE_URL=fresh_pg, REDIS_URL=redis_url, WEBHOOK_ALLOW_PRIVATE="true")
    team_id = migrated_team(procs, env, env_vars, "Hooked", {"Ada": "admin"})
    from app.db import session
    from app.models import utcnow
    from app.relay.api_tokens import create_token

    with session() as s:
        token = create_token(s, "hooks", now=utcnow(), team_id=team_id)

    receiver = Receiver()
    try:
        port = free_port()
        procs.start(["web", "--port", str(port)], env_vars)
        procs.start(["worker", "--processes", "1", "--threads", "2"], env_vars)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", f"{base}/healthz")[0] == 200, 30, "the web server")
        kinds = ["sent", "inbound_received", "entry_created"]
        status, body = http(
            "POST",
            f"{base}/api/webhooks",
            json.dumps({"url": receiver.url, "kinds": kinds}).encode(),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert status == 201, body
        receiver.secret = json.loads(body)["secret"]

        done = procs.run(["remind", "--now"], env_vars)
        assert done.returncode == 0, done.stderr
        from tests.e2e.test_loop_real import maildir_messages

        mail_dir = tmp_path / "var" / "mail"
        [reminder] = wait_until(lambda: maildir_messages(mail_dir), 30, "the reminder in the maildir")
        reply = (
            f"From: Ada <ada@example.com>\r\nTo: {reminder['Reply-To']}\r\nSubject: Re: today\r\n"
            "Message-ID: <hooked-reply@example.com>\r\n\r\nWired the webhooks\r\n"
        ).encode()
        status, body = http(
            "POST",
            f"{base}/inbound/raw",
            reply,
            {"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"},
        )
        assert status == 202, body

        def events():
            procs.run(["scheduler", "--once"], env_vars)  # the tick finds due deliveries
            got = sorted(json.loads(b)["kind"] for ok, _, b in receiver.received if ok)
            return got if len(got) == 3 else None

        assert wait_until(events, 60, "three signed events at the receiver") == sorted(kinds)
        assert all(ok for ok, _, _ in receiver.received)
        entry = next(json.loads(b) for _, _, b in receiver.received if b"entry_created" in b)
        assert entry["entry"]["text"] == "Wired the webhooks" and entry["team_id"] == team_id
    finally:
        receiver.stop()
