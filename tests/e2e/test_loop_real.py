"""The whole check-in loop on real processes: donebox web + donebox worker on Redis and PostgreSQL."""

import mailbox
from email import message_from_bytes, policy

import pytest

from app.checkins.reply_tokens import token_from_address, verify_reply_token
from tests.e2e.conftest import base_env, free_port, http, migrated_team, wait_until

pytestmark = pytest.mark.e2e


def maildir_messages(path) -> list:
    box = mailbox.Maildir(str(path), create=False) if path.exists() else None
    if box is None:
        return []
    return [message_from_bytes(box.get_bytes(k), policy=policy.default) for k in box.iterkeys()]


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_reminder_reply_and_digest_on_worker_processes_and_postgresql(
    tmp_path, procs, fresh_pg, env, broker, request
):
    url_setting = {"redis": "REDIS_URL", "rabbitmq": "RABBITMQ_URL"}[broker]
    env_vars = base_env(
        tmp_path, DATABASE_URL=fresh_pg, **{url_setting: request.getfixturevalue(f"{broker}_url")}
    )
    # a team of two, written straight into the database the processes use
    migrated_team(procs, env, env_vars, "E2E team", {"Ada": "member", "Bob": "member"})
    from app.db import session
    from app.models import InboundMessage

    port = free_port()
    procs.start(["web", "--port", str(port)], env_vars)
    procs.start(["worker", "--processes", "1", "--threads", "2"], env_vars)
    wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "the web server")

    done = procs.run(["remind", "--now"], env_vars)
    assert done.returncode == 0 and "2 reminders enqueued" in done.stdout, done.stderr
    mail_dir = tmp_path / "var" / "mail"
    reminders = wait_until(
        lambda: len(maildir_messages(mail_dir)) == 2 and maildir_messages(mail_dir),
        30,
        "two reminders in the maildir",
    )
    ada = next(m for m in reminders if m["To"] == "ada@example.com")

    quoted = "\n".join("> " + line for line in ada.get_body(("plain",)).get_content().splitlines())
    reply = (
        f"From: Ada <ada@example.com>\r\nTo: {ada['Reply-To']}\r\nSubject: Re: {ada['Subject']}\r\n"
        f"In-Reply-To: {ada['Message-ID']}\r\nMessage-ID: <e2e-reply@example.com>\r\n\r\n"
        f"Wrote the e2e test\r\nFixed the flaky build\r\n\r\n"
        f"On Mon, 23 Nov 2026 at 17:00, donebox <donebox@mail.test> wrote:\r\n{quoted}\r\n"
    ).encode()
    status, body = http(
        "POST",
        f"http://127.0.0.1:{port}/inbound/raw",
        reply,
        {"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"},
    )
    assert status == 202, body

    def processed():
        with session() as s:
            row = s.get(InboundMessage, 1)
            return row is not None and row.state == "processed"

    wait_until(processed, 30, "the reply to be processed by the worker")

    token = token_from_address(ada["Reply-To"], "reply.test")
    _member_id, today = verify_reply_token("test-secret-key-0123456789-abcdefXYZ", token)
    done = procs.run(["digest", "--now", "--day", today.isoformat()], env_vars)
    assert done.returncode == 0 and "2 digests enqueued" in done.stdout, done.stderr

    def digest_for_bob():
        return next(
            (
                m
                for m in maildir_messages(mail_dir)
                if m["To"] == "bob@example.com" and m["X-Donebox-Kind"] == "digest"
            ),
            None,
        )

    digest = wait_until(digest_for_bob, 30, "Bob's digest")
    text = digest.get_body(("plain",)).get_content()
    assert "Wrote the e2e test" in text and "Fixed the flaky build" in text
    assert "What did you get done today?" not in text
